package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

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

// BenchmarkClaimDeadRows measures one relay round — claim 100 rows, mark
// them sent — on PostgreSQL with 150k dead index entries at the start of
// the unsent range (rows sent since the last VACUUM, which autovacuum is
// kept from removing here), beside the same round on a freshly vacuumed
// table. "from-start" claims from the beginning of the table, as the
// relay's full claim once per poll interval does; "after-floor" claims
// after the highest id claimed so far, as every other claim does. Each
// round takes new rows, so every round leaves 100 more dead entries.
// buffers/claim counts the buffer accesses of the first claim's scan:
// unlike the time, which follows the machine's load, it shows the dead
// entries walked.
func BenchmarkClaimDeadRows(b *testing.B) {
	if os.Getenv("MOIM_TEST_POSTGRES_URL") == "" {
		b.Skip("MOIM_TEST_POSTGRES_URL not set")
	}
	const dead, batch = 150_000, 100
	ctx := context.Background()
	open := func() *bun.DB {
		bdb := dbtest.Open(b, "postgres")
		// One connection without a synchronous commit: the figure is the
		// statements' own work, not the WAL flush of this machine's disk.
		bdb.SetMaxOpenConns(1)
		if _, err := bdb.ExecContext(ctx, "SET synchronous_commit = off"); err != nil {
			b.Fatalf("synchronous_commit: %v", err)
		}
		if _, err := bdb.ExecContext(ctx, "ALTER TABLE outbox SET (autovacuum_enabled = false)"); err != nil {
			b.Fatalf("disable autovacuum: %v", err)
		}
		return bdb
	}
	// fill inserts n unsent rows with one statement and returns the highest
	// id before them.
	fill := func(bdb *bun.DB, n int) int64 {
		var top int64
		if err := bdb.NewSelect().Model((*db.OutboxRow)(nil)).ColumnExpr("coalesce(max(id), 0)").Scan(ctx, &top); err != nil {
			b.Fatalf("max id: %v", err)
		}
		_, err := bdb.ExecContext(ctx, `INSERT INTO outbox (task_id, queue, type, payload, max_retry, created_at)
			SELECT ? || g, 'default', 'bench:claim', '{"n":1}', 3, now() FROM generate_series(1, ?) AS g`,
			fmt.Sprintf("ob_%d_", top), n)
		if err != nil {
			b.Fatalf("insert rows: %v", err)
		}
		return top
	}
	clean, bloated := open(), open()
	fill(bloated, dead)
	// Inserted unsent and then marked, as the relay does: each leaves a dead
	// entry in the unsent range.
	if _, err := bloated.ExecContext(ctx, "UPDATE outbox SET sent_at = now()"); err != nil {
		b.Fatalf("mark rows sent: %v", err)
	}
	// The first scan over fresh dead entries marks them dead in the index
	// (hundreds of ms, once); the figures are the rounds after it.
	if _, err := (db.Outbox{}).Claim(ctx, bloated, batch, time.Now(), time.Second); err != nil {
		b.Fatalf("first claim: %v", err)
	}
	cases := []struct {
		name   string
		bdb    *bun.DB
		vacuum bool
		follow bool
	}{
		{"dead=0", clean, true, false},
		{"dead=150k/from-start", bloated, false, false},
		{"dead=150k/after-floor", bloated, false, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			top := fill(c.bdb, b.N*batch)
			if c.vacuum {
				if _, err := c.bdb.ExecContext(ctx, "VACUUM outbox"); err != nil {
					b.Fatalf("vacuum: %v", err)
				}
			}
			var after int64
			if c.follow {
				after = top
			}
			buffers := claimBuffers(b, c.bdb, after, batch)
			now := time.Now()
			b.ResetTimer()
			for range b.N {
				rows, err := (db.Outbox{}).ClaimAfter(ctx, c.bdb, after, batch, now, time.Minute)
				if err != nil || len(rows) != batch {
					b.Fatalf("claim = %d rows, %v; want %d", len(rows), err, batch)
				}
				ids := make([]int64, len(rows))
				for i, r := range rows {
					ids[i] = r.ID
				}
				if err := (db.Outbox{}).MarkSent(ctx, c.bdb, ids, now); err != nil {
					b.Fatalf("mark sent: %v", err)
				}
				if c.follow {
					after = ids[len(ids)-1]
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/round")
			// Time depends on the machine's load; the buffers the first
			// claim's scan touches do not.
			b.ReportMetric(float64(buffers), "buffers/claim")
		})
	}
}

// claimBuffers returns the buffer accesses of the relay's claim scan (its
// SELECT ... FOR UPDATE SKIP LOCKED), by EXPLAIN (ANALYZE, BUFFERS) in a
// transaction that is rolled back.
func claimBuffers(b *testing.B, bdb *bun.DB, after int64, limit int) int {
	b.Helper()
	ctx := context.Background()
	tx, err := bdb.BeginTx(ctx, nil)
	if err != nil {
		b.Fatalf("begin: %v", err)
	}
	defer func() { _ = tx.Rollback() }()
	var plan string
	err = tx.QueryRowContext(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
		SELECT id FROM outbox WHERE sent_at IS NULL AND id > ? AND (claimed_until IS NULL OR claimed_until <= now())
		ORDER BY sent_at, id LIMIT ? FOR UPDATE SKIP LOCKED`, after, limit).Scan(&plan)
	if err != nil {
		b.Fatalf("explain claim: %v", err)
	}
	var out []struct {
		Plan struct {
			Hit  int `json:"Shared Hit Blocks"`
			Read int `json:"Shared Read Blocks"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(plan), &out); err != nil || len(out) != 1 {
		b.Fatalf("explain output %s: %v", plan, err)
	}
	return out[0].Plan.Hit + out[0].Plan.Read
}
