package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moim/moim/cmd/internal/app"
	"github.com/moim/moim/jobs/jobstest"
)

// TestAllInOne runs the whole system the way `make run` does — one process, a
// temporary SQLite file and the in-memory Redis — and drives it over HTTP.
func TestAllInOne(t *testing.T) {
	t.Parallel()
	const adminPassword = "e2e-admin-password"
	vars := map[string]string{
		"MOIM_DATABASE_URL":   "sqlite:" + filepath.Join(t.TempDir(), "moim.db"),
		"MOIM_HTTP_ADDR":      "127.0.0.1:0",
		"MOIM_ADMIN_PASSWORD": adminPassword,
		// Mixed case on purpose: login looks addresses up lower-cased.
		"MOIM_ADMIN_EMAIL": "Ops@Example.COM",
		"MOIM_LOG_LEVEL":   "warn",
	}
	banner, _ := startMoim(t, vars)
	base := banner["API"]

	for _, path := range []string{"/healthz", "/readyz"} {
		resp := do(t, http.MethodGet, base+path, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s status = %d, want 200", path, resp.StatusCode)
		}
	}

	// A ping goes API → outbox → relay → Redis → worker → database.
	resp := do(t, http.MethodPost, base+"/v1/admin/pings", adminPassword, strings.NewReader(`{"queue":"critical"}`))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST ping status = %d, want 202", resp.StatusCode)
	}
	var ping struct {
		ID          string     `json:"id"`
		ProcessedAt *time.Time `json:"processed_at"`
	}
	decodeBody(t, resp, &ping)
	if ping.ID == "" {
		t.Fatal("ping id is empty")
	}
	deadline := time.Now().Add(20 * time.Second)
	for ping.ProcessedAt == nil {
		if time.Now().After(deadline) {
			t.Fatal("ping was not processed within 20s")
		}
		time.Sleep(50 * time.Millisecond)
		resp := do(t, http.MethodGet, base+"/v1/admin/pings/"+ping.ID, adminPassword, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET ping status = %d, want 200", resp.StatusCode)
		}
		decodeBody(t, resp, &ping)
	}

	// The run created an admin member with the admin password: its token
	// opens the admin endpoints, a new member's does not.
	admin := login(t, base, "ops@example.com", adminPassword)
	resp = doJSON(t, http.MethodPost, base+"/v1/admin/pings", admin, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST ping with the admin's token: status = %d, want 202", resp.StatusCode)
	}
	resp.Body.Close()
	resp = doJSON(t, http.MethodPost, base+"/v1/auth/signup", "",
		`{"email":"mina@example.com","password":"correct horse battery","nickname":"mina"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("sign-up status = %d, want 201", resp.StatusCode)
	}
	resp.Body.Close()
	member := login(t, base, "mina@example.com", "correct horse battery")
	resp = doJSON(t, http.MethodGet, base+"/v1/me", member, "")
	var me struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	decodeBody(t, resp, &me)
	if me.Email != "mina@example.com" || me.Role != "member" {
		t.Errorf("GET /v1/me = %+v", me)
	}
	resp = doJSON(t, http.MethodPost, base+"/v1/admin/pings", member, "")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST ping with a member's token: status = %d, want 403", resp.StatusCode)
	}
	resp.Body.Close()

	// A notification goes producer → outbox → fan-out → deliveries: the
	// member's open event stream shows it live, the list has it, and the
	// log mail provider kept the mail for the admin's mailbox.
	events := openStream(t, base, member)
	resp = doJSON(t, http.MethodPost, base+"/v1/admin/notifications", admin,
		`{"member_ids":["`+me.ID+`"],"type":"JOIN_ACCEPTED","args":{"title":"점심 같이 먹어요","link":"/rooms/r1"}}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/admin/notifications status = %d, want 202", resp.StatusCode)
	}
	resp.Body.Close()
	select {
	case data := <-events:
		if !strings.Contains(data, `"type":"JOIN_ACCEPTED"`) {
			t.Errorf("event data %s", data)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no notification event within 20s")
	}
	var list struct {
		Notifications []struct {
			Type string `json:"type"`
		} `json:"notifications"`
		UnreadCount int `json:"unread_count"`
	}
	decodeBody(t, doJSON(t, http.MethodGet, base+"/v1/notifications", member, ""), &list)
	if len(list.Notifications) != 1 || list.Notifications[0].Type != "JOIN_ACCEPTED" || list.UnreadCount != 1 {
		t.Errorf("GET /v1/notifications = %+v", list)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		var box struct {
			Messages []struct {
				Channel string `json:"channel"`
				To      string `json:"to"`
				Subject string `json:"subject"`
			} `json:"messages"`
		}
		decodeBody(t, do(t, http.MethodGet, base+"/admin/mailbox", adminPassword, nil), &box)
		if len(box.Messages) > 0 {
			if m := box.Messages[0]; m.Channel != "mail" || m.To != "mina@example.com" || m.Subject == "" {
				t.Errorf("mailbox = %+v", box.Messages)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no mail in /admin/mailbox within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A join goes API → outbox → relay → worker, which admits it.
	date := time.Now().In(time.FixedZone("KST", 9*3600)).AddDate(0, 0, 2).Format("2006-01-02")
	resp = doJSON(t, http.MethodPost, base+"/v1/rooms", admin,
		`{"category":"MEAL","title":"점심","date":"`+date+`","start_time":"12:30","place":"개포","capacity":2}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/rooms status = %d, want 201", resp.StatusCode)
	}
	var room struct {
		ID string `json:"id"`
	}
	decodeBody(t, resp, &room)
	resp = doJSON(t, http.MethodPost, base+"/v1/rooms/"+room.ID+"/participations", member, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST participation status = %d, want 202", resp.StatusCode)
	}
	var req struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	decodeBody(t, resp, &req)
	deadline = time.Now().Add(20 * time.Second)
	for req.Status == "REQUESTED" {
		if time.Now().After(deadline) {
			t.Fatal("join request not decided within 20s")
		}
		time.Sleep(50 * time.Millisecond)
		decodeBody(t, doJSON(t, http.MethodGet, base+"/v1/participations/"+req.ID, member, ""), &req)
	}
	if req.Status != "JOINED" {
		t.Errorf("join request %s, want JOINED", req.Status)
	}

	// The queue UI needs the admin credentials and shows nothing without them.
	for _, tc := range []struct {
		name, password string
		want           int
	}{
		{"no credentials", "", http.StatusUnauthorized},
		{"wrong password", "wrong", http.StatusUnauthorized},
		{"admin", adminPassword, http.StatusOK},
	} {
		resp := do(t, http.MethodGet, base+"/admin/queues", tc.password, nil)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: GET /admin/queues status = %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		html := strings.Contains(strings.ToLower(string(body)), "<html")
		if html != (tc.want == http.StatusOK) {
			t.Errorf("%s: queue UI HTML served = %v", tc.name, html)
		}
	}
}

// withObjectDir points the local object store of a run configured by vars
// at a directory of the test's own unless vars name one: the default,
// data/objects, would be made in the source tree.
func withObjectDir(t *testing.T, vars map[string]string) {
	t.Helper()
	if vars["MOIM_STORAGE_LOCAL_DIR"] == "" {
		vars["MOIM_STORAGE_LOCAL_DIR"] = filepath.Join(t.TempDir(), "objects")
	}
}

// startMoim runs the all-in-one process as `make run` does, configured by
// vars (its whole environment), and returns its start-up banner by label:
// "API", "Admin", …. stop shuts it down (Ctrl-C) and waits for it; the
// test's end does so if the test did not.
func startMoim(t *testing.T, vars map[string]string) (banner map[string]string, stop func()) {
	t.Helper()
	withObjectDir(t, vars)
	logs := &jobstest.LogBuffer{} // t.Log would panic if a straggling goroutine logged after the test
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("moim log:\n%s", logs)
		}
	})
	stdoutR, stdoutW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Moim(ctx, app.Env{
			Getenv: func(k string) string { return vars[k] },
			Stdout: stdoutW,
			Stderr: logs,
		})
		_ = stdoutW.Close()
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("moim returned %v after Ctrl-C, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("moim did not stop within 30s of cancellation")
		}
	})
	t.Cleanup(stop)
	banner = readBanner(t, stdoutR, done)
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	return banner, stop
}

// readBanner reads the banner's "Label: value" lines up to "Press Ctrl-C".
func readBanner(t *testing.T, r io.Reader, done <-chan error) map[string]string {
	t.Helper()
	lines := make(chan map[string]string, 1)
	go func() {
		banner := map[string]string{}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "Press Ctrl-C") {
				break
			}
			if label, value, ok := strings.Cut(line, ":"); ok {
				banner[label] = strings.TrimSpace(value)
			}
		}
		lines <- banner
	}()
	select {
	case banner := <-lines:
		if banner["API"] == "" {
			t.Fatalf("moim printed no API URL: %q", banner)
		}
		return banner
	case err := <-done:
		t.Fatalf("moim exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("moim did not print its banner within 60s")
	}
	return nil
}

func do(t *testing.T, method, url, password string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if password != "" {
		req.SetBasicAuth("admin", password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeBody(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode response: %v", err)
	}
}

// doJSON sends a JSON body (when not empty) with a bearer token (when set).
func doJSON(t *testing.T, method, url, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// login returns an access token for email.
func login(t *testing.T, base, email, password string) string {
	t.Helper()
	body, err := json.Marshal(map[string]string{"email": email, "password": password})
	if err != nil {
		t.Fatal(err)
	}
	resp := doJSON(t, http.MethodPost, base+"/v1/auth/login", "", string(body))
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("login %s: status = %d (body %s)", email, resp.StatusCode, b)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	decodeBody(t, resp, &tok)
	return tok.AccessToken
}

// openStream connects to the event stream with token and returns the data
// of each notification event as it arrives, once the stream is connected.
func openStream(t *testing.T, base, token string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events status = %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != "" { // the connected event
	}
	out := make(chan string, 16)
	go func() {
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok && event == "notification" {
				out <- v
			}
		}
	}()
	return out
}
