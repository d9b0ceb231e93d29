package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/moim/moim/domain"
)

var missionNow = time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)

func seoulZone(t *testing.T) *time.Location {
	t.Helper()
	// A fixed +9 zone: the rules read dates in the zone they are given, and
	// must not depend on the machine's zone database or its TZ.
	return time.FixedZone("KST", 9*60*60)
}

func validMission() domain.Mission {
	return domain.Mission{Title: " 매일 달리기 ", Type: domain.MissionExercise, Description: "하루 30분 달려요",
		Stake: 1000, Capacity: 8}
}

func TestMissionValidate(t *testing.T) {
	t.Parallel()
	m := validMission()
	if err := m.Validate(); err != nil {
		t.Fatalf("valid mission: %v", err)
	}
	if m.Title != "매일 달리기" {
		t.Errorf("title = %q, want trimmed", m.Title)
	}
	for _, tc := range []struct {
		name   string
		adjust func(*domain.Mission)
		field  string
	}{
		{"title 3", func(m *domain.Mission) { m.Title = "달리기" }, "title"},
		{"title 31", func(m *domain.Mission) {
			m.Title = "가나다라마바사아자차카타파하가나다라마바사아자차카타파하가나다"
		}, "title"},
		{"title newline", func(m *domain.Mission) { m.Title = "매일\n달리기" }, "title"},
		{"no type", func(m *domain.Mission) { m.Type = 0 }, "type"},
		{"description 5", func(m *domain.Mission) { m.Description = "다섯글자임" }, "description"},
		{"stake 99", func(m *domain.Mission) { m.Stake = 99 }, "stake"},
		{"stake 100,001", func(m *domain.Mission) { m.Stake = 100_001 }, "stake"},
		{"capacity 1", func(m *domain.Mission) { m.Capacity = 1 }, "capacity"},
		{"capacity 9", func(m *domain.Mission) { m.Capacity = 9 }, "capacity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validMission()
			tc.adjust(&m)
			err := m.Validate()
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EINVALID || de.Field != tc.field {
				t.Fatalf("Validate = %v, want invalid %s", err, tc.field)
			}
		})
	}
	for _, stake := range []int64{100, 100_000} {
		m := validMission()
		m.Stake = stake
		if err := m.Validate(); err != nil {
			t.Errorf("stake %d: %v", stake, err)
		}
	}
}

