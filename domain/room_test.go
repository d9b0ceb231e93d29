package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moim/moim/domain"
)

var roomNow = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

func validRoom() domain.Room {
	return domain.Room{Category: domain.CategoryMeal, Title: " 점심 ", Body: "같이 먹어요\n12시", Place: "개포",
		StartsAt: roomNow.Add(2 * time.Hour), Capacity: 4}
}

func TestRoomValidate(t *testing.T) {
	rules := domain.RoomRules{RunLead: 6 * time.Hour, MaxAhead: 365 * 24 * time.Hour}
	r := validRoom()
	if err := r.Validate(roomNow, rules); err != nil {
		t.Fatalf("valid room: %v", err)
	}
	if r.Title != "점심" {
		t.Errorf("title = %q, want trimmed", r.Title)
	}
	for _, tc := range []struct {
		name   string
		adjust func(*domain.Room)
		code   string
		field  string
	}{
		{"capacity 0", func(r *domain.Room) { r.Capacity = 0 }, domain.EINVALID, "capacity"},
		{"capacity 21", func(r *domain.Room) { r.Capacity = 21 }, domain.EINVALID, "capacity"},
		{"in the past", func(r *domain.Room) { r.StartsAt = roomNow.Add(-time.Minute) }, domain.EINVALID, "date"},
		{"now", func(r *domain.Room) { r.StartsAt = roomNow }, domain.EINVALID, "date"},
		{"run inside the lead", func(r *domain.Room) { r.Category = domain.CategoryRun; r.StartsAt = roomNow.Add(5 * time.Hour) }, domain.EINVALID, "date"},
		{"blank title", func(r *domain.Room) { r.Title = "  " }, domain.EINVALID, "title"},
		{"long title", func(r *domain.Room) { r.Title = strings.Repeat("가", 256) }, domain.EINVALID, "title"},
		{"control in title", func(r *domain.Room) { r.Title = "a\x00b" }, domain.EINVALID, "title"},
		{"newline in title", func(r *domain.Room) { r.Title = "a\nb" }, domain.EINVALID, "title"},
		{"bidi override in title", func(r *domain.Room) { r.Title = "gpj.\u202Eexe" }, domain.EINVALID, "title"},
		{"zero-width space in place", func(r *domain.Room) { r.Place = "개\u200B포" }, domain.EINVALID, "place"},
		{"C1 control in body", func(r *domain.Room) { r.Body = "a\u0085b" }, domain.EINVALID, "body"},
		{"Hangul filler in title", func(r *domain.Room) { r.Title = "a\u3164" }, domain.EINVALID, "title"},
		{"beyond the horizon", func(r *domain.Room) { r.StartsAt = roomNow.Add(365*24*time.Hour + time.Minute) }, domain.EINVALID, "date"},
		{"year 9999", func(r *domain.Room) { r.StartsAt = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC) }, domain.EINVALID, "date"},
		{"long body", func(r *domain.Room) { r.Body = strings.Repeat("a", domain.RoomBodyMax+1) }, domain.EINVALID, "body"},
		{"no place", func(r *domain.Room) { r.Place = "" }, domain.EINVALID, "place"},
		{"study types on MEAL", func(r *domain.Room) { r.Conditions.StudyTypes = 1 }, domain.EINVALID, "study_types"},
		{"ways on RUN", func(r *domain.Room) {
			r.Category = domain.CategoryRun
			r.StartsAt = roomNow.Add(7 * time.Hour)
			r.Conditions.WaysOfEating = 1
		}, domain.EINVALID, "ways_of_eating"},
		{"bad category", func(r *domain.Room) { r.Category = 9 }, domain.EINVALID, "category"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := validRoom()
			tc.adjust(&r)
			err := r.Validate(roomNow, rules)
			if domain.ErrorCode(err) != tc.code {
				t.Fatalf("code = %q (%v), want %q", domain.ErrorCode(err), err, tc.code)
			}
			var de *domain.Error
			if !errors.As(err, &de) || de.Field != tc.field {
				t.Errorf("field of %v, want %q", err, tc.field)
			}
		})
	}
	run := validRoom()
	run.Category, run.StartsAt = domain.CategoryRun, roomNow.Add(6*time.Hour)
	if err := run.Validate(roomNow, rules); err != nil {
		t.Errorf("RUN exactly at the lead: %v", err)
	}
	far := validRoom()
	far.StartsAt = roomNow.Add(365 * 24 * time.Hour)
	if err := far.Validate(roomNow, rules); err != nil {
		t.Errorf("start exactly at the horizon: %v", err)
	}
	emoji := validRoom()
	emoji.Title = "한강 🏃\u200D♀️ 5km"
	if err := emoji.Validate(roomNow, rules); err != nil {
		t.Errorf("emoji joined by a zero-width joiner: %v", err)
	}
	long := validRoom()
	long.Body = strings.Repeat("가", domain.RoomBodyMax)
	if err := long.Validate(roomNow, rules); err != nil {
		t.Errorf("body of the maximum length: %v", err)
	}
}

