package domain

import (
	"crypto/subtle"
	"fmt"
	"strings"
	"time"
)

// MissionCodeAlphabet is the alphabet of join codes: upper-case letters and
// digits without the look-alikes I, O, 0 and 1, so a code read aloud or off
// a screen is typed right. 32 symbols: a random byte modulo 32 is unbiased.
const MissionCodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// NormalizeMissionCode upper-cases and trims a code as a member typed it.
func NormalizeMissionCode(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// BeforeStart reports whether m is still being set up or recruiting at now:
// UNACTIVATED or OPEN, and its start (if set) not reached. Until then
// members leave with their stake and the host may cancel.
func (m *Mission) BeforeStart(now time.Time) bool {
	if m.Status != MissionUnactivated && m.Status != MissionOpen {
		return false
	}
	return m.Schedule.StartsAt.IsZero() || now.Before(m.Schedule.StartsAt)
}

// ErrMissionNotOpen is the error of a change m no longer takes at now.
func ErrMissionNotOpen(m *Mission, now time.Time) *Error {
	switch {
	case m.Status == MissionUnactivated:
		return Errorf(EMISSIONNOTOPEN, "The mission is not open yet: its schedule or windows are not set.")
	case m.Status == MissionCancelled:
		return Errorf(EMISSIONNOTOPEN, "The mission was cancelled.")
	case m.Status == MissionClose:
		return Errorf(EMISSIONNOTOPEN, "The mission has ended.")
	case m.Status == MissionOngoing || !now.Before(m.Schedule.StartsAt):
		return Errorf(EMISSIONNOTOPEN, "The mission has started.")
	}
	return Errorf(EMISSIONNOTOPEN, "The mission is not open.")
}

// Joinable reports why a member cannot join m at now, if they cannot: it
// must be OPEN, before its start, with a seat left.
// Errors: EMISSIONNOTOPEN, EMISSIONFULL.
func (m *Mission) Joinable(now time.Time) error {
	if m.Status != MissionOpen || !now.Before(m.Schedule.StartsAt) {
		return ErrMissionNotOpen(m, now)
	}
	if m.SeatsLeft() == 0 {
		return Errorf(EMISSIONFULL, "The mission is full.")
	}
	return nil
}

// CheckCode checks the code given to join m: a private mission wants its
// own, a public one takes none or its own. Errors: EWRONGCODE.
func (m *Mission) CheckCode(code string) error {
	code = NormalizeMissionCode(code)
	if !m.Private && code == "" {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(code), []byte(m.Code)) != 1 {
		return FieldErrorf(EWRONGCODE, "code", "Wrong or missing join code.")
	}
	return nil
}

// Editable reports why the host cannot change m's schedule or windows at
// now, if they cannot: only before the start, and only while the host is
// its only member, because those who joined staked on the terms they saw.
// Errors: EMISSIONNOTOPEN, ECONFLICT.
func (m *Mission) Editable(now time.Time) error {
	if !m.BeforeStart(now) {
		return ErrMissionNotOpen(m, now)
	}
	if m.MemberCount > 1 {
		return Errorf(ECONFLICT, "Members have joined: the schedule and windows can no longer change.")
	}
	return nil
}

// ParseMissionClock reads a window's "HH:MM" as minutes of the day;
// "24:00" is taken only as an end (end true).
func ParseMissionClock(field, s string, end bool) (int, error) {
	bad := FieldErrorf(EINVALID, field, "Field %q must be a time of day as HH:MM (00:00–23:59, or 24:00 as an end).", field)
	if len(s) != 5 || s[2] != ':' {
		return 0, bad
	}
	var h, m int
	for i, c := range []byte(s) {
		if i == 2 {
			continue
		}
		if c < '0' || c > '9' {
			return 0, bad
		}
		if i < 2 {
			h = h*10 + int(c-'0')
		} else {
			m = m*10 + int(c-'0')
		}
	}
	if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
		return 0, bad
	}
	return h*60 + m, nil
}

// MissionClock writes minutes of the day as "HH:MM" (1440 is "24:00").
func MissionClock(minute int) string { return fmt.Sprintf("%02d:%02d", minute/60, minute%60) }

var missionMemberStatusNames = map[MissionMemberStatus]string{MissionMemberActive: "ACTIVE", MissionMemberLeft: "LEFT"}

func (s MissionMemberStatus) String() string {
	if n, ok := missionMemberStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("MissionMemberStatus(%d)", int(s))
}

// MarshalText writes the wire name.
func (s MissionMemberStatus) MarshalText() ([]byte, error) {
	if _, ok := missionMemberStatusNames[s]; !ok {
		return nil, fmt.Errorf("invalid mission member status %d", int(s))
	}
	return []byte(s.String()), nil
}
