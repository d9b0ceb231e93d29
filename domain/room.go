package domain

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// TimesOfEating is the rooms-only condition of when a MEAL room eats
// (42Partner's TimeOfEating; DUNCH is 점저, a late lunch or early dinner).
var TimesOfEating = Dimension{Field: "times_of_eating", Values: []string{"BREAKFAST", "LUNCH", "DUNCH", "DINNER", "MIDNIGHT"}}

// Room limits.
const (
	RoomTitleMax   = 255
	RoomBodyMax    = 100_000
	RoomPlaceMax   = 255
	RoomCapacityLo = 1
	RoomCapacityHi = 20
)

// RoomConditions are what a room states about itself. Unlike an
// application's, a zero mask means "not stated"; a room lists what it is.
type RoomConditions struct {
	Places        Mask
	TimesOfEating Mask
	WaysOfEating  Mask
	StudyTypes    Mask
}

// ParseRoomConditions turns the request's lists into masks for category c:
// times and ways of eating belong to MEAL rooms, study types to STUDY
// rooms; places to any. Errors name the field.
func ParseRoomConditions(c Category, places, times, ways, study []string) (RoomConditions, error) {
	var rc RoomConditions
	for _, d := range []struct {
		dim     Dimension
		values  []string
		allowed bool
		dst     *Mask
	}{
		{Places, places, true, &rc.Places},
		{TimesOfEating, times, c == CategoryMeal, &rc.TimesOfEating},
		{WaysOfEating, ways, c == CategoryMeal, &rc.WaysOfEating},
		{StudyTypes, study, c == CategoryStudy, &rc.StudyTypes},
	} {
		if len(d.values) == 0 {
			continue
		}
		if !d.allowed {
			return RoomConditions{}, FieldErrorf(EINVALID, d.dim.Field, "%q does not apply to %v rooms.", d.dim.Field, c)
		}
		m, err := d.dim.Parse(d.values)
		if err != nil {
			return RoomConditions{}, err
		}
		*d.dst = m
	}
	return rc, nil
}

// Room is a gathering a host opened with a capacity: a lunch table, a
// study session, a group run (42Partner's article, ErunJrun's group).
type Room struct {
	ID               string
	Key              int64 // the row id, for the stores' version-checked writes
	HostID           string
	Host             string // the host's nickname
	Category         Category
	Title            string
	Body             string
	StartsAt         time.Time
	Place            string // where to meet, as the host wrote it
	Capacity         int    // the host included
	ParticipantCount int
	Conditions       RoomConditions
	Anonymous        bool
	Version          int64 // bumped by every change; joins check it
	MatchID          string
	CompletedAt      time.Time // zero while open
	DeletedAt        time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
	Participants     []Participant // the host first, then by joining time
	Images           []Image       // its photos in order; at most RoomImagesMax
}

// Participant is a member in a room.
type Participant struct {
	MemberID string
	Nickname string
	Host     bool
	JoinedAt time.Time
	Attended bool // the host marked them present
	// Evaluation is the manner-point change this guest gave the host; 0
	// until they evaluate.
	Evaluation int
}

// Completed reports whether the host completed the room into a match.
func (r *Room) Completed() bool { return !r.CompletedAt.IsZero() }

// Deleted reports whether the host cancelled the room.
func (r *Room) Deleted() bool { return !r.DeletedAt.IsZero() }

// Started reports whether the room's start time has come at now.
func (r *Room) Started(now time.Time) bool { return !now.Before(r.StartsAt) }

// Open reports whether members may still join or leave at now.
func (r *Room) Open(now time.Time) bool { return !r.Deleted() && !r.Completed() && !r.Started(now) }

// Has reports whether the member is a participant, as far as r.Participants
// tells.
func (r *Room) Has(memberID string) bool { return r.Participant(memberID) != nil }

// Participant returns the member's entry in r.Participants, or nil.
func (r *Room) Participant(memberID string) *Participant {
	for i := range r.Participants {
		if r.Participants[i].MemberID == memberID {
			return &r.Participants[i]
		}
	}
	return nil
}

// RoomRules are the configurable limits of opening a room.
type RoomRules struct {
	// RunLead is how far ahead a RUN room must start (ErunJrun: 6 hours).
	RunLead time.Duration
	// MaxAhead is how far ahead a room may start; 0 means no limit.
	MaxAhead time.Duration
}

const zeroWidthJoiner = '\u200D'

