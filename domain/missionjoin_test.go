package domain_test

import (
	"testing"
	"time"

	"github.com/moim/moim/domain"
)

func TestParseMissionClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		end  bool
		want int
		ok   bool
	}{
		{"00:00", false, 0, true},
		{"06:30", false, 390, true},
		{"23:59", true, 1439, true},
		{"24:00", true, 1440, true},
		{"24:00", false, 0, false},
		{"24:01", true, 0, false},
		{"12:60", false, 0, false},
		{"9:30", false, 0, false},
		{"09-30", false, 0, false},
		{"0a:30", false, 0, false},
		{"", false, 0, false},
		{"+1:30", false, 0, false},
	} {
		got, err := domain.ParseMissionClock("windows", tc.in, tc.end)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseMissionClock(%q, %v) = %d, %v", tc.in, tc.end, got, err)
		}
		if err != nil && domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%q: code %s", tc.in, domain.ErrorCode(err))
		}
		if tc.ok && domain.MissionClock(got) != tc.in {
			t.Errorf("MissionClock(%d) = %q, want %q", got, domain.MissionClock(got), tc.in)
		}
	}
}

func TestMissionJoinable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	start := now.Add(time.Hour)
	open := domain.Mission{Status: domain.MissionOpen, Capacity: 3, MemberCount: 2, Code: "ABCDEFGH",
		Schedule: domain.MissionSchedule{StartsAt: start, Weeks: 1, DaysPerWeek: 1, PerDay: 1}}
	with := func(f func(m *domain.Mission)) *domain.Mission { m := open; f(&m); return &m }
	for _, tc := range []struct {
		name string
		m    *domain.Mission
		at   time.Time
		want string
	}{
		{"open", &open, now, ""},
		{"full", with(func(m *domain.Mission) { m.MemberCount = 3 }), now, domain.EMISSIONFULL},
		{"at the start", &open, start, domain.EMISSIONNOTOPEN},
		{"unactivated", with(func(m *domain.Mission) { m.Status = domain.MissionUnactivated }), now, domain.EMISSIONNOTOPEN},
		{"ongoing", with(func(m *domain.Mission) { m.Status = domain.MissionOngoing }), now, domain.EMISSIONNOTOPEN},
		{"closed", with(func(m *domain.Mission) { m.Status = domain.MissionClose }), now, domain.EMISSIONNOTOPEN},
		{"cancelled", with(func(m *domain.Mission) { m.Status = domain.MissionCancelled }), now, domain.EMISSIONNOTOPEN},
	} {
		if got := domain.ErrorCode(tc.m.Joinable(tc.at)); got != tc.want {
			t.Errorf("%s: Joinable = %q, want %q", tc.name, got, tc.want)
		}
	}
	if !open.BeforeStart(now) || open.BeforeStart(start) || !with(func(m *domain.Mission) {
		m.Status, m.Schedule = domain.MissionUnactivated, domain.MissionSchedule{}
	}).BeforeStart(now) {
		t.Error("BeforeStart")
	}
	if got := domain.ErrorCode(open.Editable(now)); got != domain.ECONFLICT {
		t.Errorf("Editable with a member = %q", got)
	}
	if got := domain.ErrorCode(with(func(m *domain.Mission) { m.MemberCount = 1 }).Editable(now)); got != "" {
		t.Errorf("Editable alone = %q", got)
	}
	if got := domain.ErrorCode(with(func(m *domain.Mission) { m.MemberCount = 1 }).Editable(start)); got != domain.EMISSIONNOTOPEN {
		t.Errorf("Editable at the start = %q", got)
	}
}

func TestMissionCheckCode(t *testing.T) {
	t.Parallel()
	pub := domain.Mission{Code: "ABCDEFGH"}
	priv := domain.Mission{Code: "ABCDEFGH", Private: true}
	for _, tc := range []struct {
		m    *domain.Mission
		code string
		ok   bool
	}{
		{&pub, "", true}, {&pub, "abcdefgh", true}, {&pub, "ABCDEFGX", false},
		{&priv, "", false}, {&priv, " abcdefgh ", true}, {&priv, "ABCDEFG", false},
	} {
		err := tc.m.CheckCode(tc.code)
		if (err == nil) != tc.ok || (err != nil && domain.ErrorCode(err) != domain.EWRONGCODE) {
			t.Errorf("private %v, code %q: %v", tc.m.Private, tc.code, err)
		}
	}
}
