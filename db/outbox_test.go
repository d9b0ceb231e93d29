package db_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// outboxRows returns n rows with distinct task ids, queue and type.
func outboxRows(prefix string, n int) []db.OutboxRow {
	rows := make([]db.OutboxRow, n)
	for i := range rows {
		rows[i] = db.OutboxRow{
			TaskID:   fmt.Sprintf("%s_%04d", prefix, i),
			Queue:    "default",
			Type:     "test:outbox",
			Payload:  []byte(fmt.Sprintf(`{"n":%d}`, i)),
			MaxRetry: 3,
		}
	}
	return rows
}

// allOutbox reads every row of the outbox, by id.
func allOutbox(t *testing.T, idb bun.IDB) []db.OutboxRow {
	t.Helper()
	var rows []db.OutboxRow
	if err := idb.NewSelect().Model(&rows).Order("id").Scan(context.Background()); err != nil {
		t.Fatalf("select outbox: %v", err)
	}
	return rows
}

func ids(rows []db.OutboxRow) []int64 {
	out := make([]int64, len(rows))
	for i := range rows {
		out[i] = rows[i].ID
	}
	return out
}

// sameInstant reports whether a and b are the same time at the precision
// every dialect keeps (microseconds).
func sameInstant(a, b time.Time) bool {
	return a.Sub(b).Abs() < time.Microsecond
}

func TestOutboxInsertAndClaim(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox

		processAt := time.Date(2031, 5, 6, 7, 8, 9, 123456000, time.UTC)
		rows := []db.OutboxRow{
			{TaskID: "ob_a", Queue: "critical", Type: "a:one", Payload: []byte{0, 1, 2, 255}, Headers: map[string]string{"request_id": "req-1"}, MaxRetry: 5},
			{TaskID: "ob_b", Queue: "default", Type: "b:two", MaxRetry: 0, ProcessAt: processAt},
			{TaskID: "ob_c", Queue: "low", Type: "c:three", Payload: []byte(`{}`), MaxRetry: 1},
			{TaskID: "ob_d", Queue: "low", Type: "d:four", Payload: []byte(`{}`)},
		}
		if err := store.Insert(ctx, bdb, rows); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		if err := store.Insert(ctx, bdb, nil); err != nil {
			t.Fatalf("Insert(nil) = %v, want nil", err)
		}
		if n, err := store.CountUnsent(ctx, bdb); err != nil || n != 4 {
			t.Fatalf("CountUnsent = %d, %v, want 4", n, err)
		}

		var claimed []db.OutboxRow
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			var err error
			claimed, err = store.ClaimUnsent(ctx, tx, 3)
			return err
		})
		if err != nil {
			t.Fatalf("ClaimUnsent: %v", err)
		}
		if len(claimed) != 3 {
			t.Fatalf("claimed %d rows, want 3", len(claimed))
		}
		for i, want := range rows[:3] {
			got := claimed[i]
			if got.TaskID != want.TaskID || got.Queue != want.Queue || got.Type != want.Type || got.MaxRetry != want.MaxRetry {
				t.Errorf("claimed[%d] = %s/%s/%s/%d, want %s/%s/%s/%d (oldest first)", i,
					got.TaskID, got.Queue, got.Type, got.MaxRetry, want.TaskID, want.Queue, want.Type, want.MaxRetry)
			}
			if !bytes.Equal(got.Payload, want.Payload) {
				t.Errorf("claimed[%d].Payload = %v, want %v", i, got.Payload, want.Payload)
			}
			if got.CreatedAt.IsZero() || !got.SentAt.IsZero() || got.Attempts != 0 || got.LastError != "" {
				t.Errorf("claimed[%d]: created %v, sent %v, attempts %d, last error %q; want created, unsent, clean",
					i, got.CreatedAt, got.SentAt, got.Attempts, got.LastError)
			}
		}
		if got := claimed[0].Headers["request_id"]; got != "req-1" || len(claimed[0].Headers) != 1 {
			t.Errorf("headers = %v, want request_id=req-1", claimed[0].Headers)
		}
		if claimed[1].Headers == nil || len(claimed[1].Headers) != 0 {
			t.Errorf("nil headers read back as %#v, want an empty map", claimed[1].Headers)
		}
		if !sameInstant(claimed[1].ProcessAt, processAt) {
			t.Errorf("ProcessAt = %v, want %v", claimed[1].ProcessAt, processAt)
		}
		if !claimed[0].ProcessAt.IsZero() {
			t.Errorf("ProcessAt of an immediate task = %v, want zero", claimed[0].ProcessAt)
		}

		sentAt := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := store.MarkSent(ctx, bdb, ids(claimed[:2]), sentAt); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
		// Marking again keeps the first time.
		if err := store.MarkSent(ctx, bdb, ids(claimed[:1]), sentAt.Add(time.Hour)); err != nil {
			t.Fatalf("MarkSent again: %v", err)
		}
		if err := store.MarkSent(ctx, bdb, nil, sentAt); err != nil {
			t.Fatalf("MarkSent(nil) = %v, want nil", err)
		}
		if n, err := store.CountUnsent(ctx, bdb); err != nil || n != 2 {
			t.Fatalf("CountUnsent after marking 2 = %d, %v, want 2", n, err)
		}
		all := allOutbox(t, bdb)
		if !sameInstant(all[0].SentAt, sentAt) || !sameInstant(all[1].SentAt, sentAt) {
			t.Errorf("sent_at = %v, %v, want %v", all[0].SentAt, all[1].SentAt, sentAt)
		}

		err = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			var err error
			claimed, err = store.ClaimUnsent(ctx, tx, 10)
			return err
		})
		if err != nil {
			t.Fatalf("ClaimUnsent: %v", err)
		}
		if got := []string{claimed[0].TaskID, claimed[1].TaskID}; len(claimed) != 2 || got[0] != "ob_c" || got[1] != "ob_d" {
			t.Fatalf("second claim = %d rows, want ob_c, ob_d", len(claimed))
		}
	})
}

