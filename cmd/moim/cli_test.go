package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moim/moim/cmd/internal/app"
	"github.com/moim/moim/jobs/jobstest"
)

func runMoim(t *testing.T, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, logs bytes.Buffer
	err := app.Moim(context.Background(), app.Env{
		Args:   args,
		Getenv: func(k string) string { return vars[k] },
		Stdout: &out,
		Stderr: &logs,
	})
	return out.String(), err
}

func TestInvalidConfigNamesEveryKey(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"MOIM_HTTP_ADDR":          "not-an-address",
		"MOIM_WORKER_CONCURRENCY": "0",
		"MOIM_SCHEDULER_TIMEZONE": "Mars/Olympus",
	}
	_, err := runMoim(t, vars)
	if err == nil {
		t.Fatal("moim started with an invalid configuration")
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
	for _, key := range []string{"database.url", "redis.url", "auth.jwt_key", "admin.password"} {
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
			t.Parallel()
			addr := freeAddr(t)
			vars := map[string]string{
				"MOIM_DATABASE_URL": dbURL,
				"MOIM_REDIS_URL":    redisURL,
				tt.addrKey:          addr,
				"MOIM_LOG_LEVEL":    "warn",
			}
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
