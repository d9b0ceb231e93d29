package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
)

func TestAsynqLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := asynqLogger{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	l.Debug("hidden", 1)
	l.Info("hidden too")
	l.Warn("lease ", "lost")
	l.Error("broker ", "down")
	l.Fatal("cannot ", "go on") // must not exit the test binary
	want := []string{
		`level=WARN msg=asynq detail="lease lost"`,
		`level=ERROR msg=asynq detail="broker down"`,
		`level=ERROR msg=asynq detail="fatal: cannot go on"`,
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], w)
		}
	}
}

func TestIsFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("timeout"), true},
		{"skip retry", fmt.Errorf("decode: %w", asynq.SkipRetry), false},
	}
	for _, tt := range tests {
		if got := isFailure(tt.err); got != tt.want {
			t.Errorf("isFailure(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
