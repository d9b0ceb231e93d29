package db_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
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
	"github.com/moim/moim/internal/clocktest"
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

		now := clocktest.Now()
		claimed, err := store.Claim(ctx, bdb, 3, now, time.Minute)
		if err != nil {
			t.Fatalf("Claim: %v", err)
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
			if !sameInstant(got.ClaimedUntil, now.Add(time.Minute)) {
				t.Errorf("claimed[%d].ClaimedUntil = %v, want now + lease (%v)", i, got.ClaimedUntil, now.Add(time.Minute))
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
		// Marking ends the claim; the unmarked claimed row keeps its lease.
		for i, r := range all {
			if leased := !r.ClaimedUntil.IsZero(); leased != (i == 2) {
				t.Errorf("row %s: claimed until %v, want a lease only on ob_c", r.TaskID, r.ClaimedUntil)
			}
		}

		// ob_c is still leased, so only ob_d is claimable...
		claimed, err = store.Claim(ctx, bdb, 10, now, time.Minute)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if len(claimed) != 1 || claimed[0].TaskID != "ob_d" {
			t.Fatalf("second claim = %d rows, want just ob_d", len(claimed))
		}
		// ...and once both leases have passed, both are.
		claimed, err = store.Claim(ctx, bdb, 10, now.Add(time.Minute), time.Minute)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if len(claimed) != 2 || claimed[0].TaskID != "ob_c" || claimed[1].TaskID != "ob_d" {
			t.Fatalf("claim after the leases = %d rows, want ob_c, ob_d", len(claimed))
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

func TestOutboxBadArguments(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		for _, limit := range []int{0, -1} {
			if _, err := store.Claim(ctx, bdb, limit, clocktest.Now(), time.Minute); err == nil {
				t.Errorf("Claim(limit %d) = nil error, want one", limit)
			}
			if _, err := store.Claim(ctx, bdb, 10, clocktest.Now(), time.Duration(limit)*time.Second); err == nil {
				t.Errorf("Claim(lease %ds) = nil error, want one", limit)
			}
			if _, err := store.DeleteSentBefore(ctx, bdb, clocktest.Now(), limit); err == nil {
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

// TestOutboxRecordFailureReleasesClaim: a failure ends the row's lease, so
// the next claim takes it again at once; the other claimed row stays leased.
func TestOutboxRecordFailureReleasesClaim(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		if err := store.Insert(ctx, bdb, outboxRows("release", 2)); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		now := clocktest.Now()
		claimed, err := store.Claim(ctx, bdb, 10, now, time.Hour)
		if err != nil || len(claimed) != 2 {
			t.Fatalf("Claim = %d rows, %v, want 2", len(claimed), err)
		}
		if err := store.RecordFailure(ctx, bdb, ids(claimed[:1]), "i/o timeout"); err != nil {
			t.Fatalf("RecordFailure: %v", err)
		}
		again, err := store.Claim(ctx, bdb, 10, now, time.Hour)
		if err != nil {
			t.Fatalf("Claim again: %v", err)
		}
		if len(again) != 1 || again[0].ID != claimed[0].ID || again[0].Attempts != 1 || again[0].LastError != "i/o timeout" {
			t.Fatalf("claim after the failure = %+v, want just row %d with its failure recorded", again, claimed[0].ID)
		}
	})
}

// TestOutboxClaimsDisjoint: a claimed row is not claimed again until its
// lease has passed, and claims never overlap.
func TestOutboxClaimsDisjoint(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		if err := store.Insert(ctx, bdb, outboxRows("disjoint", 10)); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		now := clocktest.Now()
		first, err := store.Claim(ctx, bdb, 4, now, time.Minute)
		if err != nil || len(first) != 4 {
			t.Fatalf("first claim = %d rows, %v, want 4", len(first), err)
		}
		second, err := store.Claim(ctx, bdb, 4, now.Add(30*time.Second), 10*time.Minute)
		if err != nil || len(second) != 4 {
			t.Fatalf("second claim = %d rows, %v, want 4", len(second), err)
		}
		third, err := store.Claim(ctx, bdb, 10, now.Add(time.Minute-time.Millisecond), time.Minute)
		if err != nil || len(third) != 2 {
			t.Fatalf("third claim (before the first lease ends) = %d rows, %v, want the 2 never claimed", len(third), err)
		}
		seen := map[int64]bool{}
		for _, r := range slices.Concat(first, second, third) {
			if seen[r.ID] {
				t.Errorf("row %d claimed twice while leased", r.ID)
			}
			seen[r.ID] = true
		}
		if len(seen) != 10 {
			t.Errorf("claims covered %d rows, want all 10", len(seen))
		}

		// At the end of the first lease its rows come back, oldest first; the
		// second and third leases still hold.
		expired, err := store.Claim(ctx, bdb, 10, now.Add(time.Minute), time.Minute)
		if err != nil {
			t.Fatalf("claim at the end of the first lease: %v", err)
		}
		if !slices.Equal(ids(expired), ids(first)) {
			t.Fatalf("claim at the end of the first lease = rows %v, want the first claim's %v", ids(expired), ids(first))
		}
	})
}

// TestOutboxClaimSkipsLockedRows holds row locks on some unsent rows, as a
// claimer in the middle of its transaction does, while Claim runs. On
// PostgreSQL and MySQL Claim must skip them and return the rest at once; on
// SQLite the held transaction is the write lock, so Claim waits for it and
// then finds the rows it leased.
func TestOutboxClaimSkipsLockedRows(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		if err := store.Insert(ctx, bdb, outboxRows("locked", 10)); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		all := allOutbox(t, bdb)
		held := ids(all[:5])
		sqlite := bdb.Dialect().Name() == dialect.SQLite

		// READ COMMITTED as a claimer runs: under MySQL's REPEATABLE READ a
		// scan of this small table would lock every row it passes.
		var opts *sql.TxOptions
		if !sqlite {
			opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
		}
		tx1, err := bdb.BeginTx(ctx, opts)
		if err != nil {
			t.Fatalf("begin tx1: %v", err)
		}
		t.Cleanup(func() { _ = tx1.Rollback() })
		if sqlite {
			_, err = tx1.NewUpdate().Model((*db.OutboxRow)(nil)).
				Set("claimed_until = ?", clocktest.Now().Add(time.Hour)).
				Where("id IN (?)", bun.List(held)).
				Exec(ctx)
		} else {
			var locked []db.OutboxRow
			err = tx1.NewSelect().Model(&locked).Where("id IN (?)", bun.List(held)).For("UPDATE").Scan(ctx)
		}
		if err != nil {
			t.Fatalf("tx1 lock rows: %v", err)
		}

		type result struct {
			rows []db.OutboxRow
			err  error
		}
		done := make(chan result, 1)
		go func() {
			rows, err := store.Claim(ctx, bdb, 10, clocktest.Now(), time.Minute)
			done <- result{rows, err}
		}()
		var got result
		if sqlite {
			if err := tx1.Commit(); err != nil {
				t.Fatalf("tx1 commit: %v", err)
			}
			got = <-done
		} else {
			select {
			case got = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Claim waited for another transaction's row locks instead of skipping them")
			}
		}
		if got.err != nil {
			t.Fatalf("Claim: %v", got.err)
		}
		if !slices.Equal(ids(got.rows), ids(all[5:])) {
			t.Fatalf("Claim = rows %v, want the unlocked %v", ids(got.rows), ids(all[5:]))
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
					got, err := store.Claim(ctx, bdb, batch, clocktest.Now(), time.Hour)
					if err == nil && len(got) > 0 {
						err = store.MarkSent(ctx, bdb, ids(got), clocktest.Now())
					}
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
		if n, err := store.CountUnsent(ctx, bdb); err != nil || n != 0 {
			t.Errorf("CountUnsent = %d, %v, want 0", n, err)
		}
	})
}

// TestOutboxClaimAfter: a claim after an id takes only the unsent rows
// above it, and 0 means all of them.
func TestOutboxClaimAfter(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		var store db.Outbox
		if err := store.Insert(ctx, bdb, outboxRows("after", 4)); err != nil {
			t.Fatalf("Insert: %v", err)
		}
		all := ids(allOutbox(t, bdb))
		now := time.Now()
		got, err := store.ClaimAfter(ctx, bdb, all[1], 10, now, time.Minute)
		if err != nil {
			t.Fatalf("ClaimAfter: %v", err)
		}
		if !slices.Equal(ids(got), all[2:]) {
			t.Errorf("ClaimAfter(%d) ids = %v, want %v", all[1], ids(got), all[2:])
		}
		got, err = store.ClaimAfter(ctx, bdb, 0, 10, now, time.Minute)
		if err != nil {
			t.Fatalf("ClaimAfter(0): %v", err)
		}
		if !slices.Equal(ids(got), all[:2]) {
			t.Errorf("ClaimAfter(0) ids = %v, want %v", ids(got), all[:2])
		}
	})
}
