package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/storage"
)

const (
	adminUser     = "ops"
	adminPassword = "correct horse"
	// testBodyLimit is small so the 413 case needs no large body.
	testBodyLimit = 1024
)

// env is what several handlers of one test share: a database, a Redis and
// an outbox relay (not running: tests look at the outbox rows themselves).
type env struct {
	db       *bun.DB
	redisOpt asynq.RedisClientOpt
	redis    redis.UniversalClient
	relay    *jobs.Relay
	hasher   *auth.Hasher
	tokens   *auth.Tokens
	sessions *auth.Sessions
	// store is a local object store in storeDir, a directory of the
	// test's own.
	store    *storage.Local
	storeDir string
}

// testJWTKey signs the test servers' access tokens.
var testJWTKey = []byte("test-key-0123456789-0123456789-0123456789")

// cheapPasswords keeps argon2 fast in tests; one test measures the real
// parameters.
var cheapPasswords = auth.PasswordParams{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

// newEnv wires bdb to a Redis of the test's own.
func newEnv(t testing.TB, bdb *bun.DB) *env {
	t.Helper()
	opt := jobstest.RedisOpt(t)
	client := opt.MakeRedisClient()
	rdb, ok := client.(redis.UniversalClient)
	if !ok {
		t.Fatalf("redis client is %T", client)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	relay, err := jobs.NewRelay(bdb, jobs.RelayParams{Redis: opt})
	if err != nil {
		t.Fatalf("new relay: %v", err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	hasher, err := auth.NewHasher(cheapPasswords, 0)
	if err != nil {
		t.Fatalf("new hasher: %v", err)
	}
	tokens, err := auth.NewTokens(auth.TokenParams{Key: testJWTKey, TTL: 15 * time.Minute})
	if err != nil {
		t.Fatalf("new tokens: %v", err)
	}
	sessions, err := auth.NewSessions(auth.SessionParams{Store: db.SessionStore{DB: bdb}, Redis: rdb, TTL: time.Hour})
	if err != nil {
		t.Fatalf("new sessions: %v", err)
	}
	dir := t.TempDir()
	return &env{db: bdb, redisOpt: opt, redis: rdb, relay: relay, hasher: hasher, tokens: tokens, sessions: sessions,
		store: newStore(t, dir, clocktest.Now), storeDir: dir}
}

// testURLKey signs the test stores' URLs.
var testURLKey = []byte("test-url-key-0123456789-0123456789")

// testCodeKey derives the account codes of the test servers.
var testCodeKey = []byte("test-code-key-0123456789-0123456789")

// newStore opens a local object store in dir on the clock now. Its signed
// URLs are relative to the API server.
func newStore(t testing.TB, dir string, now func() time.Time) *storage.Local {
	t.Helper()
	st, err := storage.NewLocal(storage.LocalOptions{Dir: dir, URLKey: testURLKey,
		SignedBaseURL: "/v1/objects", NowFunc: now})
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// openSQLite opens an empty in-memory SQLite database for tests that only
// need a database to ping.
func openSQLite(t *testing.T) *bun.DB {
	t.Helper()
	sqldb, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	bdb := bun.NewDB(sqldb, sqlitedialect.New())
	t.Cleanup(func() { _ = bdb.Close() })
	return bdb
}

// outboxBesidesCodes counts the outbox rows other than the send tasks of
// account codes: every sign-up records one for its verification mail.
func outboxBesidesCodes(t testing.TB, bdb *bun.DB) int {
	t.Helper()
	n, err := bdb.NewSelect().Model((*db.OutboxRow)(nil)).Where("type <> ?", jobs.TypeAccountSendCode).Count(context.Background())
	if err != nil {
		t.Fatalf("count outbox: %v", err)
	}
	return int(n)
}

// testServer is one httpapi handler behind a real HTTP server.
type testServer struct {
	url    string
	logs   *logBuffer
	reg    *prometheus.Registry
	routes chi.Routes // for tests that visit every route
}

// deps returns the Deps a test server starts from.
func (e *env) deps(logs *logBuffer, reg *prometheus.Registry) httpapi.Deps {
	return httpapi.Deps{
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DB:             e.db,
		Redis:          e.redis,
		RedisConnOpt:   e.redisOpt,
		Relay:          e.relay,
		Registry:       reg,
		RequestTimeout: 10 * time.Second,
		BodyLimit:      testBodyLimit,
		AdminUser:      adminUser,
		AdminPassword:  adminPassword,
		Queues:         []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow},
		Passwords:      e.hasher,
		Tokens:         e.tokens,
		Sessions:       e.sessions,
		Storage:        e.store,
		NowFunc:        clocktest.Now,
		Accounts:       httpapi.AccountParams{Key: testCodeKey},
	}
}

// newServer starts the API over e; mutate adjusts the Deps and extra mounts
// test-only routes (either may be nil).
func newServer(t testing.TB, e *env, mutate func(*httpapi.Deps), extra func(chi.Router)) *testServer {
	t.Helper()
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	d := e.deps(logs, reg)
	if mutate != nil {
		mutate(&d)
	}
	h, cleanup, err := httpapi.NewWithRoutes(d, extra)
	if err != nil {
		t.Fatalf("new handler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cleanup()
	})
	routes, _ := h.(chi.Routes)
	return &testServer{url: srv.URL, logs: logs, reg: reg, routes: routes}
}

// basicAuth is which Basic credentials a test request sends.
type basicAuth int

const (
	authNone basicAuth = iota
	authAdmin
	authWrongPassword
	authWrongUser
)

// request is one test request.
type request struct {
	method      string
	path        string
	auth        basicAuth
	contentType string // defaults to application/json when body is set
	body        string
	header      map[string]string
	token       string // sent as "Authorization: Bearer token" when set
}

// do sends req and returns the response with its body read.
func (s *testServer) do(t testing.TB, req request) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r, err := http.NewRequestWithContext(t.Context(), req.method, s.url+req.path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	switch {
	case req.contentType != "":
		r.Header.Set("Content-Type", req.contentType)
	case req.body != "":
		r.Header.Set("Content-Type", "application/json")
	}
	switch req.auth {
	case authAdmin:
		r.SetBasicAuth(adminUser, adminPassword)
	case authWrongPassword:
		r.SetBasicAuth(adminUser, "wrong")
	case authWrongUser:
		r.SetBasicAuth("root", adminPassword)
	}
	if req.token != "" {
		r.Header.Set("Authorization", "Bearer "+req.token)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

// apiError is the error envelope as a client sees it.
type apiError struct {
	Error struct {
		Code    string  `json:"code"`
		Message string  `json:"message"`
		Field   *string `json:"field"`
	} `json:"error"`
}

// checkError asserts resp is the error envelope with the given status and
// code (and field, when wantField is not "").
func checkError(t *testing.T, resp *http.Response, body []byte, wantStatus int, wantCode, wantField string) {
	t.Helper()
	if resp.StatusCode != wantStatus {
		t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e apiError
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("body %s is not the error envelope: %v", body, err)
	}
	if e.Error.Code != wantCode {
		t.Errorf("code = %q, want %q", e.Error.Code, wantCode)
	}
	if e.Error.Message == "" {
		t.Error("message is empty")
	}
	gotField := ""
	if e.Error.Field != nil {
		gotField = *e.Error.Field
		if gotField == "" {
			t.Error(`"field" present but empty`)
		}
	}
	if gotField != wantField {
		t.Errorf("field = %q, want %q", gotField, wantField)
	}
}

// logBuffer collects JSON log lines written concurrently by the server.
type logBuffer struct{ jobstest.LogBuffer }

// records returns the log lines so far, decoded.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	data := []byte(b.String())
	var out []map[string]any
	for line := range bytes.Lines(data) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// waitFor polls the log until a record with message msg and request id id
// appears. The access log is written after the response is sent, so the
// client can see the answer before the line exists.
func (b *logBuffer) waitFor(t *testing.T, msg, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, rec := range b.records(t) {
			if rec["msg"] == msg && rec["request_id"] == id {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q log line for request %s in:\n%s", msg, id, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getOK GETs path with token, fails unless the answer is 200, decodes it
// strictly into dst and returns the raw body.
func (s *testServer) getOK(t testing.TB, path, token string, dst any) []byte {
	t.Helper()
	resp, body := s.do(t, request{method: http.MethodGet, path: path, token: token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status = %d, want 200 (body %s)", path, resp.StatusCode, body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		t.Fatalf("GET %s: decode %s: %v", path, body, err)
	}
	return body
}
