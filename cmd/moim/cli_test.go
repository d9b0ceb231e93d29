package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moim/moim/cmd/internal/app"
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
