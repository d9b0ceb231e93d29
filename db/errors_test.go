package db_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

type fkParent struct {
	bun.BaseModel `bun:"table:test_fk_parents"`
	ID            int64  `bun:"id,pk,autoincrement"`
	Name          string `bun:"name,notnull"`
}

type fkChild struct {
	bun.BaseModel `bun:"table:test_fk_children"`
	ID            int64 `bun:"id,pk,autoincrement"`
	ParentID      int64 `bun:"parent_id,notnull"`
}

// createFKTables creates a parent table and a child table referencing it;
// moim's own schema has no foreign key yet.
func createFKTables(t *testing.T, bdb *bun.DB) {
	t.Helper()
	ctx := context.Background()
	if _, err := bdb.NewCreateTable().Model((*fkParent)(nil)).Exec(ctx); err != nil {
		t.Fatalf("create parent table: %v", err)
	}
	_, err := bdb.NewCreateTable().Model((*fkChild)(nil)).
		ForeignKey("(?) REFERENCES ? (?)", bun.Ident("parent_id"), bun.Ident("test_fk_parents"), bun.Ident("id")).
		Exec(ctx)
	if err != nil {
		t.Fatalf("create child table: %v", err)
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		createFKTables(t, bdb)
		parent := &fkParent{Name: "p"}
		if _, err := bdb.NewInsert().Model(parent).Exec(ctx); err != nil {
			t.Fatalf("insert parent: %v", err)
		}
		if _, err := bdb.NewInsert().Model(&fkChild{ParentID: parent.ID}).Exec(ctx); err != nil {
			t.Fatalf("insert child: %v", err)
		}
		// A raw insert, so the driver error reaches Translate untouched.
		dupPing := func() error {
			_, err := bdb.NewRaw("INSERT INTO pings (public_id, created_at) VALUES (?, ?)", "dup", time.Now().UTC()).Exec(ctx)
			return err
		}
		if err := dupPing(); err != nil {
			t.Fatalf("insert first ping: %v", err)
		}

		tests := []struct {
			name     string
			run      func() error
			wantCode string
		}{
			{"unique violation", dupPing, domain.ECONFLICT},
			{"insert referencing a missing row", func() error {
				_, err := bdb.NewInsert().Model(&fkChild{ParentID: parent.ID + 1000}).Exec(ctx)
				return err
			}, domain.EINVALID},
			{"delete a referenced row", func() error {
				_, err := bdb.NewDelete().Model(parent).WherePK().Exec(ctx)
				return err
			}, domain.EINVALID},
			{"no rows", func() error {
				return bdb.NewSelect().Model(&fkParent{}).Where("id = ?", -1).Scan(ctx)
			}, domain.ENOTFOUND},
		}
		for _, tt := range tests {
			raw := tt.run()
			if raw == nil {
				t.Errorf("%s: no error", tt.name)
				continue
			}
			err := db.Translate(raw)
			if got := domain.ErrorCode(err); got != tt.wantCode {
				t.Errorf("%s: code = %q, want %q (error %v)", tt.name, got, tt.wantCode, raw)
			}
			// errors.Is cannot compare pgdriver.Error (it holds a map), so
			// compare the cause's text.
			var de *domain.Error
			if !errors.As(err, &de) || de.Err == nil || de.Err.Error() != raw.Error() {
				t.Errorf("%s: translated error does not keep the driver error as its cause", tt.name)
			}
			if db.IsRetryable(err) {
				t.Errorf("%s: IsRetryable = true, want false", tt.name)
			}
		}
	})
}

func TestTranslatePassesOtherErrors(t *testing.T) {
	t.Parallel()
	if err := db.Translate(nil); err != nil {
		t.Errorf("Translate(nil) = %v, want nil", err)
	}
	plain := errors.New("something else")
	if err := db.Translate(plain); err != plain {
		t.Errorf("Translate(plain) = %v, want it unchanged", err)
	}
	if err := db.Translate(context.Canceled); err != context.Canceled {
		t.Errorf("Translate(context.Canceled) = %v, want it unchanged", err)
	}
}

// lockedSQLite returns a database file whose write lock is held by another
// connection until the test ends, and a bun.DB on it that does not wait for
// locks (busy_timeout 0), so its writes fail with SQLITE_BUSY at once.
func lockedSQLite(t *testing.T) *bun.DB {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "busy.db")
	holder, err := db.Open(ctx, "sqlite:"+path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close() })
	if _, err := db.MigrateUp(ctx, holder); err != nil {
		t.Fatal(err)
	}
	tx, err := holder.BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })

	sqldb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	impatient := bun.NewDB(sqldb, sqlitedialect.New())
	t.Cleanup(func() { impatient.Close() })
	return impatient
}

