package domain

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Helper requests (easytask): a customer posts a task needing helpers of a
// kind of work with some abilities; rounds of invitations find them.

// Limits of the skills catalogue and of a member's skills.
const (
	SkillNameMax        = 64 // runes of a category's or an ability's name
	MemberSkillsMax     = 50 // small categories, and abilities, a member may list
	TaskTitleMax        = 100
	TaskDetailsMax      = 5000
	TaskAbilitiesMax    = 10
	TaskHelpersMax      = 10
	InvitationReasonMax = 1000
)

// SkillCategory is a kind of work: a big category (BigID 0) or a small one
// inside the big category BigID.
type SkillCategory struct {
	ID    int64
	BigID int64
	Name  string
}

// Big reports whether c is a big category.
func (c SkillCategory) Big() bool { return c.BigID == 0 }

// Ability is something a helper can do, and a task may require.
type Ability struct {
	ID   int64
	Name string
}

// SkillCatalogue is every category and ability, in id order.
type SkillCatalogue struct {
	Categories []SkillCategory
	Abilities  []Ability
}

// MemberSkills are what a helper offers: the small categories of work they
// take ("possible work") and their abilities.
type MemberSkills struct {
	PossibleWork []SkillCategory
	Abilities    []Ability
}

// ValidateSkillName checks a new catalogue entry's name.
func ValidateSkillName(name string) error {
	if strings.TrimSpace(name) == "" || utf8.RuneCountInString(name) > SkillNameMax {
		return FieldErrorf(EINVALID, "name", "Field \"name\" must be 1 to %d characters.", SkillNameMax)
	}
	return nil
}

// CheckIDList checks a list of catalogue ids given as field: at most max,
// each positive and listed once.
func CheckIDList(field string, ids []int64, max int) error {
	if len(ids) > max {
		return FieldErrorf(EINVALID, field, "Field %q holds at most %d ids.", field, max)
	}
	for i, id := range ids {
		if id <= 0 {
			return FieldErrorf(EINVALID, field, "Field %q holds an invalid id %d.", field, id)
		}
		for _, prev := range ids[:i] {
			if prev == id {
				return FieldErrorf(EINVALID, field, "Field %q lists %d twice.", field, id)
			}
		}
	}
	return nil
}

// TaskStatus is where a task stands. Stored numbers.
type TaskStatus int

// The task states (easytask's matchingStatus). A customer who stops
// matching puts the task back to STANDBY, where it can be edited and
// started again.
const (
	TaskStandby TaskStatus = iota + 1
	TaskMatching
	TaskMatched
	TaskDoing
	TaskDone
)

var taskStatusNames = map[TaskStatus]string{
	TaskStandby: "STANDBY", TaskMatching: "MATCHING", TaskMatched: "MATCHED", TaskDoing: "DOING", TaskDone: "DONE",
}

func (s TaskStatus) String() string {
	if n, ok := taskStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("TaskStatus(%d)", int(s))
}

