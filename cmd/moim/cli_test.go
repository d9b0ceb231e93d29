package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/cmd/internal/app"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/jobstest"
)

func runMoim(t *testing.T, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	return runMoimStdin(t, vars, "", args...)
}

func TestInvalidConfigNamesEveryKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vars := map[string]string{
		"MOIM_HTTP_ADDR":          "not-an-address",
		"MOIM_WORKER_CONCURRENCY": "0",
		"MOIM_SCHEDULER_TIMEZONE": "Mars/Olympus",
		"MOIM_DATABASE_URL":       "sqlite:" + filepath.Join(dir, "moim.db"),
	}
	_, err := runMoim(t, vars)
	if err == nil {
		t.Fatal("moim started with an invalid configuration")
	}
	// A refused configuration leaves nothing behind, not even the secrets
	// a valid local start would keep beside the database.
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("a refused start wrote %s", entries[0].Name())
	}
	for _, key := range []string{"http.addr", "worker.concurrency", "scheduler.timezone"} {
		if !strings.Contains(err.Error(), key+":") {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
}

func TestProductionRefusesMissingSecrets(t *testing.T) {
	t.Parallel()
	_, err := runMoim(t, map[string]string{"MOIM_ENV": "production"})
	if err == nil {
		t.Fatal("production started without its secrets")
	}
	for _, key := range []string{"database.url", "redis.url", "auth.jwt_key", "admin.password", "mail.provider", "sms.provider"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"MOIM_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "m.db")}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "status"}, "pending"},
		{[]string{"migrate", "up"}, "applied 20261125000001_foundation"},
		{[]string{"migrate", "up"}, "database is up to date"},
		{[]string{"migrate", "status"}, "applied"},
		{[]string{"migrate", "down"}, "rolled back 20261125000001_foundation"},
		{[]string{"migrate", "status"}, "pending"},
	}
	for _, s := range steps {
		out, err := runMoim(t, vars, s.args...)
		if err != nil {
			t.Fatalf("moim %v: %v", s.args, err)
		}
		if !strings.Contains(out, s.want) {
			t.Fatalf("moim %v printed %q, want it to contain %q", s.args, out, s.want)
		}
	}
	if _, err := runMoim(t, vars, "migrate", "sideways"); err == nil {
		t.Error("moim migrate sideways succeeded")
	}
	if _, err := runMoim(t, vars, "frobnicate"); err == nil {
		t.Error("unknown command succeeded")
	}
}

func TestSingleRoleNeedsRedisURL(t *testing.T) {
	t.Parallel()
	for _, role := range []string{"api", "worker", "scheduler"} {
		_, err := runMoim(t, map[string]string{"MOIM_DATABASE_URL": "sqlite::memory:"}, role)
		if err == nil || !strings.Contains(err.Error(), "redis.url") {
			t.Errorf("moim %s without redis.url: error = %v, want one naming redis.url", role, err)
		}
	}
}

func TestSingleRoleNeedsDatabaseURL(t *testing.T) {
	t.Parallel()
	for _, role := range []string{"api", "worker"} {
		_, err := runMoim(t, map[string]string{"MOIM_REDIS_URL": "redis://127.0.0.1:1/0"}, role)
		if err == nil || !strings.Contains(err.Error(), "database.url") {
			t.Errorf("moim %s without database.url: error = %v, want one naming database.url", role, err)
		}
	}

}

// TestProcessOpsPorts runs a worker and a scheduler process the way the
// Procfile does and checks their own /healthz and /metrics ports.
func TestProcessOpsPorts(t *testing.T) {
	t.Parallel()
	redisURL := jobstest.RedisURL(t)
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "m.db")
	tests := []struct {
		role, addrKey, metric string
	}{
		{"worker", "MOIM_WORKER_METRICS_ADDR", "moim_outbox_unsent"},
		// On start the scheduler catches up the latest outbox-prune slot.
		{"scheduler", "MOIM_SCHEDULER_METRICS_ADDR", `moim_scheduler_ticks_enqueued_total{tick="outbox-prune"}`},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			addr := freeAddr(t)
			vars := map[string]string{
				"MOIM_DATABASE_URL": dbURL,
				"MOIM_REDIS_URL":    redisURL,
				tt.addrKey:          addr,
				"MOIM_LOG_LEVEL":    "warn",
			}
			withObjectDir(t, vars)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- app.Moim(ctx, app.Env{Args: []string{tt.role}, Getenv: func(k string) string { return vars[k] },
					Stdout: io.Discard, Stderr: io.Discard})
			}()
			defer func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("moim %s returned %v on shutdown", tt.role, err)
					}
				case <-time.After(30 * time.Second):
					t.Errorf("moim %s did not stop within 30s", tt.role)
				}
			}()
			base := "http://" + addr
			deadline := time.Now().Add(20 * time.Second)
			for {
				resp, err := http.Get(base + "/healthz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s /healthz not answering within 20s: %v", tt.role, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			for {
				resp, err := http.Get(base + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(body), tt.metric) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s /metrics lacks %s", tt.role, tt.metric)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runMoimStdin is runMoim with stdin.
func runMoimStdin(t *testing.T, vars map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	withObjectDir(t, vars)
	var out, logs bytes.Buffer
	err := app.Moim(context.Background(), app.Env{
		Args:   args,
		Getenv: func(k string) string { return vars[k] },
		Stdout: &out,
		Stderr: &logs,
		Stdin:  strings.NewReader(stdin),
	})
	return out.String(), err
}

func TestAdminCreate(t *testing.T) {
	t.Parallel()
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "admin.db")
	vars := map[string]string{"MOIM_DATABASE_URL": dbURL}
	if _, err := runMoim(t, vars, "migrate", "up"); err != nil {
		t.Fatal(err)
	}

	// Refusals first: nothing may be stored by any of them.
	for _, tc := range []struct {
		name  string
		vars  map[string]string
		stdin string
		args  []string
		want  string
	}{
		{"no email", vars, "", []string{"admin", "create"}, "--email is required"},
		{"bad email", vars, "", []string{"admin", "create", "--email", "nope"}, "e-mail address"},
		{"no password", vars, "", []string{"admin", "create", "--email", "ops@example.com"}, "password"},
		{"short password", vars, "short\n", []string{"admin", "create", "--email", "ops@example.com", "--password-stdin"}, "8 to 128"},
		{"unknown subcommand", vars, "", []string{"admin", "delete"}, "create"},
	} {
		if _, err := runMoimStdin(t, tc.vars, tc.stdin, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	if n := countRows(t, dbURL, "members"); n != 0 {
		t.Fatalf("refused commands stored %d members", n)
	}

	out, err := runMoimStdin(t, vars, "correct horse battery\n", "admin", "create", "--email", "Ops@Example.com", "--password-stdin", "--nickname=운영자")
	if err != nil || !strings.Contains(out, "created admin ops@example.com (운영자") {
		t.Fatalf("admin create: %q, %v", out, err)
	}
	// The password arrived intact: the hasher verifies it.
	checkLogin(t, dbURL, "ops@example.com", "correct horse battery")
	out, err = runMoim(t, vars, "admin", "create", "--email", "ops@example.com")
	if err != nil || !strings.Contains(out, "already an admin") {
		t.Errorf("second admin create: %q, %v", out, err)
	}
	// The password from the environment, and a configuration flag mixed in.
	envVars := map[string]string{"MOIM_NEW_ADMIN_PASSWORD": "another long password"}
	out, err = runMoim(t, envVars, "admin", "create", "--database.url="+dbURL, "--email", "second@example.com")
	if err != nil || !strings.Contains(out, "created admin second@example.com (second") {
		t.Fatalf("admin create from env: %q, %v", out, err)
	}
	checkLogin(t, dbURL, "second@example.com", "another long password")
	if n := countRows(t, dbURL, "members"); n != 2 {
		t.Errorf("%d members, want 2", n)
	}
}

func openTestDB(t *testing.T, dbURL string) *bun.DB {
	t.Helper()
	bdb, err := db.Open(context.Background(), dbURL, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bdb.Close() })
	return bdb
}

func countRows(t *testing.T, dbURL, table string) int {
	t.Helper()
	n, err := openTestDB(t, dbURL).NewSelect().Table(table).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// checkLogin asserts email is an admin whose stored hash verifies password.
func checkLogin(t *testing.T, dbURL, email, password string) {
	t.Helper()
	ctx := context.Background()
	m, err := (db.Members{}).FindByEmail(ctx, openTestDB(t, dbURL), email)
	if err != nil {
		t.Fatalf("find %s: %v", email, err)
	}
	if m.Role != domain.RoleAdmin {
		t.Errorf("%s has role %v, want admin", email, m.Role)
	}
	h, err := auth.NewHasher(auth.DefaultPasswordParams(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := h.Verify(ctx, m.PasswordHash, password); err != nil || !ok {
		t.Errorf("stored hash of %s does not verify the password (ok %v, err %v)", email, ok, err)
	}
}

func TestAdminCreatePromotesAMember(t *testing.T) {
	t.Parallel()
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "promote.db")
	vars := map[string]string{"MOIM_DATABASE_URL": dbURL}
	if _, err := runMoim(t, vars, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	h, err := auth.NewHasher(auth.DefaultPasswordParams(), 1)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(context.Background(), "member password")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	m := domain.Member{Email: "mina@example.com", PasswordHash: hash, Nickname: "mina",
		Prefs: domain.DefaultNotificationPrefs(), Role: domain.RoleMember, CreatedAt: now, UpdatedAt: now}
	if err := (db.Members{}).Create(context.Background(), openTestDB(t, dbURL), &m); err != nil {
		t.Fatal(err)
	}
	out, err := runMoimStdin(t, vars, "ignored for an existing member\n", "admin", "create", "--email", "mina@example.com", "--password-stdin")
	if err != nil || !strings.Contains(out, "made member mina@example.com") {
		t.Fatalf("promote: %q, %v", out, err)
	}
	checkLogin(t, dbURL, "mina@example.com", "member password")
}
