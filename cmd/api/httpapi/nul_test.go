package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
)

// TestNULInput: a NUL byte, which PostgreSQL refuses in text, in a path
// parameter, a query parameter or a JSON string is bad input — 400 or 404,
// never a 500 — on every route and every database.
func TestNULInput(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s, _ := newRoomServer(t, e, 0, nil)
		s.signup(t, "host@example.com", "host")
		host := s.login(t, "host@example.com")
		room := s.createRoom(t, host.AccessToken, roomJSON(t, nil))

		check := func(method, path string) {
			for _, req := range []request{
				{method: method, path: path, token: host.AccessToken, body: "{}"},
				{method: method, path: path, auth: authAdmin, body: "{}"},
			} {
				if resp, body := s.do(t, req); resp.StatusCode >= 500 {
					t.Errorf("%s %s: status = %d (body %s)", method, path, resp.StatusCode, body)
				}
			}
		}
		walkRoutesWith(t, s, "%00", func(method, path string) {
			if strings.Contains(path, "%00") {
				check(method, path)
			}
		})
		walkRoutesWith(t, s, "a%00b", func(method, path string) {
			if strings.Contains(path, "%00") {
				check(method, path)
			}
		})
		walkRoutes(t, s, func(method, path string) {
			check(method, path+"?cursor=%00")
			check(method, path+"?cursor=a%00b&limit=5")
		})

		// Each way in answers the same: invalid, nothing looked up.
		for _, req := range []request{
			{method: http.MethodGet, path: "/v1/rooms/%00", token: host.AccessToken},
			{method: http.MethodGet, path: "/v1/rooms?cursor=%00", token: host.AccessToken},
			{method: http.MethodGet, path: "/v1/rooms/" + room.ID + "/comments?cursor=a%00", token: host.AccessToken},
			{method: http.MethodPost, path: "/v1/notifications/read", token: host.AccessToken, body: `{"ids":["a\u0000b"]}`},
			{method: http.MethodPut, path: "/v1/rooms/" + room.ID + "/attendance", token: host.AccessToken, body: `{"member_ids":["\u0000"]}`},
			{method: http.MethodPost, path: "/v1/admin/notifications", auth: authAdmin,
				body: `{"type":"TASK_DONE","member_ids":["a\u0000"],"args":{"title":"t"}}`},
			{method: http.MethodPost, path: "/v1/auth/login", body: `{"email":"host@example.com","password":"pass\u0000word"}`},
		} {
			resp, body := s.do(t, req)
			checkError(t, resp, body, http.StatusBadRequest, "invalid", "")
		}

		// An escaped backslash before u0000 is text, not a NUL.
		resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/rooms/" + room.ID + "/comments",
			token: host.AccessToken, body: `{"body":"C:\\u0000 is a path"}`})
		if resp.StatusCode != http.StatusCreated {
			t.Errorf(`comment with "\\u0000": status = %d, want 201 (body %s)`, resp.StatusCode, body)
		}
	})
}