// MarshalText writes the wire name.
func (s TaskStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// InvitationStatus is where an invitation stands. Stored numbers.
type InvitationStatus int

// The invitation states.
const (
	InvitationInvited InvitationStatus = iota + 1
	InvitationAccepted
	InvitationDeclined
	InvitationExpired
)

var invitationStatusNames = map[InvitationStatus]string{
	InvitationInvited: "INVITED", InvitationAccepted: "ACCEPTED", InvitationDeclined: "DECLINED", InvitationExpired: "EXPIRED",
}

func (s InvitationStatus) String() string {
	if n, ok := invitationStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("InvitationStatus(%d)", int(s))
}

// MarshalText writes the wire name.
func (s InvitationStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Task is a customer's request for helpers.
type Task struct {
	ID              string
	Key             int64 // the row id, for the stores' version-checked writes
	CustomerID      string
	Customer        string // the customer's nickname
	Title           string
	Details         string
	BigCategoryID   int64
	SmallCategoryID int64
	AbilityIDs      []int64 // required, in the order given
	HelpersWanted   int
	HelperCount     int
	Status          TaskStatus
	DueAt           *time.Time
	Version         int64
	MatchingAt      *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Validate checks what a customer writes. Details and abilities may still
// be missing (a draft); Complete says whether matching can start. A due
// date must lie ahead of now.
func (t *Task) Validate(now time.Time) error {
	if strings.TrimSpace(t.Title) == "" || utf8.RuneCountInString(t.Title) > TaskTitleMax {
		return FieldErrorf(EINVALID, "title", "Field \"title\" must be 1 to %d characters.", TaskTitleMax)
	}
	if utf8.RuneCountInString(t.Details) > TaskDetailsMax {
		return FieldErrorf(EINVALID, "details", "Field \"details\" must be at most %d characters.", TaskDetailsMax)
	}
	if t.BigCategoryID <= 0 {
		return FieldErrorf(EINVALID, "big_category_id", "Field \"big_category_id\" is required.")
	}
	if t.SmallCategoryID <= 0 {
		return FieldErrorf(EINVALID, "small_category_id", "Field \"small_category_id\" is required.")
	}
	if err := CheckIDList("ability_ids", t.AbilityIDs, TaskAbilitiesMax); err != nil {
		return err
	}
	if t.HelpersWanted < 1 || t.HelpersWanted > TaskHelpersMax {
		return FieldErrorf(EINVALID, "helpers_wanted", "Field \"helpers_wanted\" must be 1 to %d.", TaskHelpersMax)
	}
	if t.HelpersWanted < t.HelperCount {
		return FieldErrorf(EINVALID, "helpers_wanted", "The task already has %d helpers.", t.HelperCount)
	}
	if t.DueAt != nil && !t.DueAt.After(now) {
		return FieldErrorf(EINVALID, "due_at", "Field \"due_at\" must be in the future.")
	}
	return nil
}

// Complete reports what keeps t from matching (easytask's checks: details
// and at least one required ability), as ETASKINCOMPLETE naming the field.
func (t *Task) Complete() error {
	if strings.TrimSpace(t.Details) == "" {
		return FieldErrorf(ETASKINCOMPLETE, "details", "The task needs details before matching.")
	}
	if len(t.AbilityIDs) == 0 {
		return FieldErrorf(ETASKINCOMPLETE, "ability_ids", "The task needs at least one required ability before matching.")
	}
	return nil
}

// CheckCustomer refuses anyone but t's customer (EFORBIDDEN).
func (t *Task) CheckCustomer(memberID string) error {
	if t.CustomerID != memberID {
		return Errorf(EFORBIDDEN, "Only the task's customer may do this.")
	}
	return nil
}

// CheckStandby refuses a change of t unless it is in STANDBY.
func (t *Task) CheckStandby() error {
	if t.Status != TaskStandby {
		return Errorf(ETASKNOTSTANDBY, "The task is %s; it can be changed only in STANDBY.", t.Status)
	}
	return nil
}

// TaskUpdate is a change of a task: nil fields stay. DueAtSet with a nil
// DueAt removes the due date.
type TaskUpdate struct {
	Title           *string
	Details         *string
	BigCategoryID   *int64
	SmallCategoryID *int64
	AbilityIDs      *[]int64
	HelpersWanted   *int
	DueAtSet        bool
	DueAt           *time.Time
}

// Empty reports whether u changes nothing.
func (u TaskUpdate) Empty() bool {
	return u.Title == nil && u.Details == nil && u.BigCategoryID == nil && u.SmallCategoryID == nil &&
		u.AbilityIDs == nil && u.HelpersWanted == nil && !u.DueAtSet
}

// Apply changes t by u.
func (t *Task) Apply(u TaskUpdate) {
	if u.Title != nil {
		t.Title = *u.Title
	}
	if u.Details != nil {
		t.Details = *u.Details
	}
	if u.BigCategoryID != nil {
		t.BigCategoryID = *u.BigCategoryID
	}
	if u.SmallCategoryID != nil {
		t.SmallCategoryID = *u.SmallCategoryID
	}
	if u.AbilityIDs != nil {
		t.AbilityIDs = append([]int64(nil), (*u.AbilityIDs)...)
	}
	if u.HelpersWanted != nil {
		t.HelpersWanted = *u.HelpersWanted
	}
	if u.DueAtSet {
		t.DueAt = u.DueAt
	}
}

// Invitation is one helper invited to one task.
type Invitation struct {
	ID         string
	TaskID     string
	HelperID   string
	Status     InvitationStatus
	Reason     string
	InvitedAt  time.Time
	ExpiresAt  time.Time
	AnsweredAt *time.Time
}

// TaskHelperStatus is where a matched helper's work stands (easytask's
// progressStatus). Stored numbers.
type TaskHelperStatus int

// The helper states.
const (
	TaskHelperMatched TaskHelperStatus = iota + 1
	TaskHelperDoing
	TaskHelperDone
)

var taskHelperStatusNames = map[TaskHelperStatus]string{
	TaskHelperMatched: "MATCHED", TaskHelperDoing: "DOING", TaskHelperDone: "DONE",
}

func (s TaskHelperStatus) String() string {
	if n, ok := taskHelperStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("TaskHelperStatus(%d)", int(s))
}

// MarshalText writes the wire name.
func (s TaskHelperStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// TaskHelper is a helper matched to a task, and how far their work is.
type TaskHelper struct {
	Key       int64 // the member's row id, for the stores
	MemberID  string
	Nickname  string
	Status    TaskHelperStatus
	MatchedAt time.Time
	StartedAt *time.Time
	DoneAt    *time.Time
}

// FindHelper returns the helper of helpers who is member id, or nil.
func FindHelper(helpers []TaskHelper, id string) *TaskHelper {
	for i := range helpers {
		if helpers[i].MemberID == id {
			return &helpers[i]
		}
	}
	return nil
}

// CheckProgress refuses moving h to status to on task t: DOING only from
// MATCHED once the task has all its helpers (MATCHED or later), DONE only
// from DOING.
func CheckProgress(t *Task, h *TaskHelper, to TaskHelperStatus) error {
	switch to {
	case TaskHelperDoing:
		if h.Status != TaskHelperMatched {
			return Errorf(EALREADYSTARTED, "You are %s on this task already.", h.Status)
		}
		if t.Status < TaskMatched {
			return Errorf(ETASKNOTMATCHED, "The task is %s; work starts once it has all its helpers.", t.Status)
		}
	case TaskHelperDone:
		if h.Status == TaskHelperDone {
			return Errorf(EALREADYDONE, "You are DONE on this task already.")
		}
		if h.Status != TaskHelperDoing {
			return Errorf(EHELPERNOTDOING, "You are %s on this task; start it (DOING) before finishing it.", h.Status)
		}
	default:
		return Errorf(EINVALID, "Unknown helper status %s.", to)
	}
	return nil
}

// TaskStatusOf is the status of a matched task whose helpers stand at
// helpers: DOING once every helper has started, DONE once every one has
// finished, else MATCHED.
func TaskStatusOf(helpers []TaskHelper) TaskStatus {
	least := TaskHelperDone
	for _, h := range helpers {
		least = min(least, h.Status)
	}
	switch {
	case len(helpers) == 0 || least == TaskHelperMatched:
		return TaskMatched
	case least == TaskHelperDoing:
		return TaskDoing
	}
	return TaskDone
}

// CheckAnswerable refuses an answer to inv at now unless it is open:
// EALREADYANSWERED after an accept or a decline, EINVITATIONEXPIRED after
// its time.
func (inv *Invitation) CheckAnswerable(now time.Time) error {
	switch {
	case inv.Status == InvitationAccepted || inv.Status == InvitationDeclined:
		return Errorf(EALREADYANSWERED, "You answered this invitation already (%s).", inv.Status)
	case inv.Status == InvitationExpired || !inv.ExpiresAt.After(now):
		return Errorf(EINVITATIONEXPIRED, "The invitation has expired.")
	}
	return nil
}
