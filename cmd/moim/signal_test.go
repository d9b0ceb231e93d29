package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopSignalExitsZero: the all-in-one binary stopped by Ctrl-C (SIGINT)
// or by a supervisor (SIGTERM) shuts down gracefully and exits 0, so
// `make run` ends quietly.
func TestStopSignalExitsZero(t *testing.T) {
	t.Parallel()
	modDir, _ := moduleRoot(t)
	bin := filepath.Join(t.TempDir(), "moim")
	build := exec.Command("go", "build", "-o", bin, "./cmd/moim")
	build.Dir = modDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cmd := exec.Command(bin)
			cmd.Dir = dir // data/ (SQLite, local secrets) goes here
			cmd.Env = append(os.Environ(), "MOIM_HTTP_ADDR=127.0.0.1:0", "MOIM_REDIS_URL=", "MOIM_DATABASE_URL=",
				"MOIM_STORAGE_LOCAL_DIR="+filepath.Join(dir, "objects"), "MOIM_LOG_LEVEL=warn")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var logs strings.Builder
			cmd.Stderr = &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make(chan struct{})
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
						close(ready)
					}
				}
			}()
			select {
			case <-ready:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("no banner within 60s; log:\n%s", logs.String())
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("after %s: %v, want exit status 0; log:\n%s", sig, err, logs.String())
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running 60s after %s", sig)
			}
		})
	}
}

// TestHelpListsSubcommands: `moim --help` (and -h, and `moim help`) shows
// the subcommands as well as the flags.
func TestHelpListsSubcommands(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--log.level", "debug", "--help"}} {
		out, err := runMoim(t, map[string]string{}, args...)
		if err != nil {
			t.Errorf("%v: %v", args, err)
		}
		for _, want := range []string{"moim api|worker|scheduler", "moim migrate up|down|status", "moim admin create",
			"moim points check", "--http.addr", "--config"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out)
			}
		}
	}
}
