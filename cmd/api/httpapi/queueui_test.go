package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/jobs"
)

func TestQueueUI(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, openSQLite(t)), nil, nil)
	tests := []struct {
		name        string
		path        string
		auth        basicAuth
		wantStatus  int
		wantContent string // "html" for the UI page, "json" for its API
	}{
		{"ui without credentials", "/admin/queues", authNone, http.StatusUnauthorized, ""},
		{"ui with wrong password", "/admin/queues", authWrongPassword, http.StatusUnauthorized, ""},
		{"ui with wrong user", "/admin/queues", authWrongUser, http.StatusUnauthorized, ""},
		{"ui page below root without credentials", "/admin/queues/queues/default", authNone, http.StatusUnauthorized, ""},
		{"api without credentials", "/admin/queues/api/queues", authNone, http.StatusUnauthorized, ""},
		{"api with wrong password", "/admin/queues/api/queues", authWrongPassword, http.StatusUnauthorized, ""},
		{"ui with credentials", "/admin/queues", authAdmin, http.StatusOK, "html"},
		{"ui page below root with credentials", "/admin/queues/queues/default", authAdmin, http.StatusOK, "html"},
		{"api with credentials", "/admin/queues/api/queues", authAdmin, http.StatusOK, "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, request{method: http.MethodGet, path: tt.path, auth: tt.auth})
			if tt.wantStatus == http.StatusUnauthorized {
				checkError(t, resp, body, http.StatusUnauthorized, "unauthorized", "")
				if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="moim admin"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if strings.Contains(strings.ToLower(string(body)), "<html") || strings.Contains(string(body), "queues") {
					t.Errorf("401 body leaks the UI: %s", body)
				}
				return
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			switch tt.wantContent {
			case "html":
				if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "text/html") {
					t.Errorf("Content-Type = %q, want text/html", ct)
				}
				if !strings.Contains(strings.ToLower(string(body)), "<html") {
					t.Errorf("body is not the UI page: %.200s", body)
				}
			case "json":
				// asynqmon sets no Content-Type on its API; check the payload.
				var payload struct {
					Queues []json.RawMessage `json:"queues"`
				}
				if err := json.Unmarshal(body, &payload); err != nil || payload.Queues == nil {
					t.Errorf("body is not the queue list (%v): %.200s", err, body)
				}
			}
		})
	}
}

// TestAdminFraming: nothing under /admin may be framed by another page
// (clickjacking the queue UI), whatever the answer.
func TestAdminFraming(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, openSQLite(t)), nil, nil)
	for _, req := range []request{
		{method: http.MethodGet, path: "/admin/queues", auth: authAdmin},
		{method: http.MethodGet, path: "/admin/queues/queues/default", auth: authAdmin},
		{method: http.MethodGet, path: "/admin/queues/api/queues", auth: authAdmin},
		{method: http.MethodGet, path: "/admin/queues"},
		{method: http.MethodGet, path: "/admin/mailbox", auth: authAdmin},
		{method: http.MethodGet, path: "/admin/nothing-here", auth: authAdmin},
	} {
		resp, body := s.do(t, req)
		if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s (status %d): X-Frame-Options = %q, want DENY (body %.100s)", req.path, resp.StatusCode, got, body)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != "frame-ancestors 'none'" {
			t.Errorf("%s: Content-Security-Policy = %q", req.path, got)
		}
	}
	resp, _ := s.do(t, request{method: http.MethodGet, path: "/healthz"})
	if got := resp.Header.Get("X-Frame-Options"); got != "" {
		t.Errorf("/healthz: X-Frame-Options = %q, want none outside /admin", got)
	}
}

