package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/jobs/memredis"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, openSQLite(t)), nil, nil)
	resp, body := s.do(t, request{method: http.MethodGet, path: "/healthz"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if got := string(body); got != "{\"status\":\"ok\"}\n" {
		t.Errorf("body = %q", got)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t))

	// A Redis and a database of this test's own, so they can be stopped.
	startRedis := func(t *testing.T) (*memredis.Server, redis.UniversalClient) {
		srv, err := memredis.Start("127.0.0.1:0")
		if err != nil {
			t.Fatalf("start memredis: %v", err)
		}
		t.Cleanup(srv.Close)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		return srv, rdb
	}

	tests := []struct {
		name       string
		redisDown  bool
		dbDown     bool
		wantStatus int
		wantMsg    string
	}{
		{"all up", false, false, http.StatusOK, ""},
		{"redis down", true, false, http.StatusServiceUnavailable, "redis unreachable"},
		{"database down", false, true, http.StatusServiceUnavailable, "database unreachable"},
		{"both down", true, true, http.StatusServiceUnavailable, "database and redis unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rdb := startRedis(t)
			bdb := openSQLite(t)
			s := newServer(t, e, func(d *httpapi.Deps) {
				d.Redis = rdb
				d.DB = bdb
				d.RedisConnOpt = asynq.RedisClientOpt{Addr: srv.Addr()}
			}, nil)
			if tt.redisDown {
				srv.Close()
			}
			if tt.dbDown {
				if err := bdb.Close(); err != nil {
					t.Fatalf("close db: %v", err)
				}
			}
			resp, body := s.do(t, request{method: http.MethodGet, path: "/readyz"})
			if tt.wantStatus == http.StatusOK {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
				}
				if got := string(body); got != "{\"status\":\"ready\"}\n" {
					t.Errorf("body = %q", got)
				}
				return
			}
			checkError(t, resp, body, tt.wantStatus, "unavailable", "")
			var e apiError
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			if e.Error.Message != tt.wantMsg {
				t.Errorf("message = %q, want %q", e.Error.Message, tt.wantMsg)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t))
	s := newServer(t, e, nil, func(r chi.Router) {
		r.Get("/test/items/{id}", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})
	})

	client := asynq.NewClient(e.redisOpt)
	t.Cleanup(func() { _ = client.Close() })
	if _, err := client.Enqueue(asynq.NewTask("test:noop", nil), asynq.Queue("default")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	// Two ids on one route must make one series: the label is the pattern.
	for _, path := range []string{"/test/items/a1", "/test/items/b2", "/no/such/route"} {
		s.do(t, request{method: http.MethodGet, path: path})
	}

	want := []string{
		`moim_http_requests_total{code="204",method="GET",route="/test/items/{id}"} 2`,
		`moim_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`moim_http_request_duration_seconds_count{method="GET",route="/test/items/{id}"} 2`,
		`moim_queue_size{queue="default",state="pending"} 1`,
		`moim_queue_metrics_up 1`,
	}
	body := waitMetrics(t, s, want)
	for _, raw := range []string{"/test/items/a1", "/no/such/route"} {
		if strings.Contains(body, raw) {
			t.Errorf("/metrics has the raw path %s as a label", raw)
		}
	}
}

// waitMetrics polls /metrics until it holds every line of want and returns
// it; metrics are recorded after the response is sent.
func waitMetrics(t *testing.T, s *testServer, want []string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, b := s.do(t, request{method: http.MethodGet, path: "/metrics"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", resp.StatusCode)
		}
		body := string(b)
		missing := 0
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				missing++
			}
		}
		if missing == 0 {
			return body
		}
		if time.Now().After(deadline) {
			for _, w := range want {
				if !strings.Contains(body, w+"\n") {
					t.Errorf("/metrics lacks %s", w)
				}
			}
			t.Fatalf("/metrics:\n%s", body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
