package domain_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/moim/moim/domain"
)

func seoulRules(t *testing.T) domain.ReminderRules {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	return domain.ReminderRules{Location: loc, DDayAt: 8 * time.Hour, StartsSoonBefore: 30 * time.Minute,
		EndedAfter: time.Hour, Grace: 15 * time.Minute}
}

func TestReminderDue(t *testing.T) {
	rr := seoulRules(t)
	kst := rr.Location
	start := time.Date(2026, 12, 5, 19, 0, 0, 0, kst) // a Saturday evening run
	for _, tc := range []struct {
		kind domain.ReminderKind
		want time.Time
	}{
		{domain.ReminderDDay, time.Date(2026, 12, 5, 8, 0, 0, 0, kst)},
		{domain.ReminderStartsSoon, time.Date(2026, 12, 5, 18, 30, 0, 0, kst)},
		{domain.ReminderEnded, time.Date(2026, 12, 5, 20, 0, 0, 0, kst)},
	} {
		got, ok := rr.Due(tc.kind, start)
		if !ok || !got.Equal(tc.want) {
			t.Errorf("%v due %v %v, want %v", tc.kind, got, ok, tc.want)
		}
		if rr.Sendable(tc.kind, start, tc.want.Add(-time.Second)) {
			t.Errorf("%v sendable a second early", tc.kind)
		}
		if !rr.Sendable(tc.kind, start, tc.want) || !rr.Sendable(tc.kind, start, tc.want.Add(14*time.Minute)) {
			t.Errorf("%v not sendable within the grace window", tc.kind)
		}
		if rr.Sendable(tc.kind, start, tc.want.Add(15*time.Minute)) {
			t.Errorf("%v sendable after the grace window", tc.kind)
		}
	}
	// A run at 07:00 gets no D-day reminder at 08:00.
	if _, ok := rr.Due(domain.ReminderDDay, time.Date(2026, 12, 5, 7, 0, 0, 0, kst)); ok {
		t.Error("D-day reminder after an early run's start")
	}
	// The day is Seoul's: 23:30 UTC on the 4th is 08:30 on the 5th there.
	got, _ := rr.Due(domain.ReminderDDay, time.Date(2026, 12, 4, 23, 30, 0, 0, time.UTC))
	if want := time.Date(2026, 12, 5, 8, 0, 0, 0, kst); !got.Equal(want) {
		t.Errorf("D-day of a start given in UTC = %v, want %v", got, want)
	}
}

// TestReminderStartWindow: every room whose reminder is sendable at now
// starts inside the window the store is asked for.
func TestReminderStartWindow(t *testing.T) {
	rr := seoulRules(t)
	r := rand.New(rand.NewPCG(3, 5))
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for range 20000 {
		now := base.Add(time.Duration(r.Int64N(int64(72 * time.Hour))))
		start := now.Add(time.Duration(r.Int64N(int64(60*time.Hour))) - 30*time.Hour).Truncate(time.Minute)
		for _, k := range domain.ReminderKinds() {
			if !rr.Sendable(k, start, now) {
				continue
			}
			from, to := rr.StartWindow(k, now)
			if start.Before(from) || !start.Before(to) {
				t.Fatalf("%v: start %v sendable at %v but outside [%v, %v)", k, start, now, from, to)
			}
		}
	}
}
