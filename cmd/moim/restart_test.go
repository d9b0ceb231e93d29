package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moim/moim/cmd/internal/app"
	"github.com/moim/moim/jobs/jobstest"
)

// startMoim starts the all-in-one process with vars and returns the lines of
// its start-up banner; stop shuts it down and waits for it.
func startMoim(t *testing.T, vars map[string]string) (banner []string, stop func()) {
	t.Helper()
	logs := &jobstest.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("moim log:\n%s", logs)
		}
	})
	stdoutR, stdoutW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Moim(ctx, app.Env{Getenv: func(k string) string { return vars[k] }, Stdout: stdoutW, Stderr: logs})
		_ = stdoutW.Close()
	}()
	lines := make(chan []string, 1)
	go func() {
		var got []string
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			got = append(got, strings.TrimSpace(sc.Text()))
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				break
			}
		}
		lines <- got
		_, _ = io.Copy(io.Discard, stdoutR)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("moim returned %v after Ctrl-C, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("moim did not stop within 30s of cancellation")
		}
	}
	t.Cleanup(stop)
	select {
	case banner = <-lines:
	case err := <-done:
		t.Fatalf("moim exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("moim printed no banner within 60s")
	}
	return banner, stop
}

// bannerValue returns what follows prefix on a banner line.
func bannerValue(t *testing.T, banner []string, prefix string) string {
	t.Helper()
	for _, l := range banner {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("banner %q has no %q line", banner, prefix)
	return ""
}

// TestRestartKeepsSessions: a local restart with generated secrets logs
// nobody out and keeps the admin password, as `make run` promises. The
// in-memory Redis is new after the restart, so this also shows that
// sessions live in the database.
func TestRestartKeepsSessions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vars := map[string]string{
		"MOIM_DATABASE_URL": "sqlite:" + filepath.Join(dir, "moim.db"),
		"MOIM_HTTP_ADDR":    "127.0.0.1:0",
		"MOIM_LOG_LEVEL":    "warn",
	}
	banner, stop := startMoim(t, vars)
	base := bannerValue(t, banner, "API:")
	admin := bannerValue(t, banner, "Admin:")
	if !strings.Contains(admin, filepath.Join(dir, "local-secrets.json")) {
		t.Errorf("Admin line %q does not say where the password is kept", admin)
	}
	resp := doJSON(t, http.MethodPost, base+"/v1/auth/signup", "",
		`{"email":"mina@example.com","password":"correct horse battery","nickname":"mina"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("sign-up status = %d, want 201", resp.StatusCode)
	}
	resp = doJSON(t, http.MethodPost, base+"/v1/auth/login", "", `{"email":"mina@example.com","password":"correct horse battery"}`)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	decodeBody(t, resp, &tok)
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("login gave %+v", tok)
	}
	stop()

	banner, _ = startMoim(t, vars)
	base = bannerValue(t, banner, "API:")
	if again := bannerValue(t, banner, "Admin:"); again != admin {
		t.Errorf("admin after restart = %q, want %q", again, admin)
	}
	resp = doJSON(t, http.MethodGet, base+"/v1/me", tok.AccessToken, "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/me with the access token from before the restart: status = %d, want 200", resp.StatusCode)
	}
	body, _ := json.Marshal(map[string]string{"refresh_token": tok.RefreshToken})
	resp = doJSON(t, http.MethodPost, base+"/v1/auth/refresh", "", string(body))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("refresh with the token from before the restart: status = %d, want 200", resp.StatusCode)
	}
}