func TestOutboxInsertDuplicateTaskID(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		if err := store.Insert(ctx, bdb, outboxRows("dup", 2)); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		err := store.Insert(ctx, bdb, outboxRows("dup", 1))
		if got := domain.ErrorCode(err); got != domain.ECONFLICT {
			t.Fatalf("duplicate task id: code %q (%v), want %q", got, err, domain.ECONFLICT)
		}
		if n, err := store.CountUnsent(ctx, bdb); err != nil || n != 2 {
			t.Fatalf("CountUnsent = %d, %v, want 2", n, err)
		}
	})
}

func TestOutboxBadLimit(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		for _, limit := range []int{0, -1} {
			err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
				_, err := store.ClaimUnsent(ctx, tx, limit)
				return err
			})
			if err == nil {
				t.Errorf("ClaimUnsent(limit %d) = nil error, want one", limit)
			}
			if _, err := store.DeleteSentBefore(ctx, bdb, time.Now(), limit); err == nil {
				t.Errorf("DeleteSentBefore(limit %d) = nil error, want one", limit)
			}
		}
	})
}

func TestOutboxRecordFailure(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("레디스 연결 실패 ", 200) // multi-byte, far over the limit
	tests := []struct {
		name    string
		msgs    []string
		want    string
		wantMax int
	}{
		{name: "latest message kept", msgs: []string{"dial tcp: connection refused", "i/o timeout"}, want: "i/o timeout"},
		{name: "long message cut on a rune boundary", msgs: []string{long}, wantMax: 1000},
		{name: "invalid bytes replaced", msgs: []string{"bad \xff byte"}, want: "bad ? byte"},
	}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				var store db.Outbox
				rows := outboxRows(strings.ReplaceAll(tc.name, " ", "_"), 3)
				if err := store.Insert(ctx, bdb, rows); err != nil {
					t.Fatalf("Insert: %v", err)
				}
				byTask := map[string]int64{}
				for _, r := range allOutbox(t, bdb) {
					for _, mine := range rows {
						if r.TaskID == mine.TaskID {
							byTask[r.TaskID] = r.ID
						}
					}
				}
				failed := []int64{byTask[rows[0].TaskID], byTask[rows[1].TaskID]}
				for _, msg := range tc.msgs {
					if err := store.RecordFailure(ctx, bdb, failed, msg); err != nil {
						t.Fatalf("RecordFailure: %v", err)
					}
				}
				if err := store.RecordFailure(ctx, bdb, nil, "ignored"); err != nil {
					t.Fatalf("RecordFailure(nil) = %v, want nil", err)
				}
				for _, r := range allOutbox(t, bdb) {
					id, ok := byTask[r.TaskID]
					if !ok {
						continue
					}
					if id == byTask[rows[2].TaskID] {
						if r.Attempts != 0 || r.LastError != "" {
							t.Errorf("untouched row: attempts %d, last error %q, want 0, empty", r.Attempts, r.LastError)
						}
						continue
					}
					if r.Attempts != len(tc.msgs) {
						t.Errorf("row %s: attempts = %d, want %d", r.TaskID, r.Attempts, len(tc.msgs))
					}
					if !r.SentAt.IsZero() {
						t.Errorf("row %s: a failure marked it sent", r.TaskID)
					}
					if tc.want != "" && r.LastError != tc.want {
						t.Errorf("row %s: last error = %q, want %q", r.TaskID, r.LastError, tc.want)
					}
					if tc.wantMax > 0 && (len(r.LastError) > tc.wantMax || len(r.LastError) < tc.wantMax-3 || !utf8.ValidString(r.LastError)) {
						t.Errorf("row %s: last error is %d bytes (valid UTF-8: %v), want %d-%d bytes of valid UTF-8",
							r.TaskID, len(r.LastError), utf8.ValidString(r.LastError), tc.wantMax-3, tc.wantMax)
					}
				}
			})
		}
	})
}

