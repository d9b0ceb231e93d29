package httpapi_test

import (
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/domain"
)

func TestRouting(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, openSQLite(t)), nil, nil)
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantCode   string
		wantAllow  string
	}{
		{"unknown route", http.MethodGet, "/nope", http.StatusNotFound, "not_found", ""},
		{"unknown nested route", http.MethodGet, "/v1/admin/nope/1", http.StatusNotFound, "not_found", ""},
		{"wrong method on probe", http.MethodPost, "/healthz", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{"wrong method on collection", http.MethodGet, "/v1/admin/pings", http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{"wrong method on item", http.MethodDelete, "/v1/admin/pings/abc", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{"unknown method", "BREW", "/healthz", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, request{method: tt.method, path: tt.path, auth: authAdmin})
			checkError(t, resp, body, tt.wantStatus, tt.wantCode, "")
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, openSQLite(t)), nil, nil)
	generated := regexp.MustCompile(`^[A-Za-z0-9._:-]{16,128}$`)
	tests := []struct {
		name     string
		incoming string // "" sends no header
		wantEcho bool
	}{
		{"none sent", "", false},
		{"well formed", "edge-1:req_42.a", true},
		{"longest accepted", strings.Repeat("a", 128), true},
		{"too long", strings.Repeat("a", 129), false},
		{"space", "a b", false},
		{"markup", "<script>", false},
		{"non ascii", "요청", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request{method: http.MethodGet, path: "/healthz"}
			if tt.incoming != "" {
				req.header = map[string]string{"X-Request-ID": tt.incoming}
			}
			resp, _ := s.do(t, req)
			got := resp.Header.Get("X-Request-ID")
			if tt.wantEcho {
				if got != tt.incoming {
					t.Errorf("X-Request-ID = %q, want the incoming %q", got, tt.incoming)
				}
			} else {
				if got == tt.incoming || !generated.MatchString(got) {
					t.Errorf("X-Request-ID = %q, want a freshly generated id", got)
				}
			}
			rec := s.logs.waitFor(t, "http request", got)
			if rec["route"] != "/healthz" || rec["status"] != float64(200) {
				t.Errorf("access log = %v", rec)
			}
		})
	}
}

func TestRealIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t))
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		xff     string
		want    string
	}{
		{"no trusted proxy ignores header", nil, "203.0.113.9", "127.0.0.1"},
		{"other trusted proxy ignores header", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "203.0.113.9", "127.0.0.1"},
		{"trusted proxy without header", loopback, "", "127.0.0.1"},
		{"trusted proxy", loopback, "203.0.113.9", "203.0.113.9"},
		{"spoofed left entry ignored", loopback, "198.51.100.1, 203.0.113.9, 127.0.0.2", "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, e, func(d *httpapi.Deps) { d.TrustedProxies = tt.trusted }, nil)
			req := request{method: http.MethodGet, path: "/healthz"}
			if tt.xff != "" {
				req.header = map[string]string{"X-Forwarded-For": tt.xff}
			}
			resp, _ := s.do(t, req)
			rec := s.logs.waitFor(t, "http request", resp.Header.Get("X-Request-ID"))
			if rec["remote_ip"] != tt.want {
				t.Errorf("remote_ip = %v, want %s", rec["remote_ip"], tt.want)
			}
		})
	}
}