func TestValidateWindows(t *testing.T) {
	t.Parallel()
	got, err := domain.ValidateWindows([]domain.MissionWindow{{Start: 1200, End: 1440}, {Start: 360, End: 540}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Start != 360 || got[1].Start != 1200 {
		t.Errorf("windows not sorted: %v", got)
	}
	// Touching windows do not overlap: the end is exclusive.
	if _, err := domain.ValidateWindows([]domain.MissionWindow{{Start: 0, End: 60}, {Start: 60, End: 120}}); err != nil {
		t.Errorf("touching windows: %v", err)
	}
	for name, ws := range map[string][]domain.MissionWindow{
		"none":        nil,
		"inverted":    {{Start: 600, End: 540}},
		"empty":       {{Start: 600, End: 600}},
		"past 24:00":  {{Start: 600, End: 1441}},
		"negative":    {{Start: -1, End: 60}},
		"overlapping": {{Start: 360, End: 600}, {Start: 540, End: 700}},
		"too many":    {{0, 10}, {20, 30}, {40, 50}, {60, 70}, {80, 90}, {100, 110}, {120, 130}},
	} {
		if _, err := domain.ValidateWindows(ws); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
}

func TestMissionScheduleValidate(t *testing.T) {
	t.Parallel()
	ok := domain.MissionSchedule{StartsAt: missionNow.Add(time.Hour), Weeks: 2, DaysPerWeek: 5, PerDay: 1}
	if err := ok.Validate(missionNow, 90*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if ok.Required() != 10 || ok.WeekQuota() != 5 {
		t.Errorf("required %d, week quota %d; want 10 and 5", ok.Required(), ok.WeekQuota())
	}
	for name, s := range map[string]domain.MissionSchedule{
		"past start":  {StartsAt: missionNow.Add(-time.Minute), Weeks: 1, DaysPerWeek: 1, PerDay: 1},
		"start now":   {StartsAt: missionNow, Weeks: 1, DaysPerWeek: 1, PerDay: 1},
		"too far":     {StartsAt: missionNow.Add(91 * 24 * time.Hour), Weeks: 1, DaysPerWeek: 1, PerDay: 1},
		"0 weeks":     {StartsAt: missionNow.Add(time.Hour), Weeks: 0, DaysPerWeek: 1, PerDay: 1},
		"8 days":      {StartsAt: missionNow.Add(time.Hour), Weeks: 1, DaysPerWeek: 8, PerDay: 1},
		"0 a day":     {StartsAt: missionNow.Add(time.Hour), Weeks: 1, DaysPerWeek: 1, PerDay: 0},
		"no start":    {Weeks: 1, DaysPerWeek: 1, PerDay: 1},
		"13 weeks":    {StartsAt: missionNow.Add(time.Hour), Weeks: 13, DaysPerWeek: 1, PerDay: 1},
		"11 a day":    {StartsAt: missionNow.Add(time.Hour), Weeks: 1, DaysPerWeek: 1, PerDay: 11},
		"zero sched.": {},
	} {
		if err := s.Validate(missionNow, 90*24*time.Hour); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
}

func TestMissionDaysAndWeeks(t *testing.T) {
	t.Parallel()
	loc := seoulZone(t)
	// 23:30 in Seoul on 7 December: day 0 lasts half an hour.
	start := time.Date(2026, 12, 7, 23, 30, 0, 0, loc)
	s := domain.MissionSchedule{StartsAt: start, Weeks: 2, DaysPerWeek: 7, PerDay: 1}
	for _, tc := range []struct {
		at        time.Time
		day, week int
	}{
		{start, 0, 1},
		{time.Date(2026, 12, 7, 23, 59, 59, 0, loc), 0, 1},
		{time.Date(2026, 12, 8, 0, 0, 0, 0, loc), 1, 1},
		{time.Date(2026, 12, 13, 23, 59, 0, 0, loc), 6, 1},
		{time.Date(2026, 12, 14, 0, 0, 0, 0, loc), 7, 2},
		{time.Date(2026, 12, 21, 9, 0, 0, 0, loc), 14, 3},
	} {
		d := s.Day(tc.at, loc)
		if d != tc.day || domain.Week(d) != tc.week {
			t.Errorf("%v: day %d week %d, want %d and %d", tc.at, d, domain.Week(d), tc.day, tc.week)
		}
	}
	if got, want := s.EndsAt(loc), time.Date(2026, 12, 21, 23, 30, 0, 0, loc); !got.Equal(want) {
		t.Errorf("EndsAt = %v, want %v", got, want)
	}
	if got, want := s.DayStart(1, loc), time.Date(2026, 12, 8, 0, 0, 0, 0, loc); !got.Equal(want) {
		t.Errorf("DayStart(1) = %v, want %v", got, want)
	}
	if got := domain.MinuteOfDay(time.Date(2026, 12, 7, 14, 5, 0, 0, time.UTC), loc); got != 23*60+5 {
		t.Errorf("MinuteOfDay = %d, want 1385", got)
	}
	w := domain.MissionWindow{Start: 360, End: 540}
	if !w.Contains(360) || w.Contains(540) || w.Contains(359) {
		t.Error("a window holds its start and not its end")
	}
}

func TestPayout(t *testing.T) {
	t.Parallel()
	if got := domain.RateBP(17, 20); got != 8500 {
		t.Errorf("RateBP(17, 20) = %d, want 8500", got)
	}
	if got := domain.RateBP(25, 20); got != 10_000 {
		t.Errorf("RateBP caps at 100 %%, got %d", got)
	}
	if domain.RateBP(1, 0) != 0 {
		t.Error("RateBP with nothing required is 0")
	}
	if !domain.TeamPerfect([]int{10_000, 10_000}) || domain.TeamPerfect([]int{10_000, 9_999}) || domain.TeamPerfect(nil) {
		t.Error("TeamPerfect: every rate at 100 %, and not for an empty team")
	}
	for _, tc := range []struct {
		rate          int
		team          bool
		refund, bonus int64
	}{
		{10_000, true, 1000, 50},
		{10_000, false, 1000, 0},
		{9_999, false, 800, 0},
		{8_000, false, 800, 0},
		{7_999, false, 0, 0},
		{0, false, 0, 0},
	} {
		p := domain.PayoutFor(1000, tc.rate, tc.team)
		if p.Refund != tc.refund || p.Bonus != tc.bonus || p.RateBP != tc.rate {
			t.Errorf("PayoutFor(1000, %d, %v) = %+v, want refund %d bonus %d", tc.rate, tc.team, p, tc.refund, tc.bonus)
		}
	}
}
