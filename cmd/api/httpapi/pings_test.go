package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/jobs"
)

// pingsClock is the API's clock in ping tests: whole seconds, so every
// dialect stores created_at exactly.
func pingsClock() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }

func fixedClock(d *httpapi.Deps) { d.NowFunc = pingsClock }

// stored counts ping rows and outbox rows.
func stored(t *testing.T, bdb *bun.DB) (pings, outbox int) {
	t.Helper()
	ctx := context.Background()
	np, err := bdb.NewSelect().Table("pings").Count(ctx)
	if err != nil {
		t.Fatalf("count pings: %v", err)
	}
	no := outboxBesidesCodes(t, bdb)
	return int(np), int(no)
}

func TestPingCreateRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), fixedClock, nil)
		const path = "/v1/admin/pings"
		tests := []struct {
			name        string
			method      string
			path        string
			auth        basicAuth
			contentType string
			body        string
			wantStatus  int
			wantCode    string
			wantField   string
		}{
			{"no credentials", http.MethodPost, path, authNone, "", `{"queue":"critical"}`, 401, "unauthorized", ""},
			{"wrong password", http.MethodPost, path, authWrongPassword, "", `{"queue":"critical"}`, 401, "unauthorized", ""},
			{"wrong user", http.MethodPost, path, authWrongUser, "", `{"queue":"critical"}`, 401, "unauthorized", ""},
			{"malformed json", http.MethodPost, path, authAdmin, "", `{"queue":`, 400, "invalid_json", ""},
			{"not json", http.MethodPost, path, authAdmin, "", `queue=critical`, 400, "invalid_json", ""},
			{"trailing data", http.MethodPost, path, authAdmin, "", `{"queue":"critical"} {}`, 400, "invalid_json", ""},
			{"two values", http.MethodPost, path, authAdmin, "", `{}{}`, 400, "invalid_json", ""},
			{"unknown field", http.MethodPost, path, authAdmin, "", `{"queue":"critical","priority":1}`, 400, "invalid", "priority"},
			{"wrong type", http.MethodPost, path, authAdmin, "", `{"queue":7}`, 400, "invalid", "queue"},
			{"array body", http.MethodPost, path, authAdmin, "", `["critical"]`, 400, "invalid", ""},
			{"unknown queue", http.MethodPost, path, authAdmin, "", `{"queue":"urgent"}`, 400, "invalid", "queue"},
			{"wrong content type", http.MethodPost, path, authAdmin, "text/plain", `{"queue":"critical"}`, 415, "unsupported_media_type", ""},
			{"form content type", http.MethodPost, path, authAdmin, "application/x-www-form-urlencoded", `queue=critical`, 415, "unsupported_media_type", ""},
			{"too large", http.MethodPost, path, authAdmin, "", `{"queue":"` + strings.Repeat("x", 2*testBodyLimit) + `"}`, 413, "too_large", ""},
			{"wrong method", http.MethodPut, path, authAdmin, "", `{}`, 405, "method_not_allowed", ""},
			{"unknown ping", http.MethodGet, path + "/nope", authAdmin, "", "", 404, "not_found", ""},
			{"get without credentials", http.MethodGet, path + "/nope", authNone, "", "", 401, "unauthorized", ""},
		}
		t.Run("cases", func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, body := s.do(t, request{method: tt.method, path: tt.path, auth: tt.auth,
						contentType: tt.contentType, body: tt.body})
					checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
					if pings, outbox := stored(t, bdb); pings != 0 || outbox != 0 {
						t.Errorf("stored %d pings and %d outbox rows, want none", pings, outbox)
					}
				})
			}
		})
		if pings, outbox := stored(t, bdb); pings != 0 || outbox != 0 {
			t.Errorf("after all rejected requests: %d pings and %d outbox rows, want none", pings, outbox)
		}
	})
}

// pingBody is a ping as the API answers it; the pointer keeps null apart
// from a missing field.
type pingBody struct {
	ID          string  `json:"id"`
	RequestID   string  `json:"request_id"`
	CreatedAt   string  `json:"created_at"`
	ProcessedAt *string `json:"processed_at"`
}

