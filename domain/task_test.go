package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/moim/moim/domain"
)

func TestTaskValidate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Minute), now.Add(time.Hour)
	valid := func() domain.Task {
		return domain.Task{Title: "번역", Details: "10쪽", BigCategoryID: 1, SmallCategoryID: 2,
			AbilityIDs: []int64{1}, HelpersWanted: 3, DueAt: &future}
	}
	for _, c := range []struct {
		name   string
		change func(*domain.Task)
		field  string
	}{
		{"valid", func(*domain.Task) {}, ""},
		{"draft", func(t *domain.Task) { t.Details, t.AbilityIDs = "", nil }, ""},
		{"no title", func(t *domain.Task) { t.Title = "" }, "title"},
		{"long title", func(t *domain.Task) { t.Title = string(make([]rune, 101)) }, "title"},
		{"no big", func(t *domain.Task) { t.BigCategoryID = 0 }, "big_category_id"},
		{"no small", func(t *domain.Task) { t.SmallCategoryID = 0 }, "small_category_id"},
		{"0 helpers", func(t *domain.Task) { t.HelpersWanted = 0 }, "helpers_wanted"},
		{"11 helpers", func(t *domain.Task) { t.HelpersWanted = 11 }, "helpers_wanted"},
		{"below matched", func(t *domain.Task) { t.HelperCount = 4 }, "helpers_wanted"},
		{"11 abilities", func(t *domain.Task) { t.AbilityIDs = []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11} }, "ability_ids"},
		{"ability twice", func(t *domain.Task) { t.AbilityIDs = []int64{1, 1} }, "ability_ids"},
		{"past due", func(t *domain.Task) { t.DueAt = &past }, "due_at"},
	} {
		t.Run(c.name, func(t *testing.T) {
			task := valid()
			c.change(&task)
			err := task.Validate(now)
			if c.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			var de *domain.Error
			if !asError(err, &de) || de.Code != domain.EINVALID || de.Field != c.field {
				t.Errorf("Validate = %v, want invalid %s", err, c.field)
			}
		})
	}
	draft := valid()
	draft.Details = " "
	if got := draft.Complete(); domain.ErrorCode(got) != domain.ETASKINCOMPLETE {
		t.Errorf("Complete without details = %v", got)
	}
	draft = valid()
	draft.AbilityIDs = nil
	if got := draft.Complete(); domain.ErrorCode(got) != domain.ETASKINCOMPLETE {
		t.Errorf("Complete without abilities = %v", got)
	}
}

func TestInvitationCheckAnswerable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		status  domain.InvitationStatus
		expires time.Time
		want    string
	}{
		{domain.InvitationInvited, now.Add(time.Second), ""},
		{domain.InvitationInvited, now, domain.EINVITATIONEXPIRED},
		{domain.InvitationExpired, now.Add(time.Hour), domain.EINVITATIONEXPIRED},
		{domain.InvitationAccepted, now.Add(time.Hour), domain.EALREADYANSWERED},
		{domain.InvitationDeclined, now.Add(-time.Hour), domain.EALREADYANSWERED},
	} {
		inv := domain.Invitation{Status: c.status, ExpiresAt: c.expires}
		if got := domain.ErrorCode(inv.CheckAnswerable(now)); got != c.want {
			t.Errorf("%s expiring %s: %q, want %q", c.status, c.expires, got, c.want)
		}
	}
}

func asError(err error, de **domain.Error) bool { return errors.As(err, de) }
