package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestHasherWaitsForSlot fills every slot, as a burst of logins would, and
// checks that a caller waits and then gives up with its context.
func TestHasherWaitsForSlot(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(PasswordParams{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, 2)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	enc, err := h.Hash(context.Background(), "pw")
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	for range cap(h.slots) {
		h.slots <- struct{}{}
	}

	const wait = 50 * time.Millisecond
	// start before the deadline is set: on a busy machine time passes
	// between the two, and the wait is measured from the earlier.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Hash with all slots busy: error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d < wait {
		t.Errorf("Hash returned after %s, before its context ended (%s)", d, wait)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if _, _, err := h.Verify(ctx, enc, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with all slots busy: error = %v, want context.Canceled", err)
	}

	// A freed slot is taken again.
	<-h.slots
	if ok, _, err := h.Verify(context.Background(), enc, "pw"); err != nil || !ok {
		t.Errorf("Verify after a slot freed = %v, %v; want true, nil", ok, err)
	}
}
