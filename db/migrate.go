package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/moim/moim/db/migrations"
)

// migrationLockWait bounds how long a migration command waits for another
// one to finish; a lock held longer than this is more likely left behind by a
// process that died.
const migrationLockWait = 2 * time.Minute

// MigrationState is one migration as MigrationStatus reports it.
type MigrationState struct {
	// Name is the migration's full name, e.g. "20261125000001_foundation".
	Name string
	// Applied reports whether the migration is in the database.
	Applied bool
	// GroupID numbers the MigrateUp call that applied it (0 if pending);
	// MigrateDown rolls back the highest group.
	GroupID int64
	// AppliedAt is when it was applied (zero if pending).
	AppliedAt time.Time
}

// Migrations returns moim's schema migrations, embedded in the binary.
func Migrations() *migrate.Migrations {
	return migrations.All()
}

func newMigrator(bdb *bun.DB) *migrate.Migrator {
	// Mark a migration applied only once it has run, so a failed one is
	// retried by the next MigrateUp rather than silently skipped.
	return migrate.NewMigrator(bdb, Migrations(), migrate.WithMarkAppliedOnSuccess(true))
}

// MigrateUp applies every pending migration, as one group, and returns their
// names in the order applied (none when the schema is current). Concurrent
// callers, in this process or others, take turns: the second waits for the
// first and then finds nothing left to do.
func MigrateUp(ctx context.Context, bdb *bun.DB) (applied []string, err error) {
	m := newMigrator(bdb)
	err = withMigrationLock(ctx, m, func() error {
		group, err := m.Migrate(ctx)
		done := group.Migrations
		if err != nil && len(done) > 0 {
			// The group ends with the migration that failed.
			done = done[:len(done)-1]
		}
		for _, mig := range done {
			applied = append(applied, migrationName(mig))
		}
		return err
	})
	if err != nil {
		return applied, fmt.Errorf("migrate up: %w", err)
	}
	return applied, nil
}

// MigrateDown rolls back the last group of migrations (what the last
// MigrateUp applied) and returns their names in the order rolled back.
func MigrateDown(ctx context.Context, bdb *bun.DB) (rolledBack []string, err error) {
	m := newMigrator(bdb)
	err = withMigrationLock(ctx, m, func() error {
		group, err := m.Rollback(ctx)
		if err != nil {
			return err
		}
		for i := len(group.Migrations) - 1; i >= 0; i-- {
			rolledBack = append(rolledBack, migrationName(group.Migrations[i]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migrate down: %w", err)
	}
	return rolledBack, nil
}

// MigrationStatus lists every known migration, oldest first, with whether
// and when it was applied.
func MigrationStatus(ctx context.Context, bdb *bun.DB) ([]MigrationState, error) {
	m := newMigrator(bdb)
	var states []MigrationState
	err := withMigrationLock(ctx, m, func() error {
		ms, err := m.MigrationsWithStatus(ctx)
		if err != nil {
			return err
		}
		for _, mig := range ms {
			s := MigrationState{Name: migrationName(mig), Applied: mig.IsApplied()}
			if s.Applied {
				s.GroupID = mig.GroupID
				s.AppliedAt = mig.MigratedAt.UTC()
			}
			states = append(states, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	return states, nil
}

func migrationName(m migrate.Migration) string {
	if m.Comment == "" {
		return m.Name
	}
	return m.Name + "_" + m.Comment
}

// withMigrationLock creates bun's migration tables if needed and runs fn
// holding bun's migration lock (a row in bun_migration_locks).
func withMigrationLock(ctx context.Context, m *migrate.Migrator, fn func() error) (err error) {
	if err := initMigrator(ctx, m); err != nil {
		return fmt.Errorf("create migration tables: %w", err)
	}
	if err := lockMigrator(ctx, m); err != nil {
		return err
	}
	defer func() {
		// Unlock even when ctx was cancelled: a lock left behind blocks every
		// later migration until someone deletes it by hand.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if uerr := m.Unlock(uctx); uerr != nil {
			err = errors.Join(err, fmt.Errorf("release migration lock: %w", uerr))
		}
	}()
	return fn()
}

// initMigrator runs m.Init, retrying briefly: two processes creating the
// same table at once can fail on PostgreSQL even with IF NOT EXISTS (both
// pass the check, one loses on the catalog's unique index).
func initMigrator(ctx context.Context, m *migrate.Migrator) error {
	var err error
	for attempt := range 5 {
		if err = m.Init(ctx); err == nil {
			return nil
		}
		if serr := sleepCtx(ctx, time.Duration(attempt+1)*50*time.Millisecond); serr != nil {
			return errors.Join(err, serr)
		}
	}
	return err
}

// lockMigrator takes bun's migration lock, waiting while another process
// holds it. bun's Lock fails at once when the lock row exists (a unique
// violation); any other failure is returned.
func lockMigrator(ctx context.Context, m *migrate.Migrator) error {
	deadline := time.Now().Add(migrationLockWait)
	wait := 10 * time.Millisecond
	for {
		err := m.Lock(ctx)
		if err == nil {
			return nil
		}
		// A held lock is a unique violation; MySQL may instead report a
		// deadlock when two inserts race for the same key. Both mean: wait.
		if k := classify(err); k != kindUnique && k != kindRetryable {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("take migration lock: still held after %s; if no migration is running, delete the row from bun_migration_locks: %w", migrationLockWait, err)
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
