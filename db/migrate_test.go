package db_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// migrationNames returns the full names of all migrations, oldest first.
func migrationNames() []string {
	var names []string
	for _, m := range db.Migrations().Sorted() {
		names = append(names, m.Name+"_"+m.Comment)
	}
	return names
}

func lockRows(t *testing.T, bdb *bun.DB) int64 {
	t.Helper()
	n, err := bdb.NewSelect().Table("bun_migration_locks").Count(context.Background())
	if err != nil {
		t.Fatalf("count migration locks: %v", err)
	}
	return n
}

func TestMigrateRoundTrip(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		all := migrationNames()
		if !slices.Contains(all, "20261125000001_foundation") {
			t.Fatalf("migrations = %v, want 20261125000001_foundation among them", all)
		}

		// dbtest migrated the database already.
		states, err := db.MigrationStatus(ctx, bdb)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != len(all) {
			t.Fatalf("status lists %d migrations, want %d", len(states), len(all))
		}
		for i, s := range states {
			if s.Name != all[i] || !s.Applied || s.GroupID != 1 || s.AppliedAt.IsZero() {
				t.Errorf("status[%d] = %+v, want %s applied in group 1 with a time", i, s, all[i])
			}
		}
		if applied, err := db.MigrateUp(ctx, bdb); err != nil || len(applied) != 0 {
			t.Errorf("second MigrateUp = %v, %v; want nothing applied", applied, err)
		}

		rolled, err := db.MigrateDown(ctx, bdb)
		if err != nil {
			t.Fatal(err)
		}
		newestFirst := slices.Clone(all)
		slices.Reverse(newestFirst)
		if !slices.Equal(rolled, newestFirst) {
			t.Errorf("MigrateDown = %v, want %v", rolled, newestFirst)
		}
		if err := (db.Pings{}).Create(ctx, bdb, &domain.Ping{}); err == nil {
			t.Error("insert into pings after MigrateDown succeeded, want the table gone")
		}
		states, err = db.MigrationStatus(ctx, bdb)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range states {
			if s.Applied || s.GroupID != 0 || !s.AppliedAt.IsZero() {
				t.Errorf("status[%d] after down = %+v, want pending", i, s)
			}
		}
		if rolled, err := db.MigrateDown(ctx, bdb); err != nil || len(rolled) != 0 {
			t.Errorf("MigrateDown with nothing applied = %v, %v; want nothing", rolled, err)
		}

		applied, err := db.MigrateUp(ctx, bdb)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(applied, all) {
			t.Errorf("MigrateUp = %v, want %v", applied, all)
		}
		if err := (db.Pings{}).Create(ctx, bdb, &domain.Ping{}); err != nil {
			t.Errorf("insert into pings after MigrateUp: %v", err)
		}
		if n := lockRows(t, bdb); n != 0 {
			t.Errorf("%d migration lock rows left, want 0", n)
		}
	})
}

// TestMigrateUpConcurrent starts several MigrateUp calls at once on a
// database without even bun's migration tables: they must take turns, so the
// migrations are applied exactly once.
func TestMigrateUpConcurrent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		if _, err := db.MigrateDown(ctx, bdb); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"bun_migrations", "bun_migration_locks"} {
			if _, err := bdb.NewDropTable().Table(table).Exec(ctx); err != nil {
				t.Fatalf("drop %s: %v", table, err)
			}
		}

		const callers = 4
		results := make([][]string, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				results[i], errs[i] = db.MigrateUp(ctx, bdb)
			})
		}
		wg.Wait()

		all := migrationNames()
		var appliers int
		for i := range callers {
			if errs[i] != nil {
				t.Errorf("MigrateUp %d: %v", i, errs[i])
				continue
			}
			switch {
			case len(results[i]) == 0:
			case slices.Equal(results[i], all):
				appliers++
			default:
				t.Errorf("MigrateUp %d applied %v, want all of %v or nothing", i, results[i], all)
			}
		}
		if appliers != 1 {
			t.Errorf("%d callers applied the migrations, want exactly 1", appliers)
		}
		states, err := db.MigrationStatus(ctx, bdb)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range states {
			if !s.Applied || s.GroupID != 1 {
				t.Errorf("status %+v, want applied once, in group 1", s)
			}
		}
		if n := lockRows(t, bdb); n != 0 {
			t.Errorf("%d migration lock rows left, want 0", n)
		}
	})
}

// TestChurnAutovacuum: on PostgreSQL the tables that churn vacuum after a
// fixed number of dead rows, not a fifth of the table.
func TestChurnAutovacuum(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		if bdb.Dialect().Name() != dialect.PG {
			t.Skip("per-table autovacuum settings are PostgreSQL's")
		}
		want := map[string]string{"outbox": "10000", "deliveries": "5000", "notifications": "5000", "sessions": "1000"}
		for table, threshold := range want {
			var opts []string
			err := bdb.NewSelect().ColumnExpr("unnest(reloptions)").TableExpr("pg_class").
				Where("relname = ?", table).Scan(context.Background(), &opts)
			if err != nil {
				t.Fatalf("reloptions of %s: %v", table, err)
			}
			if !slices.Contains(opts, "autovacuum_vacuum_threshold="+threshold) {
				t.Errorf("reloptions of %s = %v, want autovacuum_vacuum_threshold=%s", table, opts, threshold)
			}
		}
	})
}
