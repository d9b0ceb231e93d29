package domain_test

import (
	"testing"

	"github.com/moim/moim/domain"
)

func TestTaskStatusOf(t *testing.T) {
	t.Parallel()
	hs := func(st ...domain.TaskHelperStatus) []domain.TaskHelper {
		out := make([]domain.TaskHelper, len(st))
		for i, s := range st {
			out[i].Status = s
		}
		return out
	}
	for _, c := range []struct {
		helpers []domain.TaskHelper
		want    domain.TaskStatus
	}{
		{hs(), domain.TaskMatched},
		{hs(domain.TaskHelperMatched, domain.TaskHelperDoing), domain.TaskMatched},
		{hs(domain.TaskHelperDone, domain.TaskHelperMatched), domain.TaskMatched},
		{hs(domain.TaskHelperDoing, domain.TaskHelperDone), domain.TaskDoing},
		{hs(domain.TaskHelperDone, domain.TaskHelperDone), domain.TaskDone},
	} {
		if got := domain.TaskStatusOf(c.helpers); got != c.want {
			t.Errorf("TaskStatusOf(%v) = %s, want %s", c.helpers, got, c.want)
		}
	}
}

func TestTaskReviewValidate(t *testing.T) {
	t.Parallel()
	required := []int64{1, 2}
	for _, c := range []struct {
		name   string
		scores map[int64]int
		text   string
		field  string
	}{
		{"ok", map[int64]int{1: 1, 2: 5}, "", ""},
		{"missing", map[int64]int{1: 3}, "", "scores"},
		{"extra", map[int64]int{1: 3, 2: 3, 3: 3}, "", "scores"},
		{"six", map[int64]int{1: 6, 2: 3}, "", "scores"},
		{"zero", map[int64]int{1: 0, 2: 3}, "", "scores"},
	} {
		r := domain.TaskReview{Scores: c.scores, Text: c.text}
		err := r.Validate(required)
		var field string
		if e, ok := err.(*domain.Error); ok {
			field = e.Field
		}
		if c.field == "" && err != nil || c.field != "" && field != c.field {
			t.Errorf("%s: %v, want field %q", c.name, err, c.field)
		}
	}
}
