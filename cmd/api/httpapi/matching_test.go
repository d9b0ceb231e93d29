package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
)

// randomConditionsBody is a condition set on the wire. Only the second list
// of the category is present, so both are omitempty here and the key set is
// checked separately.
type randomConditionsBody struct {
	Places       []string `json:"places"`
	WaysOfEating []string `json:"ways_of_eating,omitempty"`
	StudyTypes   []string `json:"study_types,omitempty"`
}

// applicationBody is a random-match application as the API shows it.
type applicationBody struct {
	ID         string               `json:"id"`
	Category   string               `json:"category"`
	Status     string               `json:"status"`
	Conditions randomConditionsBody `json:"conditions"`
	MatchID    *string              `json:"match_id"`
	CreatedAt  string               `json:"created_at"`
	ExpiresAt  string               `json:"expires_at"`
}

// mineBody is the answer of GET /v1/random-matches/mine.
type mineBody struct {
	Waiting     bool             `json:"waiting"`
	Application *applicationBody `json:"application"`
}

// countBody is the answer of GET /v1/random-matches/count.
type countBody struct {
	Category string `json:"category"`
	Waiting  int    `json:"waiting"`
}

// matchMemberBody is one member of a match on the wire.
type matchMemberBody struct {
	ID       string `json:"id"`
	Nickname string `json:"nickname"`
	Me       bool   `json:"me"`
}

// matchBody is a match on the wire.
type matchBody struct {
	ID         string                `json:"id"`
	Category   string                `json:"category"`
	Method     string                `json:"method"`
	Conditions *randomConditionsBody `json:"conditions"`
	RoomID     *string               `json:"room_id"`
	Members    []matchMemberBody     `json:"members"`
	CreatedAt  string                `json:"created_at"`
}

// matchListBody is the answer of GET /v1/matches.
type matchListBody struct {
	Matches    []matchBody `json:"matches"`
	NextCursor *string     `json:"next_cursor"`
}

// Every value of each dimension, in bit order: what "any" shows as.
var (
	allPlaces     = []string{"SEOCHO", "GAEPO", "OUT_OF_CLUSTER"}
	allWays       = []string{"DELIVERY", "EATOUT", "TAKEOUT"}
	allStudyTypes = []string{"INNER_CIRCLE", "NOT_INNER_CIRCLE"}
)

// randomStored counts application rows, trigger rows in the outbox and
// outbox rows of any type.
func randomStored(t testing.TB, bdb *bun.DB) (apps, triggers, outbox int) {
	t.Helper()
	ctx := context.Background()
	na, err := bdb.NewSelect().Table("random_applications").Count(ctx)
	if err != nil {
		t.Fatalf("count applications: %v", err)
	}
	nt, err := bdb.NewSelect().Model((*db.OutboxRow)(nil)).Where("type = ?", jobs.TypeMatchTrigger).Count(ctx)
	if err != nil {
		t.Fatalf("count triggers: %v", err)
	}
	return int(na), int(nt), outboxBesidesCodes(t, bdb)
}

// triggerCategories returns the category of every trigger in the outbox, in
// insertion order, checking each row's queue on the way.
func triggerCategories(t testing.TB, bdb *bun.DB) []string {
	t.Helper()
	var rows []db.OutboxRow
	err := bdb.NewSelect().Model(&rows).Where("type = ?", jobs.TypeMatchTrigger).Order("id").Scan(context.Background())
	if err != nil {
		t.Fatalf("select triggers: %v", err)
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		if r.Queue != jobs.QueueCritical {
			t.Errorf("trigger queue = %q, want %q", r.Queue, jobs.QueueCritical)
		}
		var p jobs.MatchPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatalf("trigger payload %s: %v", r.Payload, err)
		}
		out = append(out, p.Category.String())
	}
	return out
}

// decodeApplication decodes an application strictly and checks that its
// keys (and its conditions' keys) are exactly the wire shape's.
func decodeApplication(t testing.TB, raw []byte) applicationBody {
	t.Helper()
	want := []string{"category", "conditions", "created_at", "expires_at", "id", "match_id", "status"}
	if got := jsonKeys(t, raw); !slices.Equal(got, want) {
		t.Errorf("application keys = %v, want %v", got, want)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	var a applicationBody
	decodeStrict(t, raw, &a)
	second := "ways_of_eating"
	if a.Category == "STUDY" {
		second = "study_types"
	}
	// Only the category's own second list is shown.
	want = []string{"places", second}
	slices.Sort(want)
	if got := jsonKeys(t, fields["conditions"]); !slices.Equal(got, want) {
		t.Errorf("conditions keys = %v, want %v", got, want)
	}
	return a
}

// parseWireTime parses a timestamp of a response, which must be RFC 3339
// in UTC.
func parseWireTime(t testing.TB, what, v string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatalf("%s %q: %v", what, v, err)
	}
	if _, off := ts.Zone(); off != 0 || v[len(v)-1] != 'Z' {
		t.Errorf("%s %q is not in UTC", what, v)
	}
	return ts
}

// applyRandom posts body for token and fails unless it is accepted.
func (s *testServer) applyRandom(t testing.TB, token, body string) applicationBody {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/random-matches", token: token, body: body})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/random-matches %s: status = %d, want 202 (body %s)", body, resp.StatusCode, b)
	}
	a := decodeApplication(t, b)
	if loc, want := resp.Header.Get("Location"), "/v1/random-matches/"+a.ID; loc != want {
		t.Errorf("Location = %q, want %q", loc, want)
	}
	return a
}

// applicationStatusBody is GET /v1/random-matches/{id}: the application
// and, once MATCHED, its match.
type applicationStatusBody struct {
	applicationBody
	Match *matchBody `json:"match"`
}

