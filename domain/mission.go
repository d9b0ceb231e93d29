package domain

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// MissionType is what a mission is about. Stored as a small integer.
type MissionType int

// The types (Octopus's). Stored numbers: only append.
const (
	MissionLife MissionType = iota + 1
	MissionExercise
	MissionStudy
	MissionMeeting
	MissionEtc
)

var missionTypeNames = map[MissionType]string{
	MissionLife: "LIFE", MissionExercise: "EXERCISE", MissionStudy: "STUDY",
	MissionMeeting: "MEETING", MissionEtc: "ETC",
}

func (t MissionType) String() string {
	if n, ok := missionTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("MissionType(%d)", int(t))
}

// Valid reports whether t is one of the types.
func (t MissionType) Valid() bool { _, ok := missionTypeNames[t]; return ok }

// MarshalText writes the wire name.
func (t MissionType) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("invalid mission type %d", int(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText reads a wire name.
func (t *MissionType) UnmarshalText(b []byte) error {
	v, err := ParseMissionType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ParseMissionType returns the type with the given wire name; an unknown
// one is an EINVALID error on field "type".
func ParseMissionType(s string) (MissionType, error) {
	for t, n := range missionTypeNames {
		if n == s {
			return t, nil
		}
	}
	return 0, FieldErrorf(EINVALID, "type", "Unknown mission type %q; types are LIFE, EXERCISE, STUDY, MEETING and ETC.", s)
}

// MissionStatus is where a mission is in its life. Stored as a small
// integer; the numbers are Octopus's, CANCELLED is new.
type MissionStatus int

// The statuses.
const (
	// MissionUnactivated: the schedule or the windows are not set yet.
	MissionUnactivated MissionStatus = 0
	// MissionOpen: recruiting until the start.
	MissionOpen MissionStatus = 1
	// MissionOngoing: started; members verify.
	MissionOngoing MissionStatus = 2
	// MissionClose: ended and paid out.
	MissionClose MissionStatus = 3
	// MissionCancelled: short of members at the start, or cancelled by the
	// host before it; every stake was refunded.
	MissionCancelled MissionStatus = 4
)

var missionStatusNames = map[MissionStatus]string{
	MissionUnactivated: "UNACTIVATED", MissionOpen: "OPEN", MissionOngoing: "ONGOING",
	MissionClose: "CLOSE", MissionCancelled: "CANCELLED",
}

func (s MissionStatus) String() string {
	if n, ok := missionStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("MissionStatus(%d)", int(s))
}

// Valid reports whether s is one of the statuses.
func (s MissionStatus) Valid() bool { _, ok := missionStatusNames[s]; return ok }

// MarshalText writes the wire name.
func (s MissionStatus) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("invalid mission status %d", int(s))
	}
	return []byte(s.String()), nil
}

// Started reports whether the mission is past its start (ONGOING or after).
func (s MissionStatus) Started() bool {
	return s == MissionOngoing || s == MissionClose
}

// MissionMemberStatus is a member's standing in a mission.
type MissionMemberStatus int

// The member statuses. A member who leaves before the start has no row.
const (
	MissionMemberActive MissionMemberStatus = 1
	// MissionMemberLeft: left after the start; the stake is forfeit.
	MissionMemberLeft MissionMemberStatus = 2
)

// Mission limits (Octopus's, where it had them).
const (
	MissionTitleMin       = 4
	MissionTitleMax       = 30
	MissionDescriptionMin = 6
	MissionDescriptionMax = 300
	MissionStakeMin       = 100
	MissionStakeMax       = 100_000
	MissionCapacityMin    = 2
	MissionCapacityMax    = 8
	MissionWeeksMax       = 12
	MissionPerDayMax      = 10
	MissionWindowsMax     = 6
	// MissionCodeLen is the length of a mission's join code.
	MissionCodeLen = 8
	// MissionBonusPercent is what a team at 100 % gets on top of the stake.
	MissionBonusPercent = 5
	// MissionPartialPercent is the refund of a member at 80 % or more.
	MissionPartialPercent = 80
	// MissionMinMembers is the fewest members a mission starts with.
	MissionMinMembers = 2
)

// MinutesPerDay bounds a window's minutes.
const MinutesPerDay = 24 * 60

// MissionWindow is a daily verification window: minutes of the day in the
// missions' zone, Start inclusive, End exclusive.
type MissionWindow struct {
	Start int
	End   int
}

// Contains reports whether minute m of the day is inside w.
func (w MissionWindow) Contains(m int) bool { return m >= w.Start && m < w.End }

// ValidateWindows checks a mission's windows: 1..MissionWindowsMax, each
// 00:00 ≤ start < end ≤ 24:00, none overlapping. It returns them sorted by
// start.
func ValidateWindows(ws []MissionWindow) ([]MissionWindow, error) {
	if len(ws) == 0 || len(ws) > MissionWindowsMax {
		return nil, FieldErrorf(EINVALID, "windows", "A mission has 1 to %d verification windows.", MissionWindowsMax)
	}
	sorted := slices.Clone(ws)
	slices.SortFunc(sorted, func(a, b MissionWindow) int { return a.Start - b.Start })
	for i, w := range sorted {
		if w.Start < 0 || w.End > MinutesPerDay || w.Start >= w.End {
			return nil, FieldErrorf(EINVALID, "windows", "Each window must start before it ends, within one day (00:00–24:00).")
		}
		if i > 0 && sorted[i-1].End > w.Start {
			return nil, FieldErrorf(EINVALID, "windows", "Windows must not overlap.")
		}
	}
	return sorted, nil
}

// MissionSchedule is when a mission runs and how often members verify.
type MissionSchedule struct {
	StartsAt    time.Time
	Weeks       int
	DaysPerWeek int
	PerDay      int
}

// Set reports whether every part of the schedule is given.
func (s MissionSchedule) Set() bool {
	return !s.StartsAt.IsZero() && s.Weeks > 0 && s.DaysPerWeek > 0 && s.PerDay > 0
}

// Validate checks the schedule a host sets at now: a start in the future
// (and at most maxAhead ahead, when positive), 1..MissionWeeksMax weeks,
// 1..7 days a week, 1..MissionPerDayMax verifications a day.
func (s MissionSchedule) Validate(now time.Time, maxAhead time.Duration) error {
	if s.StartsAt.IsZero() {
		return FieldErrorf(EINVALID, "starts_at", "Field \"starts_at\" is required.")
	}
	if !s.StartsAt.After(now) {
		return FieldErrorf(EINVALID, "starts_at", "The start must be in the future.")
	}
	if maxAhead > 0 && s.StartsAt.Sub(now) > maxAhead {
		return FieldErrorf(EINVALID, "starts_at", "The start may be at most %d days ahead.", int(maxAhead.Hours()/24))
	}
	if s.Weeks < 1 || s.Weeks > MissionWeeksMax {
		return FieldErrorf(EINVALID, "weeks", "A mission lasts 1 to %d weeks.", MissionWeeksMax)
	}
	if s.DaysPerWeek < 1 || s.DaysPerWeek > 7 {
		return FieldErrorf(EINVALID, "days_per_week", "Days per week must be between 1 and 7.")
	}
	if s.PerDay < 1 || s.PerDay > MissionPerDayMax {
		return FieldErrorf(EINVALID, "per_day", "Verifications per day must be between 1 and %d.", MissionPerDayMax)
	}
	return nil
}

// EndsAt is the end of a mission with schedule s in zone loc: the start plus
// 7 × weeks calendar days (so a daylight-saving change keeps the time of
// day).
func (s MissionSchedule) EndsAt(loc *time.Location) time.Time {
	return s.StartsAt.In(loc).AddDate(0, 0, 7*s.Weeks).UTC()
}

// Required is how many verifications make 100 %: weeks × days a week ×
// verifications a day.
func (s MissionSchedule) Required() int { return s.Weeks * s.DaysPerWeek * s.PerDay }

// WeekQuota is how many verifications a member may post in one week.
func (s MissionSchedule) WeekQuota() int { return s.DaysPerWeek * s.PerDay }

// Day is the mission day of instant t in loc: 0 on the start's calendar
// date, counted in calendar dates, so day boundaries are local midnights.
func (s MissionSchedule) Day(t time.Time, loc *time.Location) int {
	a := s.StartsAt.In(loc)
	b := t.In(loc)
	da := time.Date(a.Year(), a.Month(), a.Day(), 0, 0, 0, 0, time.UTC)
	db := time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, time.UTC)
	return int(db.Sub(da).Hours() / 24)
}