func TestOutboxDeleteSentBefore(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
		cutoff := now.Add(-24 * time.Hour)

		rows := outboxRows("prune", 6)
		for i := range rows {
			rows[i].CreatedAt = now.Add(-72 * time.Hour)
		}
		if err := store.Insert(ctx, bdb, rows); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		all := allOutbox(t, bdb)
		// Rows 0-2 were sent long ago, row 3 just before the cut-off...
		if err := store.MarkSent(ctx, bdb, ids(all[:3]), now.Add(-48*time.Hour)); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
		if err := store.MarkSent(ctx, bdb, ids(all[3:4]), cutoff.Add(-time.Second)); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
		// ...row 4 after it, and row 5 (as old as the rest) was never sent.
		if err := store.MarkSent(ctx, bdb, ids(all[4:5]), cutoff.Add(time.Second)); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}

		for i, want := range []int{3, 1, 0} {
			n, err := store.DeleteSentBefore(ctx, bdb, cutoff, 3)
			if err != nil {
				t.Fatalf("DeleteSentBefore #%d: %v", i+1, err)
			}
			if n != want {
				t.Fatalf("DeleteSentBefore #%d deleted %d, want %d", i+1, n, want)
			}
		}
		left := allOutbox(t, bdb)
		if len(left) != 2 || left[0].TaskID != rows[4].TaskID || left[1].TaskID != rows[5].TaskID {
			got := make([]string, len(left))
			for i := range left {
				got[i] = left[i].TaskID
			}
			t.Fatalf("left %v, want [%s %s] (the recently sent and the unsent row)", got, rows[4].TaskID, rows[5].TaskID)
		}
	})
}

