package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/moim/moim/domain"
)

func TestActivityScore(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a    domain.Activity
		want int
	}{
		{domain.Activity{MannerPoints: 50}, 0},
		{domain.Activity{Matches: 3, MannerPoints: 50}, 30},
		// 42Partner's grades: 1..5 are -10, 0, 10, 20, 42.
		{domain.Activity{ReviewsReceived: 2, ReviewSum: 6, ReviewPoints: domain.ReviewPoints(5) + domain.ReviewPoints(1), MannerPoints: 50}, 32},
		{domain.Activity{Matches: 1, MannerPoints: 47}, -20},
	} {
		if got := c.a.Score(); got != c.want {
			t.Errorf("%+v.Score() = %d; want %d", c.a, got, c.want)
		}
	}
	for s, want := range map[int]int{1: -10, 2: 0, 3: 10, 4: 20, 5: 42} {
		if got := domain.ReviewPoints(s); got != want {
			t.Errorf("ReviewPoints(%d) = %d; want %d", s, got, want)
		}
	}
	if got := (domain.Activity{ReviewsReceived: 3, ReviewSum: 10}).ReviewAverage(); got != 10.0/3 {
		t.Errorf("ReviewAverage = %v", got)
	}
	if got := (domain.Activity{}).ReviewAverage(); got != 0 {
		t.Errorf("ReviewAverage with none = %v; want 0", got)
	}
}

func TestReviewWindowAndValidate(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at   time.Duration
		code string
	}{
		{30*time.Minute - time.Nanosecond, domain.ENOTOPENYET},
		{30 * time.Minute, ""},
		{7*24*time.Hour - time.Nanosecond, ""},
		{7 * 24 * time.Hour, domain.EREVIEWCLOSED},
	} {
		if got := domain.ErrorCode(domain.CheckReviewWindow(created, created.Add(c.at))); got != c.code {
			t.Errorf("CheckReviewWindow at +%v = %q; want %q", c.at, got, c.code)
		}
	}
	for _, c := range []struct {
		rv    domain.MatchReview
		field string
	}{
		{domain.MatchReview{Score: 1}, ""},
		{domain.MatchReview{Score: 5, Text: strings.Repeat("가", 500)}, ""},
		{domain.MatchReview{Score: 0}, "score"},
		{domain.MatchReview{Score: 6}, "score"},
		{domain.MatchReview{Score: 3, Text: strings.Repeat("a", 501)}, "text"},
		{domain.MatchReview{Score: 3, Text: "\xff"}, "text"},
	} {
		err := c.rv.Validate()
		if c.field == "" {
			if err != nil {
				t.Errorf("Validate(%d, %d chars) = %v", c.rv.Score, len(c.rv.Text), err)
			}
			continue
		}
		if de, ok := err.(*domain.Error); !ok || de.Code != domain.EINVALID || de.Field != c.field {
			t.Errorf("Validate(%d, %d chars) = %v; want invalid %s", c.rv.Score, len(c.rv.Text), err, c.field)
		}
	}
}
