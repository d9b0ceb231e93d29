package jobs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/moim/moim/jobs"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{n: 0, min: 2500 * time.Millisecond, max: 5 * time.Second},
		{n: 1, min: 5 * time.Second, max: 10 * time.Second},
		{n: 3, min: 20 * time.Second, max: 40 * time.Second},
		{n: 6, min: 160 * time.Second, max: 320 * time.Second},
		// From here the cap holds.
		{n: 7, min: 5 * time.Minute, max: 10 * time.Minute},
		{n: 25, min: 5 * time.Minute, max: 10 * time.Minute},
		{n: 1000, min: 5 * time.Minute, max: 10 * time.Minute},
		{n: -1, min: 5 * time.Minute, max: 10 * time.Minute},
	}
	for _, tt := range tests {
		// Jitter is random: many draws must all stay in range, and they must
		// not all be equal.
		distinct := map[time.Duration]bool{}
		for range 200 {
			d := jobs.RetryDelay(tt.n, errors.New("x"), nil)
			if d < tt.min || d > tt.max {
				t.Fatalf("RetryDelay(%d) = %s, want in [%s, %s]", tt.n, d, tt.min, tt.max)
			}
			distinct[d] = true
		}
		if len(distinct) < 2 {
			t.Errorf("RetryDelay(%d): 200 draws gave one value, want jitter", tt.n)
		}
	}
}

func TestDefaultQueuesCoverEveryQueue(t *testing.T) {
	t.Parallel()
	q := jobs.DefaultQueues()
	for _, name := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow} {
		if q[name] <= 0 {
			t.Errorf("DefaultQueues()[%q] = %d, want > 0", name, q[name])
		}
	}
	if !(q[jobs.QueueCritical] > q[jobs.QueueDefault] && q[jobs.QueueDefault] > q[jobs.QueueLow]) {
		t.Errorf("DefaultQueues() = %v, want critical > default > low", q)
	}
}

// TestWithTickQueue: every worker serves the ticks, at the highest weight
// unless the configuration weights them itself; the weights given stay.
func TestWithTickQueue(t *testing.T) {
	t.Parallel()
	given := map[string]int{"critical": 6, "low": 1}
	got := jobs.WithTickQueue(given)
	if got[jobs.QueueTicks] != 6 || got["critical"] != 6 || got["low"] != 1 || len(given) != 2 {
		t.Errorf("WithTickQueue(%v) = %v, want ticks=6 added to a copy", given, got)
	}
	if got := jobs.WithTickQueue(map[string]int{"default": 2, jobs.QueueTicks: 1}); got[jobs.QueueTicks] != 1 {
		t.Errorf("configured ticks weight changed: %v", got)
	}
	if got := jobs.WithTickQueue(nil); got[jobs.QueueTicks] != jobs.DefaultQueues()[jobs.QueueCritical] {
		t.Errorf("WithTickQueue(nil) = %v", got)
	}
}
