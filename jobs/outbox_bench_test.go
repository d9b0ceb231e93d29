package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

// BenchmarkRelayThroughput measures how fast relays move pre-inserted
// outbox rows into Redis (batches of 100): claim (one short transaction),
// enqueue with no transaction open, mark sent (one statement). It
// runs on PostgreSQL when MOIM_TEST_POSTGRES_URL is set and on SQLite
// otherwise, against MOIM_TEST_REDIS_URL or an in-memory Redis. One op is one
// round of relayRoundRows rows; rows/s is the figure to compare.
func BenchmarkRelayThroughput(b *testing.B) {
	const relayRoundRows = 2000
	dialect := "sqlite"
	if os.Getenv("MOIM_TEST_POSTGRES_URL") != "" {
		dialect = "postgres"
	}
	bdb := dbtest.Open(b, dialect)
	opt := jobstest.RedisOpt(b)
	insp := asynq.NewInspector(opt)
	b.Cleanup(func() { _ = insp.Close() })
	ctx := context.Background()

	for _, relays := range []int{1, 4} {
		b.Run(fmt.Sprintf("%s/relays=%d", dialect, relays), func(b *testing.B) {
			queue := "bench" + db.NewPublicID()[:8]
			tasks := make([]jobs.Task, relayRoundRows)
			for i := range tasks {
				tasks[i] = jobs.Task{Type: "bench:relay", Payload: fmt.Appendf(nil, `{"n":%d}`, i), Queue: queue, MaxRetry: 3}
			}
			rs := make([]*jobs.Relay, relays)
			for i := range rs {
				r, err := jobs.NewRelay(bdb, jobs.RelayParams{Redis: opt, BatchSize: 100})
				if err != nil {
					b.Fatalf("NewRelay: %v", err)
				}
				b.Cleanup(func() { _ = r.Close() })
				rs[i] = r
			}

			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				resetOutbox(b, bdb, insp, queue)
				err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
					return jobs.Enqueue(ctx, tx, tasks...)
				})
				if err != nil {
					b.Fatalf("insert rows: %v", err)
				}
				b.StartTimer()

				drainAll(b, bdb, rs)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*relayRoundRows)/b.Elapsed().Seconds(), "rows/s")
			resetOutbox(b, bdb, insp, queue)
		})
	}
}

// drainAll runs every relay's Drain at once until no row is left unsent.
// A relay whose claim comes back short (the others hold the rest) stops
// early, so the loop checks the table before declaring the round done.
func drainAll(b *testing.B, bdb *bun.DB, rs []*jobs.Relay) {
	ctx := context.Background()
	for {
		var wg sync.WaitGroup
		errs := make(chan error, len(rs))
		for _, r := range rs {
			wg.Go(func() {
				if _, err := r.Drain(ctx); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatalf("drain: %v", err)
		}
		n, err := db.Outbox{}.CountUnsent(ctx, bdb)
		if err != nil {
			b.Fatalf("count unsent: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

// resetOutbox empties the outbox table and queue between rounds so every
// round starts from the same state.
func resetOutbox(b *testing.B, bdb *bun.DB, insp *asynq.Inspector, queue string) {
	ctx := context.Background()
	if _, err := bdb.NewDelete().Model((*db.OutboxRow)(nil)).Where("1 = 1").Exec(ctx); err != nil {
		b.Fatalf("empty outbox: %v", err)
	}
	// Without it every round leaves thousands of dead index entries that the
	// next round's claims wade through: the benchmark would measure its own
	// bloat, not the relay (in service, autovacuum and steady pruning keep up).
	if bdb.Dialect().Name() == dialect.PG {
		if _, err := bdb.ExecContext(ctx, "VACUUM outbox"); err != nil {
			b.Fatalf("vacuum outbox: %v", err)
		}
	}
	if err := insp.DeleteQueue(queue, true); err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		b.Fatalf("delete queue %s: %v", queue, err)
	}
}