func TestSQLiteBusyIsRetryable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	impatient := lockedSQLite(t)

	_, raw := impatient.NewRaw("INSERT INTO pings (public_id, created_at) VALUES (?, ?)", "busy", time.Now().UTC()).Exec(ctx)
	if raw == nil {
		t.Fatal("insert while another connection holds the write lock succeeded")
	}
	if !db.IsRetryable(raw) {
		t.Errorf("IsRetryable(%v) = false, want true", raw)
	}
	if got := db.RetryReason(raw); got != db.RetryBusy {
		t.Errorf("RetryReason = %q, want %q", got, db.RetryBusy)
	}
	err := db.Translate(raw)
	if got := domain.ErrorCode(err); got != domain.EUNAVAILABLE {
		t.Errorf("code = %q, want %q", got, domain.EUNAVAILABLE)
	}
	if !db.IsRetryable(err) {
		t.Errorf("IsRetryable(translated) = false, want true")
	}
}

func TestRunInTxGivesUpOnPersistentBusy(t *testing.T) {
	t.Parallel()
	impatient := lockedSQLite(t)
	var calls atomic.Int32
	before := db.TxRetries()
	err := db.RunInTx(context.Background(), impatient, func(ctx context.Context, tx bun.Tx) error {
		calls.Add(1)
		return nil
	})
	if !db.IsRetryable(err) {
		t.Fatalf("RunInTx error = %v, want a retryable one", err)
	}
	// Other tests of the package may add to the counts, never take away.
	after := db.TxRetries()
	if d := after.Retries[db.RetryBusy] - before.Retries[db.RetryBusy]; d < 4 {
		t.Errorf("busy retries counted %d, want at least 4 (five attempts)", d)
	}
	if after.GaveUp == before.GaveUp {
		t.Error("the transaction given up on was not counted")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("fn ran %d times, want 0 (BEGIN never got the lock)", n)
	}
}

func TestRunInTx(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		pings := db.Pings{}
		committed := &domain.Ping{}
		if err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			return pings.Create(ctx, tx, committed)
		}); err != nil {
			t.Fatalf("RunInTx commit: %v", err)
		}
		if _, err := pings.FindByID(ctx, bdb, committed.ID); err != nil {
			t.Errorf("committed ping: %v", err)
		}

		failure := errors.New("handler failed")
		rolledBack := &domain.Ping{}
		var calls int
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			calls++
			if err := pings.Create(ctx, tx, rolledBack); err != nil {
				return err
			}
			return failure
		})
		if !errors.Is(err, failure) {
			t.Errorf("RunInTx error = %v, want %v", err, failure)
		}
		if calls != 1 {
			t.Errorf("fn ran %d times, want 1 (its error is not retryable)", calls)
		}
		if _, err := pings.FindByID(ctx, bdb, rolledBack.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("rolled back ping: error %v, want not found", err)
		}
	})
}

// TestRunInTxRetriesDeadlock makes two transactions lock two rows in
// opposite orders, so the server must abort one as a deadlock victim;
// RunInTx runs the victim again and both succeed. SQLite has one writer at
// a time (BEGIN IMMEDIATE) and cannot deadlock.
func TestRunInTxRetriesDeadlock(t *testing.T) {
	t.Parallel()
	for _, dialect := range dbtest.Backends() {
		if dialect == dbtest.SQLite {
			continue
		}
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			bdb := dbtest.Open(t, dialect)
			ids := [2]string{db.NewPublicID(), db.NewPublicID()}
			for _, id := range ids {
				if err := (db.Pings{}).Create(ctx, bdb, &domain.Ping{ID: id}); err != nil {
					t.Fatal(err)
				}
			}
			touch := func(ctx context.Context, tx bun.Tx, id string) error {
				_, err := tx.NewUpdate().Table("pings").
					Set("request_id = ?", "locked").
					Where("public_id = ?", id).
					Exec(ctx)
				return err
			}
			var ready [2]chan struct{}
			for i := range ready {
				ready[i] = make(chan struct{})
			}
			var attempts [2]atomic.Int32
			var errs [2]error
			before := db.TxRetries().Retries[db.RetryDeadlock]
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() {
					errs[i] = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
						first := attempts[i].Add(1) == 1
						if err := touch(ctx, tx, ids[i]); err != nil {
							return err
						}
						if first {
							// Both hold their first row before either asks
							// for its second: a certain deadlock.
							close(ready[i])
							select {
							case <-ready[1-i]:
							case <-time.After(30 * time.Second):
								return errors.New("the other transaction never locked its first row")
							}
						}
						return touch(ctx, tx, ids[1-i])
					})
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("transaction %d: %v", i, err)
				}
			}
			if total := attempts[0].Load() + attempts[1].Load(); total < 3 {
				t.Errorf("%d attempts in all, want at least 3 (a victim retried)", total)
			}
			if db.TxRetries().Retries[db.RetryDeadlock] == before {
				t.Error("the deadlock victim's retry was not counted")
			}
		})
	}
}