// randomStatus reads the status resource of application id as token.
func (s *testServer) randomStatus(t testing.TB, token, id string) applicationStatusBody {
	t.Helper()
	var a applicationStatusBody
	s.getOK(t, "/v1/random-matches/"+id, token, &a)
	return a
}

// checkPrivate checks that GET prefix+id is 404 for other's token, as
// an unknown id is for owner's, and 401 without a token.
func (s *testServer) checkPrivate(t *testing.T, prefix, id, other, owner string) {
	t.Helper()
	resp, body := s.do(t, request{method: http.MethodGet, path: prefix + id, token: other})
	checkError(t, resp, body, http.StatusNotFound, "not_found", "")
	resp, body = s.do(t, request{method: http.MethodGet, path: prefix + "nosuchid", token: owner})
	checkError(t, resp, body, http.StatusNotFound, "not_found", "")
	resp, body = s.do(t, request{method: http.MethodGet, path: prefix + id})
	checkError(t, resp, body, http.StatusUnauthorized, "unauthorized", "")
}

// randomMine asks whether token's member waits in category.
func (s *testServer) randomMine(t testing.TB, token, category string) mineBody {
	t.Helper()
	var m mineBody
	b := s.getOK(t, "/v1/random-matches/mine?category="+category, token, &m)
	if !m.Waiting {
		if string(b) != "{\"waiting\":false,\"application\":null}\n" {
			t.Errorf("not waiting answered %s", b)
		}
		return m
	}
	var raw struct {
		Application json.RawMessage `json:"application"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	decodeApplication(t, raw.Application)
	return m
}

// randomCount asks the public count of category, without a token.
func (s *testServer) randomCount(t testing.TB, category string) countBody {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodGet, path: "/v1/random-matches/count?category=" + category})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET count %s: status = %d, want 200 (body %s)", category, resp.StatusCode, b)
	}
	var c countBody
	decodeStrict(t, b, &c)
	if c.Category != category {
		t.Errorf("count category = %q, want %q", c.Category, category)
	}
	return c
}

// awaitRandomCount polls the count until it reads want. The count is cached
// for about a second, so a change shows within a few.
func (s *testServer) awaitRandomCount(t testing.TB, category string, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := s.randomCount(t, category).Waiting
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s count = %d after 3s, want %d", category, got, want)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// matchList asks for token's matches with query and fails unless it is a
// 200 with exactly the list's fields.
func (s *testServer) matchList(t testing.TB, token, query string) matchListBody {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodGet, path: "/v1/matches" + query, token: token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/matches%s: status = %d, want 200 (body %s)", query, resp.StatusCode, b)
	}
	var l matchListBody
	decodeStrict(t, b, &l)
	if l.Matches == nil {
		t.Errorf("GET /v1/matches%s: matches is null, want a list (body %s)", query, b)
	}
	return l
}

// randomMember is a signed-up member with an access token.
type randomMember struct {
	memberBody
	token string
}

// randomMember signs up and logs in nickname@example.com.
func (s *testServer) randomMember(t testing.TB, nickname string) randomMember {
	t.Helper()
	email := nickname + "@example.com"
	m := s.signup(t, email, nickname)
	return randomMember{memberBody: m, token: s.login(t, email).AccessToken}
}

// runMatcher runs the matcher of c once, as the worker would.
func runMatcher(t testing.TB, bdb *bun.DB, c domain.Category) jobs.RunResult {
	t.Helper()
	h := jobs.MatchRunHandler{DB: bdb, NowFunc: clocktest.Now, Logger: slog.New(slog.DiscardHandler)}
	res, err := h.Run(context.Background(), c)
	if err != nil {
		t.Fatalf("run matcher %v: %v", c, err)
	}
	return res
}

func TestRandomApply(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s := newServer(t, e, nil, nil)
		tests := []struct {
			name     string
			category string
			body     string
			want     randomConditionsBody
		}{
			{"meal with places and ways", "MEAL",
				`{"category":"MEAL","places":["GAEPO","SEOCHO"],"ways_of_eating":["TAKEOUT"]}`,
				randomConditionsBody{Places: []string{"SEOCHO", "GAEPO"}, WaysOfEating: []string{"TAKEOUT"}}},
			{"meal with empty lists", "MEAL",
				`{"category":"MEAL","places":[],"ways_of_eating":[]}`,
				randomConditionsBody{Places: allPlaces, WaysOfEating: allWays}},
			{"meal without lists", "MEAL",
				`{"category":"MEAL"}`,
				randomConditionsBody{Places: allPlaces, WaysOfEating: allWays}},
			{"meal with null lists", "MEAL",
				`{"category":"MEAL","places":null,"ways_of_eating":null}`,
				randomConditionsBody{Places: allPlaces, WaysOfEating: allWays}},
			{"study with study types", "STUDY",
				`{"category":"STUDY","places":["OUT_OF_CLUSTER"],"study_types":["NOT_INNER_CIRCLE"]}`,
				randomConditionsBody{Places: []string{"OUT_OF_CLUSTER"}, StudyTypes: []string{"NOT_INNER_CIRCLE"}}},
			{"study without lists", "STUDY",
				`{"category":"STUDY"}`,
				randomConditionsBody{Places: allPlaces, StudyTypes: allStudyTypes}},
		}
		// Sequential: every case adds exactly one row of each kind, which
		// the counts after it check.
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				m := s.randomMember(t, fmt.Sprintf("member%d", i))
				before := clocktest.Now().UTC().Truncate(time.Millisecond) // the wire shows milliseconds
				a := s.applyRandom(t, m.token, tt.body)
				after := clocktest.Now().UTC()

				if a.ID == "" || a.Category != tt.category || a.Status != "WAITING" || a.MatchID != nil {
					t.Errorf("answer %+v", a)
				}
				if diff := cmp.Diff(tt.want, a.Conditions); diff != "" {
					t.Errorf("conditions (-want +got):\n%s", diff)
				}
				created := parseWireTime(t, "created_at", a.CreatedAt)
				expires := parseWireTime(t, "expires_at", a.ExpiresAt)
				if created.Before(before) || created.After(after) {
					t.Errorf("created_at %v not within the request [%v, %v]", created, before, after)
				}
				if d := expires.Sub(created); d != httpapi.DefaultMatchWait {
					t.Errorf("expires_at - created_at = %v, want %v", d, httpapi.DefaultMatchWait)
				}

				// What mine shows is what the POST answered.
				mine := s.randomMine(t, m.token, a.Category)
				if !mine.Waiting || mine.Application == nil {
					t.Fatalf("mine = %+v, want waiting", mine)
				}
				if diff := cmp.Diff(a, *mine.Application); diff != "" {
					t.Errorf("mine differs from the POST answer (-post +mine):\n%s", diff)
				}

				if apps, triggers, _ := randomStored(t, bdb); apps != i+1 || triggers != i+1 {
					t.Errorf("stored %d applications and %d triggers, want %d of each", apps, triggers, i+1)
				}
				stored, err := (db.Applications{}).FindByID(context.Background(), bdb, a.ID)
				if err != nil {
					t.Fatalf("find application: %v", err)
				}
				if stored.MemberID != m.ID || stored.Status != domain.ApplicationWaiting {
					t.Errorf("stored %+v for member %s", stored, m.ID)
				}
			})
		}
		var wantCats []string
		for _, tt := range tests {
			wantCats = append(wantCats, tt.category)
		}
		if diff := cmp.Diff(wantCats, triggerCategories(t, bdb)); diff != "" {
			t.Errorf("trigger categories (-want +got):\n%s", diff)
		}

		t.Run("match wait from deps", func(t *testing.T) {
			at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
			s := newServer(t, e, func(d *httpapi.Deps) {
				d.MatchWait = 7 * time.Minute
				d.NowFunc = func() time.Time { return at }
			}, nil)
			m := s.randomMember(t, "waiter")
			a := s.applyRandom(t, m.token, `{"category":"MEAL"}`)
			if a.CreatedAt != "2026-05-01T12:00:00Z" || a.ExpiresAt != "2026-05-01T12:07:00Z" {
				t.Errorf("created_at %s, expires_at %s; want 12:00 and 12:07", a.CreatedAt, a.ExpiresAt)
			}
		})
	})
}

func TestRandomApplyAlreadyWaiting(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		m := s.randomMember(t, "mina")
		first := s.applyRandom(t, m.token, `{"category":"MEAL","places":["SEOCHO"]}`)

		// Other conditions do not make it another application.
		for _, body := range []string{`{"category":"MEAL","places":["SEOCHO"]}`, `{"category":"MEAL","places":["GAEPO"],"ways_of_eating":["DELIVERY"]}`} {
			resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/random-matches", token: m.token, body: body})
			checkError(t, resp, b, http.StatusConflict, "already_waiting", "category")
		}
		if apps, triggers, outbox := randomStored(t, bdb); apps != 1 || triggers != 1 || outbox != 1 {
			t.Errorf("stored %d applications, %d triggers, %d outbox rows; want 1 of each", apps, triggers, outbox)
		}
		if mine := s.randomMine(t, m.token, "MEAL"); mine.Application == nil || mine.Application.ID != first.ID {
			t.Errorf("mine = %+v, want the first application %s", mine, first.ID)
		}

		// Waiting in MEAL does not stop a STUDY application.
		s.applyRandom(t, m.token, `{"category":"STUDY"}`)
		if apps, triggers, _ := randomStored(t, bdb); apps != 2 || triggers != 2 {
			t.Errorf("stored %d applications and %d triggers, want 2 of each", apps, triggers)
		}
		if diff := cmp.Diff([]string{"MEAL", "STUDY"}, triggerCategories(t, bdb)); diff != "" {
			t.Errorf("trigger categories (-want +got):\n%s", diff)
		}
	})
}

// TestRandomApplyConcurrent sends one member's applications at once: the
// unique waiting key lets exactly one through.
func TestRandomApplyConcurrent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		m := s.randomMember(t, "mina")
		const n = 6
		statuses := make([]int, n)
		bodies := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/random-matches", token: m.token, body: `{"category":"MEAL"}`})
				statuses[i], bodies[i] = resp.StatusCode, b
			})
		}
		wg.Wait()
		accepted := 0
		for i, st := range statuses {
			switch st {
			case http.StatusAccepted:
				accepted++
			case http.StatusConflict:
				var e apiError
				decodeStrict(t, bodies[i], &e)
				if e.Error.Code != "already_waiting" {
					t.Errorf("409 with code %q", e.Error.Code)
				}
			default:
				t.Errorf("status = %d, want 202 or 409 (body %s)", st, bodies[i])
			}
		}
		if accepted != 1 {
			t.Errorf("%d applications accepted, want 1", accepted)
		}
		if apps, triggers, outbox := randomStored(t, bdb); apps != 1 || triggers != 1 || outbox != 1 {
			t.Errorf("stored %d applications, %d triggers, %d outbox rows; want 1 of each", apps, triggers, outbox)
		}
	})
}

func TestRandomApplyRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		tok := s.randomMember(t, "mina").token
		_, _, outboxBefore := randomStored(t, bdb)
		tests := []struct {
			name       string
			token      string
			body       string
			wantStatus int
			wantCode   string
			wantField  string
		}{
			{"missing category", tok, `{"places":["SEOCHO"]}`, 400, "invalid", "category"},
			{"empty object", tok, `{}`, 400, "invalid", "category"},
			{"category RUN", tok, `{"category":"RUN"}`, 400, "invalid", "category"},
			{"category PARTY", tok, `{"category":"PARTY"}`, 400, "invalid", "category"},
			{"category lower case", tok, `{"category":"meal"}`, 400, "invalid", "category"},
			{"category number", tok, `{"category":1}`, 400, "invalid", "category"},
			{"unknown place", tok, `{"category":"MEAL","places":["BUNDANG"]}`, 400, "invalid", "places"},
			{"unknown way", tok, `{"category":"MEAL","ways_of_eating":["PICNIC"]}`, 400, "invalid", "ways_of_eating"},
			{"way as study type", tok, `{"category":"STUDY","study_types":["DELIVERY"]}`, 400, "invalid", "study_types"},
			{"duplicated place", tok, `{"category":"MEAL","places":["SEOCHO","GAEPO","SEOCHO"]}`, 400, "invalid", "places"},
			{"duplicated way", tok, `{"category":"MEAL","ways_of_eating":["EATOUT","EATOUT"]}`, 400, "invalid", "ways_of_eating"},
			{"duplicated study type", tok, `{"category":"STUDY","study_types":["INNER_CIRCLE","INNER_CIRCLE"]}`, 400, "invalid", "study_types"},
			{"ways on study", tok, `{"category":"STUDY","ways_of_eating":["EATOUT"]}`, 400, "invalid", "ways_of_eating"},
			{"empty ways on study", tok, `{"category":"STUDY","ways_of_eating":[]}`, 400, "invalid", "ways_of_eating"},
			{"study types on meal", tok, `{"category":"MEAL","study_types":["INNER_CIRCLE"]}`, 400, "invalid", "study_types"},
			{"empty study types on meal", tok, `{"category":"MEAL","study_types":[]}`, 400, "invalid", "study_types"},
			{"unknown field", tok, `{"category":"MEAL","group_size":3}`, 400, "invalid", "group_size"},
			{"places as string", tok, `{"category":"MEAL","places":"SEOCHO"}`, 400, "invalid", "places"},
			{"place as number", tok, `{"category":"MEAL","places":[1]}`, 400, "invalid", "places"},
			{"ways as object", tok, `{"category":"MEAL","ways_of_eating":{"EATOUT":true}}`, 400, "invalid", "ways_of_eating"},
			{"array body", tok, `["MEAL"]`, 400, "invalid", ""},
			{"malformed json", tok, `{"category":`, 400, "invalid_json", ""},
			{"trailing data", tok, `{"category":"MEAL"} {}`, 400, "invalid_json", ""},
			{"empty body", tok, ``, 400, "invalid", ""},
			{"no token", "", `{"category":"MEAL"}`, 401, "unauthorized", ""},
			{"garbage token", "garbage", `{"category":"MEAL"}`, 401, "invalid_token", ""},
		}
		t.Run("cases", func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/random-matches",
						token: tt.token, body: tt.body, contentType: "application/json"})
					checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
					if apps, triggers, outbox := randomStored(t, bdb); apps != 0 || triggers != 0 || outbox != outboxBefore {
						t.Errorf("stored %d applications, %d triggers, %d outbox rows; want none new", apps, triggers, outbox-outboxBefore)
					}
				})
			}
		})
		if apps, _, outbox := randomStored(t, bdb); apps != 0 || outbox != outboxBefore {
			t.Errorf("after all rejected requests: %d applications, %d new outbox rows", apps, outbox-outboxBefore)
		}
	})
}

func TestRandomMine(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		m := s.randomMember(t, "mina")
		other := s.randomMember(t, "jun")

		if mine := s.randomMine(t, m.token, "MEAL"); mine.Waiting || mine.Application != nil {
			t.Errorf("before applying: %+v", mine)
		}
		a := s.applyRandom(t, m.token, `{"category":"MEAL","ways_of_eating":["DELIVERY","EATOUT"]}`)
		mine := s.randomMine(t, m.token, "MEAL")
		if !mine.Waiting || mine.Application == nil {
			t.Fatalf("after applying: %+v", mine)
		}
		if diff := cmp.Diff(a, *mine.Application); diff != "" {
			t.Errorf("mine (-post +mine):\n%s", diff)
		}
		// Another category, and another member, wait on their own.
		if mine := s.randomMine(t, m.token, "STUDY"); mine.Waiting {
			t.Errorf("STUDY: %+v, want not waiting", mine)
		}
		if mine := s.randomMine(t, other.token, "MEAL"); mine.Waiting {
			t.Errorf("other member: %+v, want not waiting", mine)
		}

		for _, tt := range []struct {
			name, query, token string
			wantStatus         int
			wantCode           string
			wantField          string
		}{
			{"missing category", "", m.token, 400, "invalid", "category"},
			{"empty category", "?category=", m.token, 400, "invalid", "category"},
			{"unknown category", "?category=PARTY", m.token, 400, "invalid", "category"},
			{"room-only category", "?category=RUN", m.token, 400, "invalid", "category"},
			{"lower case", "?category=meal", m.token, 400, "invalid", "category"},
			{"no token", "?category=MEAL", "", 401, "unauthorized", ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/random-matches/mine" + tt.query, token: tt.token})
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
			})
		}
	})
}

func TestRandomCancel(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		m := s.randomMember(t, "mina")
		other := s.randomMember(t, "jun")
		first := s.applyRandom(t, m.token, `{"category":"MEAL"}`)
		s.applyRandom(t, m.token, `{"category":"STUDY"}`)
		s.applyRandom(t, other.token, `{"category":"MEAL"}`)
		const path = "/v1/random-matches/mine?category=MEAL"

		resp, body := s.do(t, request{method: http.MethodDelete, path: path, token: m.token})
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("DELETE: status = %d, body %q; want 204 and no body", resp.StatusCode, body)
		}
		resp, body = s.do(t, request{method: http.MethodDelete, path: path, token: m.token})
		checkError(t, resp, body, http.StatusNotFound, "not_found", "")

		if mine := s.randomMine(t, m.token, "MEAL"); mine.Waiting {
			t.Errorf("after cancel: %+v, want not waiting", mine)
		}
		// Only that one application was withdrawn.
		if mine := s.randomMine(t, m.token, "STUDY"); !mine.Waiting {
			t.Error("STUDY application withdrawn by a MEAL cancel")
		}
		if mine := s.randomMine(t, other.token, "MEAL"); !mine.Waiting {
			t.Error("another member's application withdrawn")
		}
		stored, err := (db.Applications{}).FindByID(context.Background(), bdb, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Status != domain.ApplicationCancelled {
			t.Errorf("cancelled application has status %v", stored.Status)
		}

		// Applying again after a cancel is a new application.
		again := s.applyRandom(t, m.token, `{"category":"MEAL","places":["GAEPO"]}`)
		if again.ID == first.ID {
			t.Errorf("new application reuses id %s", again.ID)
		}
		if mine := s.randomMine(t, m.token, "MEAL"); mine.Application == nil || mine.Application.ID != again.ID {
			t.Errorf("mine = %+v, want %s", mine, again.ID)
		}
		if apps, triggers, _ := randomStored(t, bdb); apps != 4 || triggers != 4 {
			t.Errorf("stored %d applications and %d triggers, want 4 of each", apps, triggers)
		}

		for _, tt := range []struct {
			name, query, token string
			wantStatus         int
			wantCode           string
			wantField          string
		}{
			{"missing category", "", m.token, 400, "invalid", "category"},
			{"unknown category", "?category=PARTY", m.token, 400, "invalid", "category"},
			{"room-only category", "?category=RUN", m.token, 400, "invalid", "category"},
			{"no token", "?category=MEAL", "", 401, "unauthorized", ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodDelete, path: "/v1/random-matches/mine" + tt.query, token: tt.token})
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
			})
		}
		if mine := s.randomMine(t, m.token, "MEAL"); !mine.Waiting {
			t.Error("a rejected DELETE withdrew the application")
		}
	})
}

func TestRandomCount(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		if c := s.randomCount(t, "MEAL"); c.Waiting != 0 {
			t.Errorf("empty pool counts %d", c.Waiting)
		}
		if c := s.randomCount(t, "STUDY"); c.Waiting != 0 {
			t.Errorf("empty pool counts %d", c.Waiting)
		}

		mina, jun, hana := s.randomMember(t, "mina"), s.randomMember(t, "jun"), s.randomMember(t, "hana")
		s.applyRandom(t, mina.token, `{"category":"MEAL"}`)
		s.applyRandom(t, mina.token, `{"category":"STUDY"}`)
		s.applyRandom(t, jun.token, `{"category":"MEAL","places":["GAEPO"]}`)
		s.applyRandom(t, hana.token, `{"category":"MEAL","ways_of_eating":["DELIVERY"]}`)
		// A refused second application does not count twice.
		resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/random-matches", token: jun.token, body: `{"category":"MEAL"}`})
		checkError(t, resp, body, http.StatusConflict, "already_waiting", "category")
		s.awaitRandomCount(t, "MEAL", 3)
		s.awaitRandomCount(t, "STUDY", 1)

		// A cancelled application leaves the count.
		if resp, body := s.do(t, request{method: http.MethodDelete, path: "/v1/random-matches/mine?category=MEAL", token: jun.token}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: status = %d (body %s)", resp.StatusCode, body)
		}
		s.awaitRandomCount(t, "MEAL", 2)
		s.awaitRandomCount(t, "STUDY", 1)

		for _, tt := range []struct{ name, query string }{
			{"missing category", ""},
			{"unknown category", "?category=PARTY"},
			{"room-only category", "?category=RUN"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/random-matches/count" + tt.query})
				checkError(t, resp, body, http.StatusBadRequest, "invalid", "category")
			})
		}
	})
}

// checkMatch compares a match on the wire with what it should be for the
// member me. Members are listed in the order they applied.
func checkMatch(t *testing.T, got matchBody, id, category string, cond randomConditionsBody, me string, members ...randomMember) {
	t.Helper()
	want := matchBody{ID: id, Category: category, Method: "RANDOM", Conditions: &cond, CreatedAt: got.CreatedAt}
	for _, m := range members {
		want.Members = append(want.Members, matchMemberBody{ID: m.ID, Nickname: m.Nickname, Me: m.ID == me})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("match (-want +got):\n%s", diff)
	}
	parseWireTime(t, "match created_at", got.CreatedAt)
}

func TestMatches(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		s := newServer(t, newEnv(t, bdb), nil, nil)
		mina, jun, hana := s.randomMember(t, "mina"), s.randomMember(t, "jun"), s.randomMember(t, "hana")

		// mina and jun share GAEPO and EATOUT; hana's place fits neither.
		minaApp := s.applyRandom(t, mina.token, `{"category":"MEAL","places":["SEOCHO","GAEPO"],"ways_of_eating":["EATOUT"]}`)
		junApp := s.applyRandom(t, jun.token, `{"category":"MEAL","places":["GAEPO"]}`)
		s.applyRandom(t, hana.token, `{"category":"MEAL","places":["OUT_OF_CLUSTER"]}`)
		if res := runMatcher(t, bdb, domain.CategoryMeal); res.Waiting != 3 || res.Matches != 1 || res.Conflicts != 0 {
			t.Fatalf("matcher run = %+v, want 3 waiting, 1 match", res)
		}

		for _, m := range []randomMember{mina, jun} {
			if mine := s.randomMine(t, m.token, "MEAL"); mine.Waiting {
				t.Errorf("%s still waiting after the match: %+v", m.Nickname, mine)
			}
		}
		if mine := s.randomMine(t, hana.token, "MEAL"); !mine.Waiting {
			t.Error("hana matched without a compatible partner")
		}

		list := s.matchList(t, mina.token, "")
		if len(list.Matches) != 1 || list.NextCursor != nil {
			t.Fatalf("mina's matches = %+v, want one and no next page", list)
		}
		first := list.Matches[0]
		common := randomConditionsBody{Places: []string{"GAEPO"}, WaysOfEating: []string{"EATOUT"}}
		checkMatch(t, first, first.ID, "MEAL", common, mina.ID, mina, jun)

		junList := s.matchList(t, jun.token, "")
		if len(junList.Matches) != 1 {
			t.Fatalf("jun's matches = %+v, want one", junList)
		}
		checkMatch(t, junList.Matches[0], first.ID, "MEAL", common, jun.ID, mina, jun)

		if l := s.matchList(t, hana.token, ""); len(l.Matches) != 0 || l.NextCursor != nil {
			t.Errorf("hana's matches = %+v, want none", l)
		}

		// The applications point at the match.
		for _, id := range []string{minaApp.ID, junApp.ID} {
			a, err := (db.Applications{}).FindByID(ctx, bdb, id)
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != domain.ApplicationMatched || a.MatchID != first.ID {
				t.Errorf("application %s: status %v, match %q; want MATCHED in %s", id, a.Status, a.MatchID, first.ID)
			}
		}

		t.Run("get", func(t *testing.T) {
			for _, m := range []randomMember{mina, jun} {
				resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/matches/" + first.ID, token: m.token})
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status = %d (body %s)", m.Nickname, resp.StatusCode, body)
				}
				var got matchBody
				decodeStrict(t, body, &got)
				checkMatch(t, got, first.ID, "MEAL", common, m.ID, mina, jun)
				if got.CreatedAt != first.CreatedAt {
					t.Errorf("created_at %s, list says %s", got.CreatedAt, first.CreatedAt)
				}
			}
			// Not a member of it: it does not exist, like an unknown id.
			s.checkPrivate(t, "/v1/matches/", first.ID, hana.token, mina.token)
		})

		t.Run("filters", func(t *testing.T) {
			for _, tt := range []struct {
				query string
				want  int
			}{
				{"?category=MEAL", 1},
				{"?category=STUDY", 0},
				{"?category=RUN", 0},
				{"?method=RANDOM", 1},
				{"?method=ROOM", 0},
				{"?category=MEAL&method=RANDOM", 1},
				{"?category=STUDY&method=RANDOM", 0},
				{"?limit=100", 1},
			} {
				if l := s.matchList(t, mina.token, tt.query); len(l.Matches) != tt.want || l.NextCursor != nil {
					t.Errorf("%s: %d matches, next %v; want %d and none", tt.query, len(l.Matches), l.NextCursor, tt.want)
				}
			}
			for _, tt := range []struct {
				query, token string
				wantStatus   int
				wantCode     string
				wantField    string
			}{
				{"?method=BAD", mina.token, 400, "invalid", "method"},
				{"?method=random", mina.token, 400, "invalid", "method"},
				{"?category=PARTY", mina.token, 400, "invalid", "category"},
				{"?limit=0", mina.token, 400, "invalid", "limit"},
				{"?limit=-1", mina.token, 400, "invalid", "limit"},
				{"?limit=101", mina.token, 400, "invalid", "limit"},
				{"?limit=x", mina.token, 400, "invalid", "limit"},
				{"?cursor=nosuchmatch", mina.token, 400, "invalid", "cursor"},
				// A cursor is only good in the list of a member of its match.
				{"?cursor=" + first.ID, hana.token, 400, "invalid", "cursor"},
				{"", "", 401, "unauthorized", ""},
			} {
				resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/matches" + tt.query, token: tt.token})
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
			}
		})

		t.Run("notifications", func(t *testing.T) {
			for _, m := range []randomMember{mina, jun} {
				page := s.notificationsPage(t, m.token, "")
				var confirmed []notificationBody
				for _, n := range page.Notifications {
					if n.Type == "MATCH_CONFIRMED" {
						confirmed = append(confirmed, n)
					}
				}
				if len(confirmed) != 1 {
					t.Fatalf("%s has %d MATCH_CONFIRMED notifications, want 1: %+v", m.Nickname, len(confirmed), page)
				}
				want := map[string]any{
					"match_id": first.ID, "category": "MEAL", "place": "GAEPO",
					"members": []any{"mina", "jun"}, "link": "/matches/" + first.ID,
				}
				if diff := cmp.Diff(want, confirmed[0].Args); diff != "" {
					t.Errorf("%s's notification args (-want +got):\n%s", m.Nickname, diff)
				}
				if confirmed[0].Read {
					t.Errorf("%s's notification is already read", m.Nickname)
				}
			}
			if page := s.notificationsPage(t, hana.token, ""); len(page.Notifications) != 0 {
				t.Errorf("hana has notifications: %+v", page.Notifications)
			}
		})

		t.Run("paging", func(t *testing.T) {
			// Matched members may apply again, and a second run pairs them
			// once more.
			s.applyRandom(t, mina.token, `{"category":"MEAL","places":["SEOCHO"],"ways_of_eating":["DELIVERY"]}`)
			s.applyRandom(t, jun.token, `{"category":"MEAL","places":["SEOCHO","GAEPO"]}`)
			if res := runMatcher(t, bdb, domain.CategoryMeal); res.Matches != 1 {
				t.Fatalf("second matcher run = %+v, want 1 match", res)
			}
			all := s.matchList(t, mina.token, "")
			if len(all.Matches) != 2 || all.NextCursor != nil {
				t.Fatalf("mina's matches = %+v, want two on one page", all)
			}
			second := all.Matches[0]
			if all.Matches[1].ID != first.ID {
				t.Fatalf("matches %s, %s: want the new one first, then %s", second.ID, all.Matches[1].ID, first.ID)
			}
			checkMatch(t, second, second.ID, "MEAL",
				randomConditionsBody{Places: []string{"SEOCHO"}, WaysOfEating: []string{"DELIVERY"}}, mina.ID, mina, jun)

			p1 := s.matchList(t, mina.token, "?limit=1")
			if len(p1.Matches) != 1 || p1.Matches[0].ID != second.ID || p1.NextCursor == nil {
				t.Fatalf("page 1 = %+v, want %s and a next cursor", p1, second.ID)
			}
			p2 := s.matchList(t, mina.token, "?limit=1&cursor="+*p1.NextCursor)
			if len(p2.Matches) != 1 || p2.Matches[0].ID != first.ID || p2.NextCursor != nil {
				t.Fatalf("page 2 = %+v, want %s and no next cursor", p2, first.ID)
			}
			// Filters hold across pages.
			if l := s.matchList(t, jun.token, "?limit=1&method=RANDOM&category=MEAL&cursor="+*p1.NextCursor); len(l.Matches) != 1 || l.Matches[0].ID != first.ID {
				t.Errorf("jun's filtered page 2 = %+v, want %s", l, first.ID)
			}
			if l := s.matchList(t, mina.token, "?limit=1&category=STUDY"); len(l.Matches) != 0 || l.NextCursor != nil {
				t.Errorf("STUDY page = %+v, want empty", l)
			}
		})
	})
}

// TestRandomExpired moves the API's clock past an application's expiry
// before any sweep has run: the member is no longer waiting, and may apply
// again at once.
func TestRandomExpired(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		clock := &roomClock{now: start}
		setNow := clock.Set
		s := newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) {
			d.MatchWait = 10 * time.Minute
			d.NowFunc = clock.Now
		}, nil)
		m := s.randomMember(t, "mina")
		first := s.applyRandom(t, m.token, `{"category":"MEAL"}`)

		// One microsecond before the expiry it still waits; at it, not.
		setNow(start.Add(10*time.Minute - time.Microsecond))
		if mine := s.randomMine(t, m.token, "MEAL"); !mine.Waiting {
			t.Error("not waiting just before the expiry")
		}
		setNow(start.Add(10 * time.Minute))
		if mine := s.randomMine(t, m.token, "MEAL"); mine.Waiting {
			t.Errorf("still waiting at the expiry: %+v", mine)
		}
		s.awaitRandomCount(t, "MEAL", 0)
		resp, body := s.do(t, request{method: http.MethodDelete, path: "/v1/random-matches/mine?category=MEAL", token: m.token})
		checkError(t, resp, body, http.StatusNotFound, "not_found", "")

		again := s.applyRandom(t, m.token, `{"category":"MEAL","places":["GAEPO"]}`)
		if again.ID == first.ID || again.CreatedAt != "2026-05-01T12:10:00Z" || again.ExpiresAt != "2026-05-01T12:20:00Z" {
			t.Errorf("second application %+v", again)
		}
		old, err := (db.Applications{}).FindByID(context.Background(), bdb, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if old.Status != domain.ApplicationExpired {
			t.Errorf("overdue application has status %v, want EXPIRED", old.Status)
		}
		if mine := s.randomMine(t, m.token, "MEAL"); mine.Application == nil || mine.Application.ID != again.ID {
			t.Errorf("mine = %+v, want %s", mine, again.ID)
		}
	})
}

// TestRandomStatus follows applications through their status resource,
// the Location of the 202: WAITING, CANCELLED, MATCHED with the match, and
// EXPIRED as soon as the wait is over, before the sweep has run.
func TestRandomStatus(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		clock := &roomClock{now: start}
		s := newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) {
			d.MatchWait = 10 * time.Minute
			d.NowFunc = clock.Now
		}, nil)
		mina, jun := s.randomMember(t, "mina"), s.randomMember(t, "jun")

		first := s.applyRandom(t, mina.token, `{"category":"MEAL"}`)
		if got := s.randomStatus(t, mina.token, first.ID); !cmp.Equal(got.applicationBody, first) || got.Match != nil {
			t.Errorf("waiting: %+v, want %+v and no match", got, first)
		}
		// Someone else's application, like an unknown one, does not exist.
		s.checkPrivate(t, "/v1/random-matches/", first.ID, jun.token, mina.token)

		if resp, body := s.do(t, request{method: http.MethodDelete, path: "/v1/random-matches/mine?category=MEAL", token: mina.token}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("cancel: %d %s", resp.StatusCode, body)
		}
		if got := s.randomStatus(t, mina.token, first.ID); got.Status != "CANCELLED" || got.Match != nil {
			t.Errorf("cancelled: %+v", got)
		}

		minaApp := s.applyRandom(t, mina.token, `{"category":"MEAL","places":["GAEPO"]}`)
		junApp := s.applyRandom(t, jun.token, `{"category":"MEAL","places":["GAEPO"]}`)
		matcher := jobs.MatchRunHandler{DB: bdb, NowFunc: clock.Now, Logger: slog.New(slog.DiscardHandler)}
		if res, err := matcher.Run(context.Background(), domain.CategoryMeal); err != nil || res.Matches != 1 {
			t.Fatalf("matcher run = %+v, %v; want 1 match", res, err)
		}
		for _, c := range []struct {
			m  randomMember
			id string
		}{{mina, minaApp.ID}, {jun, junApp.ID}} {
			got := s.randomStatus(t, c.m.token, c.id)
			if got.Status != "MATCHED" || got.Match == nil || got.MatchID == nil || *got.MatchID != got.Match.ID {
				t.Fatalf("%s matched: %+v", c.m.Nickname, got)
			}
			checkMatch(t, *got.Match, got.Match.ID, "MEAL", randomConditionsBody{Places: []string{"GAEPO"}, WaysOfEating: allWays}, c.m.ID, mina, jun)
		}

		// At its expiry a waiting application reads EXPIRED, sweep or not.
		last := s.applyRandom(t, mina.token, `{"category":"STUDY"}`)
		clock.Set(start.Add(10*time.Minute - time.Microsecond))
		if got := s.randomStatus(t, mina.token, last.ID); got.Status != "WAITING" {
			t.Errorf("just before the expiry: %s", got.Status)
		}
		clock.Set(start.Add(10 * time.Minute))
		if got := s.randomStatus(t, mina.token, last.ID); got.Status != "EXPIRED" || got.Match != nil {
			t.Errorf("at the expiry: %+v", got)
		}
	})
}

// TestMatchPagingSameInstant pages over two matches recorded at the same
// instant, where only the id orders them.
func TestMatchPagingSameInstant(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		mina, jun := s.randomMember(t, "mina"), s.randomMember(t, "jun")
		// Both runs record their match at this instant, after every
		// application, as a real run would.
		at := clocktest.Now().Add(time.Minute)
		h := jobs.MatchRunHandler{DB: bdb, NowFunc: func() time.Time { return at }, Logger: slog.New(slog.DiscardHandler)}
		var ids []string
		for range 2 {
			s.applyRandom(t, mina.token, `{"category":"STUDY"}`)
			s.applyRandom(t, jun.token, `{"category":"STUDY"}`)
			if res, err := h.Run(context.Background(), domain.CategoryStudy); err != nil || res.Matches != 1 {
				t.Fatalf("matcher run = %+v, %v; want 1 match", res, err)
			}
			l := s.matchList(t, mina.token, "?limit=1")
			if len(l.Matches) != 1 {
				t.Fatalf("matches = %+v", l)
			}
			ids = append(ids, l.Matches[0].ID)
		}
		if ids[0] == ids[1] {
			t.Fatalf("the newer match is not listed first: %v", ids)
		}
		p1 := s.matchList(t, jun.token, "?limit=1")
		if len(p1.Matches) != 1 || p1.Matches[0].ID != ids[1] || p1.NextCursor == nil {
			t.Fatalf("page 1 = %+v, want %s and a next cursor", p1, ids[1])
		}
		p2 := s.matchList(t, jun.token, "?limit=1&cursor="+*p1.NextCursor)
		if len(p2.Matches) != 1 || p2.Matches[0].ID != ids[0] || p2.NextCursor != nil {
			t.Fatalf("page 2 = %+v, want %s and no next cursor", p2, ids[0])
		}
		if p2.Matches[0].CreatedAt != p1.Matches[0].CreatedAt {
			t.Errorf("created_at %s and %s, want the same instant", p1.Matches[0].CreatedAt, p2.Matches[0].CreatedAt)
		}
		want := randomConditionsBody{Places: allPlaces, StudyTypes: allStudyTypes}
		checkMatch(t, p2.Matches[0], ids[0], "STUDY", want, jun.ID, mina, jun)
	})
}

// TestRandomDeletedMemberLeavesPool deletes a waiting member's account:
// their application must neither count as waiting nor hold back the
// member the matcher would have paired them with.
func TestRandomDeletedMemberLeavesPool(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		gone, jun, hana := s.randomMember(t, "gone"), s.randomMember(t, "jun"), s.randomMember(t, "hana")
		s.applyRandom(t, gone.token, `{"category":"MEAL"}`)
		if resp, body := s.do(t, request{method: http.MethodDelete, path: "/v1/me", token: gone.token}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE /v1/me: status = %d (body %s)", resp.StatusCode, body)
		}
		s.applyRandom(t, jun.token, `{"category":"MEAL"}`)
		s.applyRandom(t, hana.token, `{"category":"MEAL"}`)
		s.awaitRandomCount(t, "MEAL", 2)

		// The grouper pairs the oldest application first: the deleted
		// member's, with jun.
		if res := runMatcher(t, bdb, domain.CategoryMeal); res.Matches != 1 {
			t.Errorf("matcher run = %+v, want 1 match", res)
		}
		for _, m := range []randomMember{jun, hana} {
			if mine := s.randomMine(t, m.token, "MEAL"); mine.Waiting {
				t.Errorf("%s still waiting next to a compatible member", m.Nickname)
			}
			if l := s.matchList(t, m.token, ""); len(l.Matches) != 1 {
				t.Errorf("%s has %d matches, want 1", m.Nickname, len(l.Matches))
			}
		}
	})
}