func decodePing(t *testing.T, body []byte) pingBody {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("ping body %s: %v", body, err)
	}
	for _, k := range []string{"id", "request_id", "created_at", "processed_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("ping body %s lacks %q", body, k)
		}
	}
	if len(raw) != 4 {
		t.Errorf("ping body %s has %d fields, want 4", body, len(raw))
	}
	var p pingBody
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("ping body %s: %v", body, err)
	}
	return p
}

// pingOutboxRow returns the outbox row carrying ping id's task.
func pingOutboxRow(t *testing.T, bdb *bun.DB, id string) db.OutboxRow {
	t.Helper()
	var rows []db.OutboxRow
	if err := bdb.NewSelect().Model(&rows).Where("type = ?", jobs.TypePing).Scan(context.Background()); err != nil {
		t.Fatalf("select outbox: %v", err)
	}
	var found []db.OutboxRow
	for _, r := range rows {
		var p jobs.PingPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatalf("outbox payload %s: %v", r.Payload, err)
		}
		if p.PingID == id {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("outbox rows for ping %s = %d, want 1", id, len(found))
	}
	return found[0]
}

func TestPingCreateAndGet(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), fixedClock, nil)
		tests := []struct {
			name        string
			contentType string
			body        string
			requestID   string
			wantQueue   string
		}{
			{"no body", "", "", "probe-no-body", jobs.QueueDefault},
			{"empty object", "", `{}`, "probe-empty", jobs.QueueDefault},
			{"empty queue", "", `{"queue":""}`, "probe-empty-queue", jobs.QueueDefault},
			{"critical queue", "", `{"queue":"critical"}`, "probe-critical", jobs.QueueCritical},
			{"json with charset", "application/json; charset=utf-8", `{"queue":"low"}`, "probe-low", jobs.QueueLow},
		}
		t.Run("cases", func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel() // also creates pings concurrently
					resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/admin/pings", auth: authAdmin,
						contentType: tt.contentType, body: tt.body,
						header: map[string]string{"X-Request-ID": tt.requestID}})
					if resp.StatusCode != http.StatusAccepted {
						t.Fatalf("status = %d, want 202 (body %s)", resp.StatusCode, body)
					}
					p := decodePing(t, body)
					if p.ID == "" || p.RequestID != tt.requestID || p.CreatedAt != "2026-05-01T12:00:00Z" || p.ProcessedAt != nil {
						t.Errorf("created ping = %+v", p)
					}
					loc := resp.Header.Get("Location")
					if loc != "/v1/admin/pings/"+p.ID {
						t.Errorf("Location = %q, want /v1/admin/pings/%s", loc, p.ID)
					}

					row := pingOutboxRow(t, bdb, p.ID)
					if row.Queue != tt.wantQueue {
						t.Errorf("outbox queue = %q, want %q", row.Queue, tt.wantQueue)
					}
					if got := row.Headers[jobs.HeaderRequestID]; got != tt.requestID {
						t.Errorf("outbox request id = %q, want %q", got, tt.requestID)
					}

					resp, got := s.do(t, request{method: http.MethodGet, path: loc, auth: authAdmin})
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("GET %s: status = %d, want 200 (body %s)", loc, resp.StatusCode, got)
					}
					if !bytes.Equal(got, body) {
						t.Errorf("GET %s = %s, want what POST answered: %s", loc, got, body)
					}

					// A worker handles it; the probe shows when.
					done := pingsClock().Add(90 * time.Second)
					if _, err := (db.Pings{}).MarkProcessed(context.Background(), bdb, p.ID, done); err != nil {
						t.Fatalf("mark processed: %v", err)
					}
					resp, got = s.do(t, request{method: http.MethodGet, path: loc, auth: authAdmin})
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("GET %s: status = %d, want 200", loc, resp.StatusCode)
					}
					if p := decodePing(t, got); p.ProcessedAt == nil || *p.ProcessedAt != "2026-05-01T12:01:30Z" {
						t.Errorf("processed ping = %s, want processed_at 2026-05-01T12:01:30Z", got)
					}
				})
			}
		})
		if pings, outbox := stored(t, bdb); pings != len(tests) || outbox != len(tests) {
			t.Errorf("stored %d pings and %d outbox rows, want %d of each", pings, outbox, len(tests))
		}
	})
}
