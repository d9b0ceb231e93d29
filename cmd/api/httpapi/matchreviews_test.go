package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

type matchReviewBody struct {
	ID      string `json:"id"`
	MatchID string `json:"match_id"`
	Member  struct {
		ID       string `json:"id"`
		Nickname string `json:"nickname"`
		Me       bool   `json:"me"`
	} `json:"member"`
	Score     int    `json:"score"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"`
}

type matchReviewsBody struct {
	MatchID  string            `json:"match_id"`
	OpensAt  string            `json:"opens_at"`
	ClosesAt string            `json:"closes_at"`
	Given    []matchReviewBody `json:"given"`
	Received []matchReviewBody `json:"received"`
	ToReview []struct {
		ID       string `json:"id"`
		Nickname string `json:"nickname"`
		Me       bool   `json:"me"`
	} `json:"to_review"`
}

type activityBody struct {
	Score           int     `json:"score"`
	Matches         int     `json:"matches"`
	ReviewsReceived int     `json:"reviews_received"`
	ReviewAverage   float64 `json:"review_average"`
	MannerPoints    int     `json:"manner_points"`
}

// TestMatchReviewRoutes: members of a match review each other once inside
// the window; refusals answer their codes and store nothing; each member
// sees only the reviews they gave and received; the profile shows the
// activity score.
func TestMatchReviewRoutes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		var (
			mu  sync.Mutex
			now = start
		)
		setNow := func(at time.Time) { mu.Lock(); now = at; mu.Unlock() }
		s := newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) {
			d.NowFunc = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			d.BodyLimit = 64 << 10 // a 500-character text is 1,500 bytes
		}, nil)
		mina, jun, hana, out := s.randomMember(t, "mina"), s.randomMember(t, "jun"), s.randomMember(t, "hana"), s.randomMember(t, "out")
		m := &domain.Match{Category: domain.CategoryMeal, Method: domain.MatchRandom, CreatedAt: start}
		if _, err := (db.Matches{}).Create(ctx, bdb, m, []string{mina.ID, jun.ID, hana.ID}); err != nil {
			t.Fatal(err)
		}
		path := "/v1/matches/" + m.ID + "/reviews"
		post := func(token, body string) (*http.Response, []byte) {
			return s.do(t, request{method: http.MethodPost, path: path, token: token, body: body})
		}

		setNow(start.Add(30*time.Minute - time.Microsecond))
		resp, body := post(mina.token, `{"member_id":"`+jun.ID+`","score":5}`)
		checkError(t, resp, body, http.StatusConflict, "not_open_yet", "")
		setNow(start.Add(7 * 24 * time.Hour))
		resp, body = post(mina.token, `{"member_id":"`+jun.ID+`","score":5}`)
		checkError(t, resp, body, http.StatusConflict, "review_closed", "")

		setNow(start.Add(time.Hour))
		for _, c := range []struct {
			name, token, body, code, field string
			status                         int
		}{
			{"self", mina.token, `{"member_id":"` + mina.ID + `","score":5}`, "invalid", "member_id", 400},
			{"outsider reviewee", mina.token, `{"member_id":"` + out.ID + `","score":5}`, "invalid", "member_id", 400},
			{"no member", mina.token, `{"score":5}`, "invalid", "member_id", 400},
			{"no score", mina.token, `{"member_id":"` + jun.ID + `"}`, "invalid", "score", 400},
			{"score 0", mina.token, `{"member_id":"` + jun.ID + `","score":0}`, "invalid", "score", 400},
			{"score 6", mina.token, `{"member_id":"` + jun.ID + `","score":6}`, "invalid", "score", 400},
			{"score 2.5", mina.token, `{"member_id":"` + jun.ID + `","score":2.5}`, "invalid", "score", 400},
			{"text too long", mina.token, `{"member_id":"` + jun.ID + `","score":3,"text":"` + strings.Repeat("가", 501) + `"}`, "invalid", "text", 400},
			{"unknown field", mina.token, `{"member_id":"` + jun.ID + `","score":3,"x":1}`, "invalid", "x", 400},
			{"outsider reviewer", out.token, `{"member_id":"` + jun.ID + `","score":3}`, "not_found", "", 404},
		} {
			resp, body := post(c.token, c.body)
			if resp.StatusCode != c.status {
				t.Errorf("%s: status %d, want %d (%s)", c.name, resp.StatusCode, c.status, body)
				continue
			}
			checkError(t, resp, body, c.status, c.code, c.field)
		}
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/matches/nope/reviews", token: mina.token, body: `{"member_id":"` + jun.ID + `","score":3}`})
		checkError(t, resp, body, http.StatusNotFound, "not_found", "")
		if n := countRows(t, bdb, "match_reviews"); n != 0 {
			t.Fatalf("%d reviews stored by refusals", n)
		}

		text := strings.Repeat("가", 500)
		resp, body = post(mina.token, `{"member_id":"`+jun.ID+`","score":5,"text":"`+text+`"}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("review: %d %s", resp.StatusCode, body)
		}
		var rv matchReviewBody
		decodeStrict(t, body, &rv)
		if rv.MatchID != m.ID || rv.Member.ID != jun.ID || rv.Member.Nickname != "jun" || rv.Score != 5 || rv.Text != text ||
			rv.CreatedAt != "2026-05-01T13:00:00Z" {
			t.Errorf("review = %+v", rv)
		}
		resp, body = post(mina.token, `{"member_id":"`+jun.ID+`","score":1}`)
		checkError(t, resp, body, http.StatusConflict, "already_reviewed", "")
		for _, r := range []struct{ token, to, body string }{
			{hana.token, jun.ID, `"score":1,"text":"late"`},
			{jun.token, mina.ID, `"score":4,"text":null`},
		} {
			if resp, body := post(r.token, `{"member_id":"`+r.to+`",`+r.body+`}`); resp.StatusCode != http.StatusCreated {
				t.Fatalf("review: %d %s", resp.StatusCode, body)
			}
		}

		// jun sees what he gave and both reviews of him; mina does not see
		// hana's review of jun.
		var junView, minaView matchReviewsBody
		s.getOK(t, path, jun.token, &junView)
		if junView.OpensAt != "2026-05-01T12:30:00Z" || junView.ClosesAt != "2026-05-08T12:00:00Z" ||
			len(junView.Given) != 1 || junView.Given[0].Member.ID != mina.ID || junView.Given[0].Text != "" ||
			len(junView.Received) != 2 || junView.Received[0].Member.ID != mina.ID || junView.Received[1].Text != "late" ||
			len(junView.ToReview) != 1 || junView.ToReview[0].ID != hana.ID {
			t.Errorf("jun's view = %+v", junView)
		}
		s.getOK(t, path, mina.token, &minaView)
		if len(minaView.Given) != 1 || len(minaView.Received) != 1 || minaView.Received[0].Member.ID != jun.ID ||
			len(minaView.ToReview) != 1 || minaView.ToReview[0].ID != hana.ID {
			t.Errorf("mina's view = %+v", minaView)
		}
		resp, body = s.do(t, request{method: http.MethodGet, path: path, token: out.token})
		checkError(t, resp, body, http.StatusNotFound, "not_found", "")
		resp, body = s.do(t, request{method: http.MethodGet, path: path})
		checkError(t, resp, body, http.StatusUnauthorized, "unauthorized", "")

		// jun: 1 match (10) + a 5 (42) and a 1 (-10).
		var pub struct {
			ID            string       `json:"id"`
			Nickname      string       `json:"nickname"`
			MannerPoints  int          `json:"manner_points"`
			Avatar        any          `json:"avatar"`
			Skills        any          `json:"skills"`
			Activity      activityBody `json:"activity"`
			HelperReviews any          `json:"helper_reviews"`
			EmailVerified bool         `json:"email_verified"`
			PhoneVerified bool         `json:"phone_verified"`
		}
		s.getOK(t, "/v1/members/"+jun.ID, out.token, &pub)
		if want := (activityBody{Score: 42, Matches: 1, ReviewsReceived: 2, ReviewAverage: 3, MannerPoints: 50}); pub.Activity != want {
			t.Errorf("jun's activity = %+v; want %+v", pub.Activity, want)
		}
		s.getOK(t, "/v1/members/"+out.ID, jun.token, &pub)
		if want := (activityBody{MannerPoints: 50}); pub.Activity != want {
			t.Errorf("out's activity = %+v; want %+v", pub.Activity, want)
		}
	})
}
