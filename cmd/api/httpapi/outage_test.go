package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
)

// deadRedis is an address nothing listens on: every command fails at once
// with a refused connection, as when Redis is down.
const deadRedis = "127.0.0.1:1"

// withRedisDown points every Redis client of the API at deadRedis. The
// sessions keep their store: it is the database, which is up.
func withRedisDown(t testing.TB, e *env) func(*httpapi.Deps) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: deadRedis, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	sessions, err := auth.NewSessions(auth.SessionParams{Store: db.SessionStore{DB: e.db}, Redis: rdb, TTL: 3600e9})
	if err != nil {
		t.Fatal(err)
	}
	return func(d *httpapi.Deps) {
		d.Redis = rdb
		d.RedisConnOpt = asynq.RedisClientOpt{Addr: deadRedis}
		d.Sessions = sessions
	}
}

// TestRedisOutage: with Redis down, what needs only the database works —
// sessions are checked in SQL, writes leave their follow-up work in the
// outbox — and what needs Redis answers 503 unavailable with Retry-After.
// No route answers 500.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		up, _ := newRoomServer(t, e, 0, nil)
		up.signup(t, "host@example.com", "host")
		up.signup(t, "guest@example.com", "guest")
		// Logged in while Redis was up: the session cache entry is in the
		// Redis that is now out of reach.
		host := up.login(t, "host@example.com")

		down, _ := newRoomServer(t, e, 0, withRedisDown(t, e))
		guest := down.login(t, "guest@example.com")
		room := down.createRoom(t, host.AccessToken, roomJSON(t, nil))
		works := []struct {
			name string
			req  request
			want int
		}{
			{"me", request{method: http.MethodGet, path: "/v1/me", token: host.AccessToken}, http.StatusOK},
			{"me (logged in during the outage)", request{method: http.MethodGet, path: "/v1/me", token: guest.AccessToken}, http.StatusOK},
			{"sessions", request{method: http.MethodGet, path: "/v1/me/sessions", token: guest.AccessToken}, http.StatusOK},
			{"join a room", request{method: http.MethodPost, path: "/v1/rooms/" + room.ID + "/participations", token: guest.AccessToken}, http.StatusAccepted},
			{"room list (its cache is Redis)", request{method: http.MethodGet, path: "/v1/rooms", token: guest.AccessToken}, http.StatusOK},
			{"notifications", request{method: http.MethodGet, path: "/v1/notifications", token: guest.AccessToken}, http.StatusOK},
			{"apply for a match", request{method: http.MethodPost, path: "/v1/random-matches", token: guest.AccessToken,
				body: `{"category":"MEAL"}`}, http.StatusAccepted},
			// No worker admits the join, so leaving is refused, by the database.
			{"leave a room", request{method: http.MethodDelete, path: "/v1/rooms/" + room.ID + "/participations/mine", token: guest.AccessToken}, http.StatusConflict},
			{"comment", request{method: http.MethodPost, path: "/v1/rooms/" + room.ID + "/comments", token: host.AccessToken,
				body: `{"body":"7시에 로비에서 봬요"}`}, http.StatusCreated},
			{"edit a room", request{method: http.MethodPatch, path: "/v1/rooms/" + room.ID, token: host.AccessToken,
				body: `{"capacity":6}`}, http.StatusOK},
			{"sign up", request{method: http.MethodPost, path: "/v1/auth/signup",
				body: signupBody("late@example.com", "late")}, http.StatusCreated},
			{"refresh", request{method: http.MethodPost, path: "/v1/auth/refresh", body: `{"refresh_token":"` + guest.RefreshToken + `"}`}, http.StatusOK},
		}
		for _, tt := range works {
			resp, body := down.do(t, tt.req)
			if resp.StatusCode != tt.want {
				t.Errorf("%s with Redis down: status = %d, want %d (body %s)", tt.name, resp.StatusCode, tt.want, body)
			}
		}
		var outbox int
		if err := bdb.NewSelect().Table("outbox").ColumnExpr("count(*)").Scan(t.Context(), &outbox); err != nil || outbox == 0 {
			t.Errorf("outbox rows = %d, %v; want the join's and the application's follow-up work waiting there", outbox, err)
		}

		unavailable := []request{
			{method: http.MethodGet, path: "/readyz"},
			{method: http.MethodGet, path: "/v1/events", token: guest.AccessToken},
			{method: http.MethodPost, path: "/v1/events/ticket", token: guest.AccessToken},
			{method: http.MethodGet, path: "/admin/queues/api/queues", auth: authAdmin},
		}
		for _, req := range unavailable {
			resp, body := down.do(t, req)
			checkError(t, resp, body, http.StatusServiceUnavailable, "unavailable", "")
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s %s: 503 without Retry-After", req.method, req.path)
			}
		}

		// Logout still ends the session: the revocation is in SQL.
		if resp, body := down.do(t, request{method: http.MethodPost, path: "/v1/auth/logout", token: guest.AccessToken}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("logout with Redis down: status = %d (body %s)", resp.StatusCode, body)
		}
		resp, body := down.do(t, request{method: http.MethodGet, path: "/v1/me", token: guest.AccessToken})
		checkError(t, resp, body, http.StatusUnauthorized, "token_revoked", "")

		// Every route, as a member and as the operator: never a 500.
		walkRoutes(t, down, func(method, path string) {
			for _, req := range []request{
				{method: method, path: path, token: host.AccessToken, body: "{}"},
				{method: method, path: path, auth: authAdmin, body: "{}"},
			} {
				if resp, body := down.do(t, req); resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("%s %s with Redis down: status = %d (body %s)", method, path, resp.StatusCode, body)
				}
			}
		})
	})
}

// walkRoutes calls fn with every route of the API, path parameters filled
// with a well-formed id that names nothing.
func walkRoutes(t *testing.T, s *testServer, fn func(method, path string)) {
	t.Helper()
	walkRoutesWith(t, s, "aaaaaaaaaaaaaaaaaaaaaaaaaa", fn)
}

// walkRoutesWith is walkRoutes with path parameters filled with param (sent
// as written, so it may be percent-encoded).
func walkRoutesWith(t *testing.T, s *testServer, param string, fn func(method, path string)) {
	t.Helper()
	err := chi.Walk(s.routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.HasSuffix(route, "/*") {
			route = strings.TrimSuffix(route, "*")
		}
		var b strings.Builder
		for part := range strings.SplitSeq(route, "/") {
			if strings.HasPrefix(part, "{") {
				part = param
			}
			b.WriteString(part + "/")
		}
		fn(method, strings.TrimSuffix(b.String(), "/"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