// TestOutboxClaimsDisjoint holds one claim open while a second transaction
// claims and marks: on PostgreSQL and MySQL the second must skip the locked
// rows and finish at once; on SQLite it waits for the first to commit and
// then finds its rows sent. Either way no row is claimed twice.
func TestOutboxClaimsDisjoint(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		if err := store.Insert(ctx, bdb, outboxRows("disjoint", 10)); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		sqlite := bdb.Dialect().Name() == dialect.SQLite

		tx1, err := bdb.BeginTx(ctx, store.ClaimTxOptions(bdb))
		if err != nil {
			t.Fatalf("begin tx1: %v", err)
		}
		t.Cleanup(func() { _ = tx1.Rollback() })
		first, err := store.ClaimUnsent(ctx, tx1, 5)
		if err != nil {
			t.Fatalf("tx1 claim: %v", err)
		}
		if len(first) != 5 {
			t.Fatalf("tx1 claimed %d rows, want 5", len(first))
		}

		type result struct {
			rows []db.OutboxRow
			err  error
		}
		done := make(chan result, 1)
		go func() {
			var rows []db.OutboxRow
			err := store.RunClaimTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
				var err error
				if rows, err = store.ClaimUnsent(ctx, tx, 10); err != nil {
					return err
				}
				return store.MarkSent(ctx, tx, ids(rows), time.Now())
			})
			done <- result{rows, err}
		}()

		var second result
		if sqlite {
			if err := store.MarkSent(ctx, tx1, ids(first), time.Now()); err != nil {
				t.Fatalf("tx1 mark: %v", err)
			}
			if err := tx1.Commit(); err != nil {
				t.Fatalf("tx1 commit: %v", err)
			}
			second = <-done
		} else {
			select {
			case second = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("second claim waited for the first transaction's row locks instead of skipping them")
			}
			if err := store.MarkSent(ctx, tx1, ids(first), time.Now()); err != nil {
				t.Fatalf("tx1 mark: %v", err)
			}
			if err := tx1.Commit(); err != nil {
				t.Fatalf("tx1 commit: %v", err)
			}
		}
		if second.err != nil {
			t.Fatalf("second claim: %v", second.err)
		}
		seen := map[int64]bool{}
		for _, r := range append(first, second.rows...) {
			if seen[r.ID] {
				t.Errorf("row %d claimed twice", r.ID)
			}
			seen[r.ID] = true
		}
		if len(seen) != 10 {
			t.Errorf("claims covered %d rows, want all 10", len(seen))
		}
		if n, err := store.CountUnsent(ctx, bdb); err != nil || n != 0 {
			t.Errorf("CountUnsent = %d, %v, want 0", n, err)
		}
	})
}

// TestOutboxConcurrentClaimers runs several claim-and-mark loops at once:
// every row is claimed by exactly one of them.
func TestOutboxConcurrentClaimers(t *testing.T) {
	t.Parallel()
	const rowsN, workers, batch = 200, 4, 7
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		if err := store.Insert(ctx, bdb, outboxRows("race", rowsN)); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		var (
			mu     sync.Mutex
			counts = map[int64]int{}
			wg     sync.WaitGroup
			errs   = make(chan error, workers)
		)
		for range workers {
			wg.Go(func() {
				for {
					var got []db.OutboxRow
					err := store.RunClaimTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
						var err error
						if got, err = store.ClaimUnsent(ctx, tx, batch); err != nil || len(got) == 0 {
							return err
						}
						return store.MarkSent(ctx, tx, ids(got), time.Now())
					})
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, r := range got {
						counts[r.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("claimer: %v", err)
		}
		if len(counts) != rowsN {
			t.Errorf("claimed %d distinct rows, want %d", len(counts), rowsN)
		}
		for id, n := range counts {
			if n != 1 {
				t.Errorf("row %d claimed %d times, want 1", id, n)
			}
		}
	})
}
