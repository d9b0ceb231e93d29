package domain

import (
	"fmt"
	"time"
)

// MissionVerification is one photo a member posted for a mission.
type MissionVerification struct {
	ID        string // opaque public id
	Key       int64  // row id
	MissionID string // the mission's public id
	MemberID  string // the poster's public id
	Nickname  string
	Image     Image
	// Day is the mission day (0 = the start's local date), Week its week
	// (1 = days 0–6).
	Day  int
	Week int
	// Window is the window the photo was posted in.
	Window    MissionWindow
	CreatedAt time.Time
}

// VerifyWindowText writes w as "HH:MM-HH:MM" (an end of 24:00 stays
// 24:00).
func VerifyWindowText(w MissionWindow) string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// MissionDays is how many days a mission has: 7 × weeks (0 before the
// schedule is set).
func (s MissionSchedule) MissionDays() int { return 7 * s.Weeks }

// DayDate is the local calendar date of mission day d as "YYYY-MM-DD".
func (s MissionSchedule) DayDate(d int, loc *time.Location) string {
	a := s.StartsAt.In(loc)
	return time.Date(a.Year(), a.Month(), a.Day()+d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
}

// VerifyDay is the mission day of now, and false when now is not inside
// the mission: before its start, at or after its end, or not on one of its
// 7 × weeks days (a start in the middle of a day ends in the middle of a
// day, and that last part-day belongs to no week).
func (m *Mission) VerifyDay(now time.Time, loc *time.Location) (int, bool) {
	if !m.Schedule.Set() || now.Before(m.Schedule.StartsAt) {
		return 0, false
	}
	if end := m.verifyEnd(loc); !now.Before(end) {
		return 0, false
	}
	d := m.Schedule.Day(now, loc)
	return d, d >= 0 && d < m.Schedule.MissionDays()
}

// verifyEnd is the stored end, or the schedule's when none was stored.
func (m *Mission) verifyEnd(loc *time.Location) time.Time {
	if !m.EndsAt.IsZero() {
		return m.EndsAt
	}
	return m.Schedule.EndsAt(loc)
}

// VerifyAt says where a photo posted at now falls: its mission day and the
// position of its window among m.Windows (by start). Errors:
// EMISSIONNOTONGOING unless m is ONGOING and now on one of its days,
// EOUTSIDEWINDOW when now is in none of the windows (start inclusive, end
// exclusive, to the minute).
func (m *Mission) VerifyAt(now time.Time, loc *time.Location) (day, window int, err error) {
	if m.Status != MissionOngoing {
		return 0, 0, Errorf(EMISSIONNOTONGOING, "The mission is %s; photos are taken only while it is ONGOING.", m.Status)
	}
	day, ok := m.VerifyDay(now, loc)
	if !ok {
		return 0, 0, Errorf(EMISSIONNOTONGOING, "The mission is not running at this time.")
	}
	minute := MinuteOfDay(now, loc)
	for i, w := range m.Windows {
		if w.Contains(minute) {
			return day, i, nil
		}
	}
	return 0, 0, Errorf(EOUTSIDEWINDOW, "Photos are taken only inside the verification windows (%s).", verifyWindowList(m.Windows))
}

func verifyWindowList(ws []MissionWindow) string {
	s := ""
	for i, w := range ws {
		if i > 0 {
			s += ", "
		}
		s += VerifyWindowText(w)
	}
	return s
}

// Remaining is how many more photos a member who has posted dayCount today
// and weekCount this week may post today and this week.
func (s MissionSchedule) Remaining(dayCount, weekCount int) (today, week int) {
	week = max(s.WeekQuota()-weekCount, 0)
	return min(max(s.PerDay-dayCount, 0), week), week
}

// CheckQuota refuses a photo over the day's or the week's quota with
// EQUOTAREACHED.
func (s MissionSchedule) CheckQuota(dayCount, weekCount int) error {
	switch {
	case dayCount >= s.PerDay:
		return Errorf(EQUOTAREACHED, "You have posted %d of %d photos today.", dayCount, s.PerDay)
	case weekCount >= s.WeekQuota():
		return Errorf(EQUOTAREACHED, "You have posted %d of %d photos this week.", weekCount, s.WeekQuota())
	}
	return nil
}

// PostableUntil is the end of the window a photo may be posted in at now or
// later today (the current window, else the next one), capped at the
// mission's end; false when none is left today or m is not running.
func (m *Mission) PostableUntil(now time.Time, loc *time.Location) (time.Time, bool) {
	if m.Status != MissionOngoing {
		return time.Time{}, false
	}
	day, ok := m.VerifyDay(now, loc)
	if !ok {
		return time.Time{}, false
	}
	minute := MinuteOfDay(now, loc)
	midnight := m.Schedule.DayStart(day, loc).In(loc)
	end := m.verifyEnd(loc)
	for _, w := range m.Windows {
		if w.End <= minute {
			continue
		}
		// time.Date normalises minute 1440 to the next midnight.
		start := time.Date(midnight.Year(), midnight.Month(), midnight.Day(), 0, w.Start, 0, 0, loc)
		if !start.Before(end) {
			return time.Time{}, false
		}
		until := time.Date(midnight.Year(), midnight.Month(), midnight.Day(), 0, w.End, 0, 0, loc)
		if until.After(end) {
			until = end
		}
		return until.UTC(), true
	}
	return time.Time{}, false
}

// AverageRateBP is the team's average rate in basis points (0 for no
// members).
func AverageRateBP(ratesBP []int) int {
	if len(ratesBP) == 0 {
		return 0
	}
	sum := 0
	for _, r := range ratesBP {
		sum += r
	}
	return sum / len(ratesBP)
}