// normalizeRoomText trims s and checks it is 1..max characters with no
// hidden character other than line breaks and tabs (when multiline) and the
// zero-width joiner, which emoji such as 🏃‍♀️ are made of.
func normalizeRoomText(field, s string, max int, multiline bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", FieldErrorf(EINVALID, field, "%q must not be empty.", field)
	}
	if !utf8.ValidString(s) {
		return "", FieldErrorf(EINVALID, field, "%q is not valid UTF-8.", field)
	}
	if n := utf8.RuneCountInString(s); n > max {
		return "", FieldErrorf(EINVALID, field, "%q is %d characters long; at most %d are allowed.", field, n, max)
	}
	for _, r := range s {
		if r == '\n' || r == '\t' || r == '\r' {
			if multiline {
				continue
			}
		}
		if r != zeroWidthJoiner && hidden(r) {
			return "", FieldErrorf(EINVALID, field, "%q contains a control or invisible character.", field)
		}
	}
	return s, nil
}

// Validate normalises r's texts and checks what a host may open at now:
// a room category, title 1–255, body up to 100,000, place 1–255, capacity
// 1–20, a start not in the past nor more than rules.MaxAhead ahead (RUN
// rooms at least rules.RunLead ahead) and conditions that fit the category.
func (r *Room) Validate(now time.Time, rules RoomRules) error {
	if !r.Category.Valid() {
		return FieldErrorf(EINVALID, "category", "Unknown category.")
	}
	var err error
	if r.Title, err = normalizeRoomText("title", r.Title, RoomTitleMax, false); err != nil {
		return err
	}
	if r.Body = strings.TrimSpace(r.Body); r.Body != "" {
		if r.Body, err = normalizeRoomText("body", r.Body, RoomBodyMax, true); err != nil {
			return err
		}
	}
	if r.Place, err = normalizeRoomText("place", r.Place, RoomPlaceMax, false); err != nil {
		return err
	}
	if err := checkCapacity(r.Capacity, 1); err != nil {
		return err
	}
	if err := r.checkStart(now, rules); err != nil {
		return err
	}
	return r.checkConditions()
}

func checkCapacity(capacity, count int) error {
	if capacity < RoomCapacityLo || capacity > RoomCapacityHi {
		return FieldErrorf(EINVALID, "capacity", "Capacity must be between %d and %d (the host included).", RoomCapacityLo, RoomCapacityHi)
	}
	if capacity < count {
		return FieldErrorf(ECAPACITYBELOWCOUNT, "capacity", "Capacity %d is below the %d members already in the room.", capacity, count)
	}
	return nil
}

func (r *Room) checkStart(now time.Time, rules RoomRules) error {
	if !r.StartsAt.After(now) {
		return FieldErrorf(EINVALID, "date", "The room's date and start time are in the past.")
	}
	if r.Category == CategoryRun && r.StartsAt.Before(now.Add(rules.RunLead)) {
		return FieldErrorf(EINVALID, "date", "A RUN room must start at least %v from now.", rules.RunLead)
	}
	if rules.MaxAhead > 0 && r.StartsAt.After(now.Add(rules.MaxAhead)) {
		return FieldErrorf(EINVALID, "date", "A room may start at most %d days from now.", int(rules.MaxAhead/(24*time.Hour)))
	}
	return nil
}

func (r *Room) checkConditions() error {
	c := r.Conditions
	if c.Places&^Places.Full() != 0 || c.TimesOfEating&^TimesOfEating.Full() != 0 ||
		c.WaysOfEating&^WaysOfEating.Full() != 0 || c.StudyTypes&^StudyTypes.Full() != 0 {
		return FieldErrorf(EINVALID, "conditions", "Unknown condition values.")
	}
	if r.Category != CategoryMeal && (c.TimesOfEating != 0 || c.WaysOfEating != 0) {
		return FieldErrorf(EINVALID, WaysOfEating.Field, "Times and ways of eating apply to MEAL rooms only.")
	}
	if r.Category != CategoryStudy && c.StudyTypes != 0 {
		return FieldErrorf(EINVALID, StudyTypes.Field, "Study types apply to STUDY rooms only.")
	}
	return nil
}

// RoomUpdate is a host's change to a room; nil fields stay as they are.
type RoomUpdate struct {
	Title      *string
	Body       *string
	StartsAt   *time.Time
	Place      *string
	Capacity   *int
	Conditions *RoomConditions
	Anonymous  *bool
}

// Empty reports whether u changes nothing.
func (u RoomUpdate) Empty() bool {
	return u.Title == nil && u.Body == nil && u.StartsAt == nil && u.Place == nil &&
		u.Capacity == nil && u.Conditions == nil && u.Anonymous == nil
}

