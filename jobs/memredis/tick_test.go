package memredis

import (
	"testing"
	"time"
)

// Close must stop the clock goroutine, not leave it ticking.
func TestCloseStopsClock(t *testing.T) {
	t.Parallel()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	s.Close()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("clock goroutine still running after Close")
	}
}
