package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

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
	base, admin := banner["API"], banner["Admin"]
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
	base = banner["API"]
	if again := banner["Admin"]; again != admin {
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
