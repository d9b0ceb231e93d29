package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
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
