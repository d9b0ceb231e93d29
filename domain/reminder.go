package domain

import (
	"fmt"
	"time"
)

// ReminderKind is one of a group run's reminders (ErunJrun). Stored.
type ReminderKind int

// The reminder kinds. Stored numbers.
const (
	ReminderDDay ReminderKind = iota + 1
	ReminderStartsSoon
	ReminderEnded
)

// ReminderKinds lists every kind, in order.
func ReminderKinds() []ReminderKind {
	return []ReminderKind{ReminderDDay, ReminderStartsSoon, ReminderEnded}
}

func (k ReminderKind) String() string {
	switch k {
	case ReminderDDay:
		return "DDAY"
	case ReminderStartsSoon:
		return "STARTS_SOON"
	case ReminderEnded:
		return "ENDED"
	}
	return fmt.Sprintf("ReminderKind(%d)", int(k))
}

// Notification is the notification type the reminder sends.
func (k ReminderKind) Notification() NotificationType {
	switch k {
	case ReminderDDay:
		return NotifyRunDDay
	case ReminderStartsSoon:
		return NotifyRunStartsSoon
	}
	return NotifyRunEnded
}

// ReminderRules say when each reminder of a room is due and which
// categories get it.
type ReminderRules struct {
	// Location is where "the day" and DDayAt are read (Asia/Seoul).
	Location *time.Location
	// DDayAt is the time of day of the D-day reminder, from midnight.
	DDayAt time.Duration
	// StartsSoonBefore is how long before the start the starts-soon
	// reminder goes out; attendance opens then too.
	StartsSoonBefore time.Duration
	// EndedAfter is how long after the start the room counts as over: the
	// ended reminder goes out and guests may evaluate the host.
	EndedAfter time.Duration
	// Grace is how late a reminder may still go out: a tick that ran late
	// (a scheduler down for a few minutes) still sends it, a much later one
	// does not.
	Grace time.Duration
	// Categories lists, per kind, the room categories that get it.
	Categories map[ReminderKind][]Category
}

// Applies reports whether rooms of category c get reminders of kind k.
func (rr ReminderRules) Applies(k ReminderKind, c Category) bool {
	for _, x := range rr.Categories[k] {
		if x == c {
			return true
		}
	}
	return false
}

// Due returns when the reminder of kind k is due for a room starting at
// startsAt, and false when the room gets none: a D-day reminder whose time
// of day is not before the start (an early run is covered by the
// starts-soon reminder).
func (rr ReminderRules) Due(k ReminderKind, startsAt time.Time) (time.Time, bool) {
	switch k {
	case ReminderDDay:
		loc := rr.Location
		if loc == nil {
			loc = time.UTC
		}
		local := startsAt.In(loc)
		day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
		due := day.Add(rr.DDayAt)
		return due, due.Before(startsAt)
	case ReminderStartsSoon:
		return startsAt.Add(-rr.StartsSoonBefore), true
	case ReminderEnded:
		return startsAt.Add(rr.EndedAfter), true
	}
	return time.Time{}, false
}

// Sendable reports whether the reminder of kind k for a room starting at
// startsAt goes out at now: it is due, and not more than Grace ago.
func (rr ReminderRules) Sendable(k ReminderKind, startsAt, now time.Time) bool {
	due, ok := rr.Due(k, startsAt)
	return ok && !now.Before(due) && now.Before(due.Add(rr.Grace))
}

// StartWindow returns a range [from, to) of start times that holds every
// room whose reminder of kind k is sendable at now (and maybe a few more,
// which Sendable then leaves out): what the store is asked for.
func (rr ReminderRules) StartWindow(k ReminderKind, now time.Time) (from, to time.Time) {
	switch k {
	case ReminderDDay:
		// due = local midnight of the start + DDayAt, in (now-Grace, now];
		// the start lies within the 24 (or 25, across a DST change) hours
		// after that midnight.
		return now.Add(-rr.Grace - rr.DDayAt - time.Hour), now.Add(-rr.DDayAt + 26*time.Hour)
	case ReminderStartsSoon:
		return now.Add(rr.StartsSoonBefore - rr.Grace), now.Add(rr.StartsSoonBefore + time.Second)
	case ReminderEnded:
		return now.Add(-rr.EndedAfter - rr.Grace), now.Add(-rr.EndedAfter + time.Second)
	}
	return now, now
}