// Week is the mission week of day d: floor(d / 7) + 1.
func Week(d int) int { return d/7 + 1 }

// DayStart is the local midnight that begins mission day d, in UTC.
func (s MissionSchedule) DayStart(d int, loc *time.Location) time.Time {
	a := s.StartsAt.In(loc)
	return time.Date(a.Year(), a.Month(), a.Day()+d, 0, 0, 0, 0, loc).UTC()
}

// MinuteOfDay is t's minute of the day in loc.
func MinuteOfDay(t time.Time, loc *time.Location) int {
	l := t.In(loc)
	return l.Hour()*60 + l.Minute()
}

// Mission is a multi-week challenge with a stake.
type Mission struct {
	ID          string // opaque public id
	Key         int64  // row id, for the stores
	Code        string // 8-character join code
	HostID      string // the host's public id
	Host        string // the host's nickname
	Title       string
	Type        MissionType
	Description string
	Stake       int64
	Capacity    int
	MemberCount int
	Private     bool
	Status      MissionStatus
	Schedule    MissionSchedule
	EndsAt      time.Time
	Windows     []MissionWindow
	Version     int64
	ClosedAt    time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Ready reports whether the mission has everything it needs to open: the
// whole schedule and at least one window.
func (m *Mission) Ready() bool { return m.Schedule.Set() && len(m.Windows) > 0 }

// SeatsLeft is how many more members can join.
func (m *Mission) SeatsLeft() int { return max(m.Capacity-m.MemberCount, 0) }

// Validate normalises m's texts and checks what a host may create: title
// 4–30 characters, a type, description 6–300, stake 100–100,000, capacity
// 2–8.
func (m *Mission) Validate() error {
	var err error
	if m.Title, err = missionText("title", m.Title, MissionTitleMin, MissionTitleMax, false); err != nil {
		return err
	}
	if !m.Type.Valid() {
		return FieldErrorf(EINVALID, "type", "Field \"type\" must be LIFE, EXERCISE, STUDY, MEETING or ETC.")
	}
	if m.Description, err = missionText("description", m.Description, MissionDescriptionMin, MissionDescriptionMax, true); err != nil {
		return err
	}
	if m.Stake < MissionStakeMin || m.Stake > MissionStakeMax {
		return FieldErrorf(EINVALID, "stake", "The stake must be between %d and %d points.", MissionStakeMin, MissionStakeMax)
	}
	if m.Capacity < MissionCapacityMin || m.Capacity > MissionCapacityMax {
		return FieldErrorf(EINVALID, "capacity", "Capacity must be between %d and %d (the host included).", MissionCapacityMin, MissionCapacityMax)
	}
	return nil
}

// missionText is normalizeRoomText with a lower bound on the length.
func missionText(field, s string, lo, hi int, multiline bool) (string, error) {
	s, err := normalizeRoomText(field, s, hi, multiline)
	if err != nil {
		return "", err
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(s)); n < lo {
		return "", FieldErrorf(EINVALID, field, "%q is %d characters long; at least %d are needed.", field, n, lo)
	}
	return s, nil
}

// Payout is what a closed mission gives one member back.
type Payout struct {
	// RateBP is the member's rate in basis points (10,000 = 100 %).
	RateBP int
	// Refund is the part of the stake given back (a REFUND entry).
	Refund int64
	// Bonus is the 5 % of a team at 100 % (a BONUS entry).
	Bonus int64
}

// RateBP is done / required in basis points, at most 100 %.
func RateBP(done, required int) int {
	if required <= 0 {
		return 0
	}
	return min(done*10_000/required, 10_000)
}

// TeamPerfect reports whether every rate is 100 % (the team average is
// 100 % exactly when every member's is). An empty team is not perfect.
func TeamPerfect(ratesBP []int) bool {
	if len(ratesBP) == 0 {
		return false
	}
	for _, r := range ratesBP {
		if r < 10_000 {
			return false
		}
	}
	return true
}

// PayoutFor is Octopus's refund rule for one member with rate rateBP and
// stake: a team at 100 % → everyone gets the stake plus 5 % (the extra is a
// bonus); otherwise 100 % → the stake, ≥ 80 % → 80 % of it, below → 0.
func PayoutFor(stake int64, rateBP int, teamPerfect bool) Payout {
	p := Payout{RateBP: rateBP}
	switch {
	case teamPerfect:
		p.Refund = stake
		p.Bonus = stake * MissionBonusPercent / 100
	case rateBP >= 10_000:
		p.Refund = stake
	case rateBP >= MissionPartialPercent*100:
		p.Refund = stake * MissionPartialPercent / 100
	}
	return p
}

// MissionMember is a member of a mission.
type MissionMember struct {
	Key      int64  // mission_members row id; stake keys are made of it
	MemberID string // public id
	Nickname string
	Host     bool
	Status   MissionMemberStatus
	Stake    int64
	RateBP   int   // set by the close
	Payout   int64 // refund + bonus, set by the close
	JoinedAt time.Time
	LeftAt   time.Time
}
