package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
)

// doneTask posts a task wanting len(helpers) helpers with 영어, has them
// accept, start and finish it, and returns it DONE.
func (s *testServer) doneTask(t *testing.T, bdb *bun.DB, customer testMember, ids skillIDs, helpers ...testMember) taskBody {
	t.Helper()
	task := s.matchingTask(t, bdb, customer, ids, len(helpers), 10)
	for _, h := range helpers {
		s.accept(t, task.ID, h)
	}
	var got taskBody
	for _, step := range []string{"doing", "done"} {
		for _, h := range helpers {
			got = s.taskDo(t, http.MethodPost, "/v1/tasks/"+task.ID+"/helpers/mine/"+step, h.token, "", http.StatusOK)
		}
	}
	if got.Status != "DONE" {
		t.Fatalf("task %s, want DONE", got.Status)
	}
	return got
}

type helperReviewsBody struct {
	Count         int     `json:"count"`
	RecommendRate float64 `json:"recommend_rate"`
	Abilities     []struct {
		ID      int64   `json:"id"`
		Name    string  `json:"name"`
		Average float64 `json:"average"`
		Count   int     `json:"count"`
	} `json:"abilities"`
}

// helperReviewsOf reads the helper_reviews of member id's profile.
func (s *testServer) helperReviewsOf(t *testing.T, id, token string) helperReviewsBody {
	t.Helper()
	var pub struct {
		ID            string            `json:"id"`
		Nickname      string            `json:"nickname"`
		MannerPoints  int               `json:"manner_points"`
		Avatar        any               `json:"avatar"`
		Skills        any               `json:"skills"`
		HelperReviews helperReviewsBody `json:"helper_reviews"`
		EmailVerified bool              `json:"email_verified"`
		PhoneVerified bool              `json:"phone_verified"`
		Activity      any               `json:"activity"`
	}
	s.getOK(t, "/v1/members/"+id, token, &pub)
	return pub.HelperReviews
}

