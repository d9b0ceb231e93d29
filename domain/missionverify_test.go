package domain_test

import (
	"testing"
	"time"
	_ "time/tzdata" // Asia/Seoul even on hosts without a zoneinfo database

	"github.com/moim/moim/domain"
)

func verifyMission(t *testing.T, start time.Time) (*domain.Mission, *time.Location) {
	t.Helper()
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	s := domain.MissionSchedule{StartsAt: start, Weeks: 1, DaysPerWeek: 2, PerDay: 2}
	return &domain.Mission{Status: domain.MissionOngoing, Schedule: s, EndsAt: s.EndsAt(seoul),
		Windows: []domain.MissionWindow{{Start: 7 * 60, End: 9 * 60}, {Start: 21 * 60, End: 24 * 60}}}, seoul
}

func TestMissionVerifyAt(t *testing.T) {
	t.Parallel()
	seoul, _ := time.LoadLocation("Asia/Seoul")
	// The start is 12:00 on 2026-12-07: day 0 begins at the start, the
	// mission ends at 12:00 on 2026-12-14, and that last half-day belongs
	// to no day.
	m, _ := verifyMission(t, time.Date(2026, 12, 7, 12, 0, 0, 0, seoul))
	at := func(d, hh, mm int) time.Time { return time.Date(2026, 12, 7+d, hh, mm, 0, 0, seoul).UTC() }
	tests := []struct {
		name       string
		now        time.Time
		wantDay    int
		wantWindow int
		wantCode   string
	}{
		{"before the start, day 0", at(0, 8, 0), 0, 0, domain.EMISSIONNOTONGOING},
		{"day 0 evening", at(0, 21, 0), 0, 1, ""},
		{"day 6, last minute", at(6, 23, 59), 6, 1, ""},
		{"window start", at(3, 7, 0), 3, 0, ""},
		{"window end", at(3, 9, 0), 0, 0, domain.EOUTSIDEWINDOW},
		{"between windows", at(3, 12, 0), 0, 0, domain.EOUTSIDEWINDOW},
		{"the end's morning", at(7, 8, 0), 0, 0, domain.EMISSIONNOTONGOING},
	}
	for _, tt := range tests {
		d, w, err := m.VerifyAt(tt.now, seoul)
		if domain.ErrorCode(err) != tt.wantCode || (err == nil && (d != tt.wantDay || w != tt.wantWindow)) {
			t.Errorf("%s: VerifyAt = %d, %d, %v; want %d, %d, %q", tt.name, d, w, err, tt.wantDay, tt.wantWindow, tt.wantCode)
		}
	}
	m.Status = domain.MissionClose
	if _, _, err := m.VerifyAt(at(3, 7, 0), seoul); domain.ErrorCode(err) != domain.EMISSIONNOTONGOING {
		t.Errorf("closed: %v", err)
	}
}

func TestMissionPostableUntil(t *testing.T) {
	t.Parallel()
	seoul, _ := time.LoadLocation("Asia/Seoul")
	m, _ := verifyMission(t, time.Date(2026, 12, 7, 0, 0, 0, 0, seoul))
	at := func(d, hh, mm int) time.Time { return time.Date(2026, 12, 7+d, hh, mm, 0, 0, seoul) }
	tests := []struct {
		now  time.Time
		want time.Time // zero: none
	}{
		{at(0, 6, 0), at(0, 9, 0)},
		{at(0, 8, 59), at(0, 9, 0)},
		{at(0, 9, 0), at(1, 0, 0)}, // 24:00
		{at(6, 23, 59), at(7, 0, 0)},
		{at(7, 8, 0), time.Time{}}, // after the end
		{at(-1, 8, 0), time.Time{}},
	}
	for _, tt := range tests {
		got, ok := m.PostableUntil(tt.now, seoul)
		if ok != !tt.want.IsZero() || !got.Equal(tt.want) || (ok && got.Location() != time.UTC) {
			t.Errorf("PostableUntil(%v) = %v, %v; want %v", tt.now, got, ok, tt.want)
		}
	}
}

func TestMissionQuota(t *testing.T) {
	t.Parallel()
	s := domain.MissionSchedule{Weeks: 2, DaysPerWeek: 3, PerDay: 2}
	tests := []struct {
		day, week           int
		wantToday, wantWeek int
		wantCode            string
	}{
		{0, 0, 2, 6, ""},
		{1, 1, 1, 5, ""},
		{2, 2, 0, 4, domain.EQUOTAREACHED},
		{0, 5, 1, 1, ""},
		{0, 6, 0, 0, domain.EQUOTAREACHED},
	}
	for _, tt := range tests {
		today, week := s.Remaining(tt.day, tt.week)
		err := s.CheckQuota(tt.day, tt.week)
		if today != tt.wantToday || week != tt.wantWeek || domain.ErrorCode(err) != tt.wantCode {
			t.Errorf("(%d, %d): remaining %d/%d, %v; want %d/%d, %q", tt.day, tt.week, today, week, err, tt.wantToday, tt.wantWeek, tt.wantCode)
		}
	}
	if got := domain.AverageRateBP([]int{10_000, 833}); got != 5416 {
		t.Errorf("AverageRateBP = %d, want 5416", got)
	}
	if got := domain.AverageRateBP(nil); got != 0 {
		t.Errorf("AverageRateBP(nil) = %d", got)
	}
	if got := domain.VerifyWindowText(domain.MissionWindow{Start: 21*60 + 5, End: 24 * 60}); got != "21:05-24:00" {
		t.Errorf("VerifyWindowText = %q", got)
	}
}
