package clocktest_test

import (
	"os"
	"testing"
	"time"

	"github.com/moim/moim/internal/clocktest"
)

// TestEnv proves a pinned run is pinned: Now starts at MOIM_TEST_NOW, and
// the zone in TZ was found (Go falls back to UTC, silently, when it is not).
func TestEnv(t *testing.T) {
	t.Parallel()
	now := clocktest.Now()
	if v := os.Getenv(clocktest.Env); v != "" {
		want, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		if d := now.Sub(want); d < 0 || d > time.Minute {
			t.Errorf("Now() = %s, want just after %s", now, want)
		}
	}
	if tz := os.Getenv("TZ"); tz != "" && tz != "UTC" && time.Local.String() != tz {
		t.Errorf("TZ=%s but the local zone is %s: zone data missing?", tz, time.Local)
	}
	time.Sleep(time.Millisecond)
	if next := clocktest.Now(); !next.After(now) {
		t.Errorf("Now() went from %s to %s, want it to move on", now, next)
	}
	if now.Location() != time.Local {
		t.Errorf("Now() is in %s, want %s like time.Now()", now.Location(), time.Local)
	}
}
