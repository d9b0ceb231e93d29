package httpapi_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
)

// wireTime is the one form of a timestamp in a response: RFC 3339, UTC,
// at most milliseconds.
var wireTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$`)

// looksLikeTime matches any RFC 3339 timestamp, to find them in a body.
var looksLikeTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d`)

// TestTimestampsOneRule: with a clock that has nanoseconds, timestamps
// fresh from the clock and read back from the database are written alike
// across a sample of endpoints.
func TestTimestampsOneRule(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		at := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.FixedZone("KST", 9*3600))
		s := newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) { d.NowFunc = func() time.Time { return at } }, nil)
		s.signup(t, "times@example.com", "times")
		token := s.login(t, "times@example.com").AccessToken
		resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/admin/pings", auth: authAdmin})
		if resp.StatusCode >= 300 {
			t.Fatalf("ping: %d %s", resp.StatusCode, body)
		}
		var ping struct {
			ID string `json:"id"`
		}
		decodeLoose(t, body, &ping)
		seen := 0
		for _, req := range []request{
			{method: http.MethodGet, path: "/v1/me", token: token},
			{method: http.MethodGet, path: "/v1/me/sessions", token: token},
			{method: http.MethodGet, path: "/v1/admin/pings/" + ping.ID, auth: authAdmin},
		} {
			path := req.path
			resp, body := s.do(t, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
			}
			var v any
			decodeLoose(t, body, &v)
			walkStrings(v, func(s string) {
				if looksLikeTime.MatchString(s) {
					seen++
					if !wireTime.MatchString(s) {
						t.Errorf("GET %s: timestamp %q, want RFC 3339 UTC to the millisecond", path, s)
					}
					// Sessions keep their own clock; the rest is the test's.
					if path != "/v1/me/sessions" && s != "2026-05-01T03:00:00.123Z" {
						t.Errorf("GET %s: timestamp %q, want 2026-05-01T03:00:00.123Z", path, s)
					}
				}
			})
		}
		if seen < 4 {
			t.Errorf("%d timestamps seen, want at least 4", seen)
		}
	})
}

func decodeLoose(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

// walkStrings calls f with every string in a decoded JSON value.
func walkStrings(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case []any:
		for _, e := range v {
			walkStrings(e, f)
		}
	case map[string]any:
		for _, e := range v {
			walkStrings(e, f)
		}
	}
}