// TestHelperReview: the customer of a DONE task reviews each helper once;
// every bad review is refused with a clear code and stores nothing; the
// helper's profile shows the count, the recommend rate and the average
// per ability over their tasks.
func TestHelperReview(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		// A text of 1,000 runes needs more than the tests' small body cap.
		s := newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) { d.BodyLimit = 1 << 16 }, nil)
		customer := s.member(t, "customer")
		stranger := s.member(t, "stranger")
		ids := s.skillIDs(t, customer.token)
		h := s.helpersWith(t, ids, "helper", 3)
		en, lang := ids.ability["영어"], ids.ability["언어역량"]
		score := func(recommend bool, scores map[int64]int, text string) string {
			parts := []string{}
			for id, v := range scores {
				parts = append(parts, fmt.Sprintf(`"%d":%d`, id, v))
			}
			return fmt.Sprintf(`{"recommend":%t,"scores":{%s},"text":%q}`, recommend, strings.Join(parts, ","), text)
		}
		review := func(task taskBody, helper, token, body string) (*http.Response, []byte) {
			return s.do(t, request{method: http.MethodPost, path: "/v1/tasks/" + task.ID + "/helpers/" + helper + "/review",
				token: token, body: body})
		}
		if got := s.helperReviewsOf(t, h[0].ID, stranger.token); got.Count != 0 || got.RecommendRate != 0 || got.Abilities == nil || len(got.Abilities) != 0 {
			t.Errorf("no reviews yet: %+v", got)
		}

		// Before DONE.
		early := s.matchingTask(t, bdb, customer, ids, 1, 10)
		s.accept(t, early.ID, h[2])
		resp, b := review(early, h[2].ID, customer.token, score(true, map[int64]int{en: 5}, ""))
		checkError(t, resp, b, http.StatusConflict, "task_not_done", "")

		task := s.doneTask(t, bdb, customer, ids, h[0], h[1])
		good := score(true, map[int64]int{en: 4}, "꼼꼼해요")
		for _, c := range []struct {
			name, helper, token, body string
			status                    int
			code, field               string
		}{
			{"score 6", h[0].ID, customer.token, score(true, map[int64]int{en: 6}, ""), 400, "invalid", "scores"},
			{"score 0", h[0].ID, customer.token, score(true, map[int64]int{en: 0}, ""), 400, "invalid", "scores"},
			{"no score", h[0].ID, customer.token, score(true, nil, ""), 400, "invalid", "scores"},
			{"ability not required", h[0].ID, customer.token, score(true, map[int64]int{en: 3, lang: 3}, ""), 400, "invalid", "scores"},
			{"unknown ability", h[0].ID, customer.token, score(true, map[int64]int{en: 3, 9999: 3}, ""), 400, "invalid", "scores"},
			{"key not an id", h[0].ID, customer.token, `{"recommend":true,"scores":{"영어":3}}`, 400, "invalid", "scores"},
			{"score not a number", h[0].ID, customer.token, fmt.Sprintf(`{"recommend":true,"scores":{"%d":"five"}}`, en), 400, "", ""},
			{"no recommend", h[0].ID, customer.token, fmt.Sprintf(`{"scores":{"%d":3}}`, en), 400, "invalid", "recommend"},
			{"long text", h[0].ID, customer.token, score(true, map[int64]int{en: 3}, strings.Repeat("가", 1001)), 400, "invalid", "text"},
			{"someone else's task", h[0].ID, stranger.token, good, 403, "forbidden", ""},
			{"by the helper", h[0].ID, h[0].token, good, 403, "forbidden", ""},
			{"not a helper", h[2].ID, customer.token, good, 404, "not_found", ""},
			{"no such member", "nope", customer.token, good, 404, "not_found", ""},
		} {
			resp, b := review(task, c.helper, c.token, c.body)
			t.Run(c.name, func(t *testing.T) {
				if c.code == "" {
					if resp.StatusCode != c.status {
						t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, c.status, b)
					}
					return
				}
				checkError(t, resp, b, c.status, c.code, c.field)
			})
		}
		resp, b = review(taskBody{ID: "nope"}, h[0].ID, customer.token, good)
		checkError(t, resp, b, http.StatusNotFound, "not_found", "")
		if n := countRows(t, bdb, "task_reviews") + countRows(t, bdb, "task_review_scores"); n != 0 {
			t.Fatalf("refused reviews stored %d rows", n)
		}

		// Twice at once: one is stored, the other refused.
		var wg sync.WaitGroup
		codes := make(chan int, 2)
		for range 2 {
			wg.Go(func() {
				resp, b := review(task, h[0].ID, customer.token, good)
				if resp.StatusCode != http.StatusCreated {
					checkError(t, resp, b, http.StatusConflict, "already_reviewed", "")
				}
				codes <- resp.StatusCode
			})
		}
		wg.Wait()
		close(codes)
		created := 0
		for c := range codes {
			if c == http.StatusCreated {
				created++
			}
		}
		if created != 1 || countRows(t, bdb, "task_reviews") != 1 || countRows(t, bdb, "task_review_scores") != 1 {
			t.Fatalf("%d reviews created at once, want 1", created)
		}
		resp, b = review(task, h[1].ID, customer.token, score(false, map[int64]int{en: 2}, strings.Repeat("가", 1000)))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("review h1: %d %s", resp.StatusCode, b)
		}
		var stored struct {
			ID        string         `json:"id"`
			TaskID    string         `json:"task_id"`
			HelperID  string         `json:"helper_id"`
			Recommend bool           `json:"recommend"`
			Scores    map[string]int `json:"scores"`
			Text      string         `json:"text"`
			CreatedAt string         `json:"created_at"`
		}
		decodeStrict(t, b, &stored)
		if stored.TaskID != task.ID || stored.HelperID != h[1].ID || stored.Recommend || stored.Scores[fmt.Sprint(en)] != 2 || len(stored.Scores) != 1 ||
			stored.Text != strings.Repeat("가", 1000) {
			t.Errorf("stored %+v", stored)
		}

		// A second task of h0: averages over both.
		second := s.doneTask(t, bdb, customer, ids, h[0])
		resp, b = review(second, h[0].ID, customer.token, score(false, map[int64]int{en: 5}, ""))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("review on second: %d %s", resp.StatusCode, b)
		}
		got := s.helperReviewsOf(t, h[0].ID, stranger.token)
		if got.Count != 2 || got.RecommendRate != 0.5 || len(got.Abilities) != 1 ||
			got.Abilities[0].ID != en || got.Abilities[0].Name != "영어" || got.Abilities[0].Average != 4.5 || got.Abilities[0].Count != 2 {
			t.Errorf("h0 reviews = %+v, want 2, rate 0.5, 영어 4.5 over 2", got)
		}
		if got := s.helperReviewsOf(t, h[1].ID, stranger.token); got.Count != 1 || got.RecommendRate != 0 || got.Abilities[0].Average != 2 {
			t.Errorf("h1 reviews = %+v", got)
		}
	})
}