// Apply returns r with u applied and validated at now: the same rules as
// opening, except that the capacity may not drop below the members already
// in (ECAPACITYBELOWCOUNT) and the start is only checked when it changes.
// A completed, cancelled or started room cannot be changed (EROOMCLOSED).
func (r Room) Apply(u RoomUpdate, now time.Time, rules RoomRules) (Room, error) {
	if !r.Open(now) {
		return r, ErrRoomClosed(&r, now)
	}
	var err error
	if u.Title != nil {
		if r.Title, err = normalizeRoomText("title", *u.Title, RoomTitleMax, false); err != nil {
			return r, err
		}
	}
	if u.Body != nil {
		if r.Body = strings.TrimSpace(*u.Body); r.Body != "" {
			if r.Body, err = normalizeRoomText("body", r.Body, RoomBodyMax, true); err != nil {
				return r, err
			}
		}
	}
	if u.Place != nil {
		if r.Place, err = normalizeRoomText("place", *u.Place, RoomPlaceMax, false); err != nil {
			return r, err
		}
	}
	if u.Capacity != nil {
		if err := checkCapacity(*u.Capacity, r.ParticipantCount); err != nil {
			return r, err
		}
		r.Capacity = *u.Capacity
	}
	if u.StartsAt != nil {
		r.StartsAt = *u.StartsAt
		if err := r.checkStart(now, rules); err != nil {
			return r, err
		}
	}
	if u.Conditions != nil {
		r.Conditions = *u.Conditions
		if err := r.checkConditions(); err != nil {
			return r, err
		}
	}
	if u.Anonymous != nil {
		r.Anonymous = *u.Anonymous
	}
	return r, nil
}

// ErrRoomClosed says why members can no longer join, leave or change r.
func ErrRoomClosed(r *Room, now time.Time) *Error {
	switch {
	case r.Deleted():
		return Errorf(EROOMCLOSED, "The room was cancelled.")
	case r.Completed():
		return Errorf(EROOMCLOSED, "The room is completed.")
	case r.Started(now):
		return Errorf(EROOMCLOSED, "The room has already started.")
	}
	return Errorf(EROOMCLOSED, "The room is closed.")
}

// ParticipationKind is whether a request joins or leaves a room.
type ParticipationKind int

// The participation kinds. Stored numbers.
const (
	ParticipationJoin ParticipationKind = iota + 1
	ParticipationLeave
)

func (k ParticipationKind) String() string {
	switch k {
	case ParticipationJoin:
		return "JOIN"
	case ParticipationLeave:
		return "LEAVE"
	}
	return fmt.Sprintf("ParticipationKind(%d)", int(k))
}

// MarshalText writes the wire name.
func (k ParticipationKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// ParticipationStatus is where a join or leave request stands.
type ParticipationStatus int

// The participation states. Stored numbers: only append.
const (
	ParticipationRequested ParticipationStatus = iota + 1
	// ParticipationJoined: the member is in the room.
	ParticipationJoined
	// ParticipationLeft: the member left the room.
	ParticipationLeft
	// ParticipationRejectedFull: the room had no seat left.
	ParticipationRejectedFull
	// ParticipationRejectedClosed: the room was cancelled, completed or
	// had started by the time the worker looked.
	ParticipationRejectedClosed
	// ParticipationRejectedInvalid: the request no longer made sense (the
	// member was already in, not in, or the host tried to leave).
	ParticipationRejectedInvalid
)

var participationStatusNames = map[ParticipationStatus]string{
	ParticipationRequested:       "REQUESTED",
	ParticipationJoined:          "JOINED",
	ParticipationLeft:            "LEFT",
	ParticipationRejectedFull:    "REJECTED_FULL",
	ParticipationRejectedClosed:  "REJECTED_CLOSED",
	ParticipationRejectedInvalid: "REJECTED_INVALID",
}

func (s ParticipationStatus) String() string {
	if n, ok := participationStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("ParticipationStatus(%d)", int(s))
}

// MarshalText writes the wire name.
func (s ParticipationStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Participation is a member's request to join or leave a room, decided by
// a worker.
type Participation struct {
	ID        string
	Key       int64 // row id: the task's handle
	RoomID    string
	MemberID  string
	Kind      ParticipationKind
	Status    ParticipationStatus
	CreatedAt time.Time
	DecidedAt time.Time // zero while REQUESTED
}

// Decide is the admission rule: what a request of kind by the member comes
// to for room r (its participants read with it) at now. A guest whose
// attendance the host has taken stays: leaving then would let the host
// mark them again after a rejoin. The caller applies a JOINED or LEFT with
// a version check.
func Decide(r *Room, kind ParticipationKind, memberID string, now time.Time) ParticipationStatus {
	if !r.Open(now) {
		return ParticipationRejectedClosed
	}
	p := r.Participant(memberID)
	switch kind {
	case ParticipationJoin:
		if p != nil {
			return ParticipationRejectedInvalid
		}
		if r.ParticipantCount >= r.Capacity {
			return ParticipationRejectedFull
		}
		return ParticipationJoined
	case ParticipationLeave:
		if p == nil || p.Host {
			return ParticipationRejectedInvalid
		}
		if p.Attended {
			return ParticipationRejectedClosed
		}
		return ParticipationLeft
	}
	return ParticipationRejectedInvalid
}
