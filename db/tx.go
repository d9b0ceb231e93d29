package db

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
)

// The process's transaction retry counts, by reason, and the transactions
// RunInTx gave up on: process-wide like the connection pool's statistics,
// read by TxRetryStats for the metrics.
var (
	txRetries = func() map[string]*atomic.Int64 {
		m := make(map[string]*atomic.Int64, len(RetryReasons))
		for _, r := range RetryReasons {
			m[r] = new(atomic.Int64)
		}
		return m
	}()
	txGaveUp atomic.Int64
)

// TxRetryStats are RunInTx's counts since the process started.
type TxRetryStats struct {
	// Retries counts the transactions run again, by RetryReason.
	Retries map[string]int64
	// GaveUp counts the transactions still failing with a transient
	// conflict on their last attempt (the error went to the caller).
	GaveUp int64
}

// TxRetries returns RunInTx's counts since the process started.
func TxRetries() TxRetryStats {
	s := TxRetryStats{Retries: make(map[string]int64, len(txRetries)), GaveUp: txGaveUp.Load()}
	for r, n := range txRetries {
		s.Retries[r] = n.Load()
	}
	return s
}

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
		if err == nil || !IsRetryable(err) {
			return err
		}
		if attempt == txAttempts {
			txGaveUp.Add(1)
			return err
		}
		txRetries[RetryReason(err)].Add(1)
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
