package db

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/uptrace/bun"
)

// txAttempts bounds RunInTx: a conflict that survives this many runs is not
// transient any more and is better reported than retried.
const txAttempts = 5

// RunInTx runs fn in a transaction, committing if it returns nil and rolling
// back otherwise. When the transaction fails with a retryable error (see
// IsRetryable: deadlock, serialization failure, lock timeout, SQLITE_BUSY)
// it is run again from the start, up to a few times with a short jittered
// pause, so fn must not keep state across runs except through tx. Other
// errors, and a retryable one on the last attempt, are returned as they are.
func RunInTx(ctx context.Context, bdb *bun.DB, fn func(ctx context.Context, tx bun.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = bdb.RunInTx(ctx, nil, fn)
		if err == nil || !IsRetryable(err) || attempt == txAttempts {
			return err
		}
		// 5-10 ms, then 10-20, 20-40, 40-80: enough for the winner of a
		// deadlock or the holder of SQLite's write lock to finish, and
		// jittered so the losers do not collide again in step.
		base := time.Duration(5<<(attempt-1)) * time.Millisecond
		wait := base + rand.N(base)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("retry transaction after %w: %w", err, ctx.Err())
		case <-t.C:
		}
	}
}