func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, openSQLite(t)), nil, func(r chi.Router) {
		r.Get("/test/panic", func(http.ResponseWriter, *http.Request) {
			panic("secret internal detail")
		})
	})
	resp, body := s.do(t, request{method: http.MethodGet, path: "/test/panic"})
	checkError(t, resp, body, http.StatusInternalServerError, "internal", "")
	if strings.Contains(string(body), "secret") {
		t.Errorf("body leaks the panic: %s", body)
	}
	id := resp.Header.Get("X-Request-ID")
	rec := s.logs.waitFor(t, "panic serving request", id)
	if stack, _ := rec["stack"].(string); !strings.Contains(stack, "goroutine") {
		t.Errorf("panic log has no stack: %v", rec)
	}
	if rec["panic"] != "secret internal detail" {
		t.Errorf("panic log value = %v", rec["panic"])
	}
	access := s.logs.waitFor(t, "http request", id)
	if access["status"] != float64(500) || access["route"] != "/test/panic" {
		t.Errorf("access log = %v, want status 500 on /test/panic", access)
	}

	// The server keeps serving.
	if resp, _ := s.do(t, request{method: http.MethodGet, path: "/healthz"}); resp.StatusCode != http.StatusOK {
		t.Errorf("after panic: status = %d, want 200", resp.StatusCode)
	}
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 3 * time.Second
	s := newServer(t, newEnv(t, openSQLite(t)), func(d *httpapi.Deps) { d.RequestTimeout = timeout }, func(r chi.Router) {
		r.Get("/test/deadline", func(w http.ResponseWriter, r *http.Request) {
			deadline, ok := r.Context().Deadline()
			if !ok {
				http.Error(w, "no deadline", http.StatusTeapot)
				return
			}
			if left := time.Until(deadline); left <= 0 || left > timeout {
				http.Error(w, "deadline "+left.String()+" away", http.StatusTeapot)
				return
			}
			// The request id reaches handlers through the context too.
			w.Header().Set("X-Seen-Request-ID", domain.RequestID(r.Context()))
			w.WriteHeader(http.StatusNoContent)
		})
	})
	resp, body := s.do(t, request{method: http.MethodGet, path: "/test/deadline"})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status = %d, want 204 (%s)", resp.StatusCode, body)
	}
	if got, want := resp.Header.Get("X-Seen-Request-ID"), resp.Header.Get("X-Request-ID"); got != want {
		t.Errorf("request id in ctx = %q, want %q", got, want)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t))
	const allowed = "https://app.moim.example"
	withCORS := newServer(t, e, func(d *httpapi.Deps) { d.CORSOrigins = []string{allowed} }, nil)
	withoutCORS := newServer(t, e, nil, nil)
	tests := []struct {
		name      string
		srv       *testServer
		origin    string
		wantAllow string
	}{
		{"configured origin", withCORS, allowed, allowed},
		{"other origin", withCORS, "https://evil.example", ""},
		{"no origins configured", withoutCORS, allowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := tt.srv.do(t, request{method: http.MethodOptions, path: "/v1/admin/pings", header: map[string]string{
				"Origin":                         tt.origin,
				"Access-Control-Request-Method":  http.MethodPost,
				"Access-Control-Request-Headers": "Content-Type, Authorization",
			}})
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantAllow)
			}
			if tt.wantAllow != "" && !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), http.MethodPost) {
				t.Errorf("Access-Control-Allow-Methods = %q, want POST in it", resp.Header.Get("Access-Control-Allow-Methods"))
			}
			if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("Access-Control-Allow-Credentials = %q outside the event stream", got)
			}
		})
	}

	// The event stream alone takes credentials: its reconnects present the
	// stream cookie (EventSource withCredentials), and Last-Event-ID.
	for _, tt := range []struct {
		name, origin, wantAllow, wantCredentials string
	}{
		{"stream, configured origin", allowed, allowed, "true"},
		{"stream, other origin", "https://evil.example", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := withCORS.do(t, request{method: http.MethodOptions, path: "/v1/events", header: map[string]string{
				"Origin":                         tt.origin,
				"Access-Control-Request-Method":  http.MethodGet,
				"Access-Control-Request-Headers": "Last-Event-ID",
			}})
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantAllow)
			}
			if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != tt.wantCredentials {
				t.Errorf("Access-Control-Allow-Credentials = %q, want %q", got, tt.wantCredentials)
			}
			if tt.wantAllow != "" && !strings.EqualFold(resp.Header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") {
				t.Errorf("Access-Control-Allow-Headers = %q, want Last-Event-ID", resp.Header.Get("Access-Control-Allow-Headers"))
			}
		})
	}
}

func TestNewRejectsMisconfiguration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t))
	tests := []struct {
		name    string
		mutate  func(*httpapi.Deps)
		wantErr string
	}{
		{"no admin password", func(d *httpapi.Deps) { d.AdminPassword = "" }, "admin password"},
		{"no admin user", func(d *httpapi.Deps) { d.AdminUser = "" }, "admin user"},
		{"no database", func(d *httpapi.Deps) { d.DB = nil }, "database"},
		{"no registry", func(d *httpapi.Deps) { d.Registry = nil }, "registry"},
		{"no relay", func(d *httpapi.Deps) { d.Relay = nil }, "relay"},
		{"no redis", func(d *httpapi.Deps) { d.Redis = nil; d.RedisConnOpt = nil }, "redis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.deps(&logBuffer{}, prometheus.NewRegistry())
			tt.mutate(&d)
			h, cleanup, err := httpapi.New(d)
			if err == nil {
				cleanup()
				t.Fatalf("New succeeded with %s (handler %T)", tt.name, h)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to mention %q", err, tt.wantErr)
			}
		})
	}

	t.Run("metrics registered twice", func(t *testing.T) {
		d := e.deps(&logBuffer{}, prometheus.NewRegistry())
		_, cleanup, err := httpapi.New(d)
		if err != nil {
			t.Fatalf("first New: %v", err)
		}
		if _, c2, err := httpapi.New(d); err == nil {
			c2()
			t.Fatal("second New on the same registry succeeded")
		}
		// After cleanup the registry is free again.
		cleanup()
		_, c3, err := httpapi.New(d)
		if err != nil {
			t.Fatalf("New after cleanup: %v", err)
		}
		c3()
	})
}