func TestParseRoomConditions(t *testing.T) {
	c, err := domain.ParseRoomConditions(domain.CategoryMeal, []string{"GAEPO"}, []string{"LUNCH", "DUNCH"}, nil, nil)
	if err != nil || c.Places != 2 || c.TimesOfEating != 6 || c.WaysOfEating != 0 || c.StudyTypes != 0 {
		t.Errorf("MEAL = %+v, %v", c, err)
	}
	for _, tc := range []struct {
		name                       string
		cat                        domain.Category
		places, times, ways, study []string
		field                      string
	}{
		{"times on STUDY", domain.CategoryStudy, nil, []string{"LUNCH"}, nil, nil, "times_of_eating"},
		{"study on MEAL", domain.CategoryMeal, nil, nil, nil, []string{"INNER_CIRCLE"}, "study_types"},
		{"unknown place", domain.CategoryRun, []string{"BUSAN"}, nil, nil, nil, "places"},
		{"twice", domain.CategoryMeal, nil, nil, []string{"EATOUT", "EATOUT"}, nil, "ways_of_eating"},
	} {
		_, err := domain.ParseRoomConditions(tc.cat, tc.places, tc.times, tc.ways, tc.study)
		var de *domain.Error
		if !errors.As(err, &de) || de.Field != tc.field {
			t.Errorf("%s: %v, want field %q", tc.name, err, tc.field)
		}
	}
}

func TestRoomApply(t *testing.T) {
	rules := domain.RoomRules{}
	r := validRoom()
	r.ParticipantCount = 3
	three := 3
	two := 2
	got, err := r.Apply(domain.RoomUpdate{Capacity: &three}, roomNow, rules)
	if err != nil || got.Capacity != 3 {
		t.Errorf("capacity to the count: %+v, %v", got.Capacity, err)
	}
	if _, err := r.Apply(domain.RoomUpdate{Capacity: &two}, roomNow, rules); domain.ErrorCode(err) != domain.ECAPACITYBELOWCOUNT {
		t.Errorf("capacity below the count: %v", err)
	}
	past := roomNow.Add(-time.Hour)
	if _, err := r.Apply(domain.RoomUpdate{StartsAt: &past}, roomNow, rules); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("start in the past: %v", err)
	}
	farOff := roomNow.AddDate(0, 0, 31)
	if _, err := r.Apply(domain.RoomUpdate{StartsAt: &farOff}, roomNow, domain.RoomRules{MaxAhead: 30 * 24 * time.Hour}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("start beyond MaxAhead: %v", err)
	}
	bidi := "a\u202Eb"
	if _, err := r.Apply(domain.RoomUpdate{Body: &bidi}, roomNow, rules); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("bidi override in body: %v", err)
	}
	started := roomNow.Add(3 * time.Hour)
	if _, err := r.Apply(domain.RoomUpdate{Capacity: &three}, started, rules); domain.ErrorCode(err) != domain.EROOMCLOSED {
		t.Errorf("change after the start: %v", err)
	}
	r.CompletedAt = roomNow
	if _, err := r.Apply(domain.RoomUpdate{Capacity: &three}, roomNow, rules); domain.ErrorCode(err) != domain.EROOMCLOSED {
		t.Errorf("change of a completed room: %v", err)
	}
}

func TestDecide(t *testing.T) {
	open := validRoom()
	open.ParticipantCount = 3
	open.Participants = []domain.Participant{
		{MemberID: "host", Host: true}, {MemberID: "guest"}, {MemberID: "came", Attended: true},
	}
	full := open
	full.ParticipantCount = 4
	cancelled := open
	cancelled.DeletedAt = roomNow
	completed := open
	completed.CompletedAt = roomNow
	later := roomNow.Add(3 * time.Hour)
	join, leave := domain.ParticipationJoin, domain.ParticipationLeave
	for _, tc := range []struct {
		name   string
		r      domain.Room
		kind   domain.ParticipationKind
		member string
		now    time.Time
		want   domain.ParticipationStatus
	}{
		{"join", open, join, "new", roomNow, domain.ParticipationJoined},
		{"join full", full, join, "new", roomNow, domain.ParticipationRejectedFull},
		{"join twice", open, join, "guest", roomNow, domain.ParticipationRejectedInvalid},
		{"join cancelled", cancelled, join, "new", roomNow, domain.ParticipationRejectedClosed},
		{"join completed", completed, join, "new", roomNow, domain.ParticipationRejectedClosed},
		{"join started", open, join, "new", later, domain.ParticipationRejectedClosed},
		{"leave", open, leave, "guest", roomNow, domain.ParticipationLeft},
		{"leave full", full, leave, "guest", roomNow, domain.ParticipationLeft},
		{"leave not in", open, leave, "new", roomNow, domain.ParticipationRejectedInvalid},
		{"host leaves", open, leave, "host", roomNow, domain.ParticipationRejectedInvalid},
		{"leave after attendance", open, leave, "came", roomNow, domain.ParticipationRejectedClosed},
		{"leave started", open, leave, "guest", later, domain.ParticipationRejectedClosed},
	} {
		if got := domain.Decide(&tc.r, tc.kind, tc.member, tc.now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
