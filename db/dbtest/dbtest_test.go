package dbtest_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

func TestBackends(t *testing.T) {
	t.Parallel()
	want := []string{dbtest.SQLite}
	if os.Getenv(dbtest.PostgresURLEnv) != "" {
		want = append(want, dbtest.Postgres)
	}
	if os.Getenv(dbtest.MySQLURLEnv) != "" {
		want = append(want, dbtest.MySQL)
	}
	if got := dbtest.Backends(); !slices.Equal(got, want) {
		t.Errorf("Backends() = %v, want %v", got, want)
	}
}

// currentDatabase names the database bdb is connected to ("" for SQLite).
func currentDatabase(t *testing.T, bdb *bun.DB) string {
	t.Helper()
	var q string
	switch bdb.Dialect().Name().String() {
	case "pg":
		q = "SELECT current_database()"
	case "mysql":
		q = "SELECT DATABASE()"
	default:
		return ""
	}
	var name string
	if err := bdb.QueryRowContext(context.Background(), q).Scan(&name); err != nil {
		t.Fatalf("current database: %v", err)
	}
	return name
}

// databaseExists asks the server behind env whether a database exists.
func databaseExists(t *testing.T, dialect, name string) bool {
	t.Helper()
	ctx := context.Background()
	env, q := dbtest.PostgresURLEnv, "SELECT count(*) FROM pg_database WHERE datname = ?"
	if dialect == dbtest.MySQL {
		env, q = dbtest.MySQLURLEnv, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?"
	}
	admin, err := db.Open(ctx, os.Getenv(env), db.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.NewRaw(q, name).Scan(ctx, &n); err != nil {
		t.Fatalf("look for database %s: %v", name, err)
	}
	return n > 0
}

// TestEach checks that every backend gets its own subtest and a migrated
// database of its own, and that server databases are dropped afterwards.
func TestEach(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		names = map[string][]string{} // subtest dialect -> database names
	)
	// Two runs, so "fresh" is checked: the second must not see the first's row.
	for run := range 2 {
		t.Run("run", func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
				ctx := context.Background()
				n, err := bdb.NewSelect().Table("pings").Count(ctx)
				if err != nil {
					t.Fatalf("count pings (is the database migrated?): %v", err)
				}
				if n != 0 {
					t.Errorf("run %d: %d pings in a fresh database, want 0", run, n)
				}
				if err := (db.Pings{}).Create(ctx, bdb, &domain.Ping{}); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				d := subtestDialect(t)
				names[d] = append(names[d], currentDatabase(t, bdb))
				mu.Unlock()
			})
		})
	}

	var got []string
	for d := range names {
		got = append(got, d)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(dbtest.Backends()))
	if !slices.Equal(got, want) {
		t.Errorf("subtests ran for %v, want %v", got, want)
	}
	// Each's subtests have finished, cleanups included.
	for _, dialect := range []string{dbtest.Postgres, dbtest.MySQL} {
		for _, name := range names[dialect] {
			if databaseExists(t, dialect, name) {
				t.Errorf("%s database %s still exists after the test", dialect, name)
			}
		}
		if dbs := names[dialect]; len(dbs) == 2 && dbs[0] == dbs[1] {
			t.Errorf("both runs used %s database %s, want a new one each", dialect, dbs[0])
		}
	}
}

// subtestDialect returns the last element of t's name, the dialect Each
// named the subtest after.
func subtestDialect(t *testing.T) string {
	name := t.Name()
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}

// TestURL checks that URL gives an empty database of its own, dropped
// afterwards on a server.
func TestURL(t *testing.T) {
	t.Parallel()
	names := map[string]string{} // dialect -> database name
	t.Run("run", func(t *testing.T) {
		for _, dialect := range dbtest.Backends() {
			t.Run(dialect, func(t *testing.T) {
				ctx := context.Background()
				bdb, err := db.Open(ctx, dbtest.URL(t, dialect), db.Options{MaxOpenConns: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer bdb.Close()
				if _, err := bdb.NewSelect().Table("pings").Count(ctx); err == nil {
					t.Error("the database has a pings table: want it empty, not migrated")
				}
				names[dialect] = currentDatabase(t, bdb)
			})
		}
	})
	for _, dialect := range []string{dbtest.Postgres, dbtest.MySQL} {
		if name := names[dialect]; name != "" && databaseExists(t, dialect, name) {
			t.Errorf("%s database %s still exists after the test", dialect, name)
		}
	}
}