// TestAdminCrossSite: a page on another site cannot use the browser's
// cached admin credentials to change anything (here: pause a queue), while
// the queue UI's own requests and scripts without browser marks work.
func TestAdminCrossSite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite))
	s := newServer(t, e, nil, nil)
	client := asynq.NewClient(e.redisOpt)
	t.Cleanup(func() { _ = client.Close() })
	if _, err := client.Enqueue(asynq.NewTask("test:noop", nil), asynq.Queue(jobs.QueueDefault)); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(e.redisOpt)
	t.Cleanup(func() { _ = insp.Close() })
	paused := func() bool {
		t.Helper()
		info, err := insp.GetQueueInfo(jobs.QueueDefault)
		if err != nil {
			t.Fatal(err)
		}
		return info.Paused
	}
	const pause = "/admin/queues/api/queues/" + jobs.QueueDefault + ":pause"
	for _, tt := range []struct {
		name   string
		header map[string]string
	}{
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{"same-site fetch", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://evil.example"}},
		{"foreign origin, older browser", map[string]string{"Origin": "https://evil.example"}},
		{"opaque origin", map[string]string{"Origin": "null"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, request{method: http.MethodPost, path: pause, auth: authAdmin,
				contentType: "text/plain", body: "x", header: tt.header})
			checkError(t, resp, body, http.StatusForbidden, "cross_site_request", "")
			if paused() {
				t.Fatal("the queue was paused")
			}
		})
	}
	// The admin API is guarded as well; a bearer token, which the browser
	// does not add by itself, is no forgery and goes on to be checked.
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site"}
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/admin/notifications", auth: authAdmin,
		body: `{}`, header: crossSite})
	checkError(t, resp, body, http.StatusForbidden, "cross_site_request", "")
	s.signup(t, "member@example.com", "member")
	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/admin/notifications",
		token: s.login(t, "member@example.com").AccessToken, body: `{}`, header: crossSite})
	checkError(t, resp, body, http.StatusForbidden, "forbidden", "")

	origin := strings.TrimSuffix(s.url, "/")
	resp, body = s.do(t, request{method: http.MethodPost, path: pause, auth: authAdmin,
		header: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": origin}})
	if resp.StatusCode >= 300 || !paused() {
		t.Fatalf("same-origin pause: status = %d (body %s), paused = %v", resp.StatusCode, body, paused())
	}
	resume := "/admin/queues/api/queues/" + jobs.QueueDefault + ":resume"
	if resp, body = s.do(t, request{method: http.MethodPost, path: resume, auth: authAdmin}); resp.StatusCode >= 300 || paused() {
		t.Fatalf("resume without browser headers (a script): status = %d (body %s)", resp.StatusCode, body)
	}
}

// TestQueueUIShowsTasksReadably: a tick's id reads whole in the UI's API
// (its page cuts ids at the first dash), and payload and result read as
// JSON rather than "non-printable bytes".
func TestQueueUIShowsTasksReadably(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t))
	s := newServer(t, e, nil, nil)
	mux := asynq.NewServeMux()
	mux.HandleFunc("tick:ui-test", func(_ context.Context, task *asynq.Task) error {
		_, err := task.ResultWriter().Write([]byte(`{"matches":2}`))
		return err
	})
	srv := asynq.NewServer(e.redisOpt, asynq.Config{Queues: map[string]int{jobs.QueueTicks: 1},
		TaskCheckInterval: 20 * time.Millisecond, LogLevel: asynq.ErrorLevel})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	client := asynq.NewClient(e.redisOpt)
	t.Cleanup(func() { _ = client.Close() })
	const id = "tick:match_sweep:20261207T201630Z"
	if _, err := client.Enqueue(asynq.NewTask("tick:ui-test", []byte(`{"slot":"2026-12-07T20:16:30Z"}`)),
		asynq.TaskID(id), asynq.Queue(jobs.QueueTicks), asynq.Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	type uiTask struct {
		ID      string `json:"id"`
		Payload string `json:"payload"`
		Result  string `json:"result"`
	}
	var page struct {
		Tasks []uiTask `json:"tasks"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(page.Tasks) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the task did not complete")
		}
		time.Sleep(20 * time.Millisecond)
		resp, body := s.do(t, request{method: http.MethodGet, path: "/admin/queues/api/queues/ticks/completed_tasks", auth: authAdmin})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d: %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
	}
	got := page.Tasks[0]
	want := uiTask{ID: id, Payload: "{\n  \"slot\": \"2026-12-07T20:16:30Z\"\n}", Result: "{\n  \"matches\": 2\n}"}
	if got != want {
		t.Errorf("task = %+v, want %+v", got, want)
	}
}
