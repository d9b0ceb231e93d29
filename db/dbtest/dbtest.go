// Package dbtest gives tests fresh, fully migrated databases: SQLite always,
// PostgreSQL when MOIM_TEST_POSTGRES_URL is set and MySQL/MariaDB when
// MOIM_TEST_MYSQL_URL is set. Each test gets its own database (a file in its
// temp directory, or a database created for it on the server and dropped
// when it ends), so tests run in parallel without seeing each other's rows.
package dbtest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
)

// Dialect names, as subtests and Open know them.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
	MySQL    = "mysql"
)

// Environment variables naming the servers to test against.
const (
	PostgresURLEnv = "MOIM_TEST_POSTGRES_URL"
	MySQLURLEnv    = "MOIM_TEST_MYSQL_URL"
)

// setupTimeout bounds creating, migrating and dropping one test database.
const setupTimeout = time.Minute

// Backends returns the dialects tests run on here: "sqlite" always, then
// "postgres" and "mysql" when their URLs are set.
func Backends() []string {
	out := []string{SQLite}
	if os.Getenv(PostgresURLEnv) != "" {
		out = append(out, Postgres)
	}
	if os.Getenv(MySQLURLEnv) != "" {
		out = append(out, MySQL)
	}
	return out
}

// Each runs fn once per available dialect (see Backends), as parallel
// subtests named after the dialect, each with a fresh, migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *bun.DB)) {
	t.Helper()
	for _, dialect := range Backends() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			fn(t, Open(t, dialect))
		})
	}
}

// Open returns a fresh, migrated database of the given dialect ("sqlite",
// "postgres" or "mysql"), closed (and for servers dropped) when the test
// ends. It skips the test when the dialect's URL is not set, and fails it
// when the URL is set but the server cannot be used: a configured server
// that does not work is a broken setup, not a reason to skip.
func Open(tb testing.TB, dialect string) *bun.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	dsn := URL(tb, dialect)
	bdb, err := db.Open(ctx, dsn, db.Options{})
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	// Registered after createDatabase's drop, so it runs first: the
	// connections close before the database goes.
	tb.Cleanup(func() { _ = bdb.Close() })
	if _, err := db.MigrateUp(ctx, bdb); err != nil {
		tb.Fatalf("dbtest: migrate %s database: %v", dialect, err)
	}
	return bdb
}

// URL returns the URL of a fresh, empty (not migrated) database of the
// given dialect, for a test that runs the migrations itself or hands the
// database to processes it starts. Server databases are dropped when the
// test ends. It skips and fails as Open does.
func URL(tb testing.TB, dialect string) string {
	tb.Helper()
	switch dialect {
	case SQLite:
		return "sqlite:" + filepath.Join(tb.TempDir(), "moim.db")
	case Postgres, MySQL:
		env := PostgresURLEnv
		if dialect == MySQL {
			env = MySQLURLEnv
		}
		serverURL := os.Getenv(env)
		if serverURL == "" {
			tb.Skipf("dbtest: %s is not set", env)
		}
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		return createDatabase(ctx, tb, dialect, serverURL)
	}
	tb.Fatalf("dbtest: unknown dialect %q (want %s, %s or %s)", dialect, SQLite, Postgres, MySQL)
	return ""
}

// createDatabase creates an empty database with a random name on the server
// at serverURL, drops it when the test ends, and returns its URL.
func createDatabase(ctx context.Context, tb testing.TB, dialect, serverURL string) string {
	tb.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		tb.Fatalf("dbtest: %s url does not parse", dialect)
	}
	// Letters and digits only, so the name needs no quoting on any server.
	name := "moim_test_" + db.NewPublicID()[:12]

	admin, err := db.Open(ctx, serverURL, db.Options{MaxOpenConns: 1})
	if err != nil {
		tb.Fatalf("dbtest: connect to %s server: %v", dialect, err)
	}
	defer admin.Close()
	create := "CREATE DATABASE " + name
	if dialect == MySQL {
		create += " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
	}
	if _, err := admin.ExecContext(ctx, create); err != nil {
		tb.Fatalf("dbtest: create %s database %s: %v", dialect, name, err)
	}

	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		admin, err := db.Open(ctx, serverURL, db.Options{MaxOpenConns: 1})
		if err != nil {
			tb.Errorf("dbtest: connect to %s server to drop %s: %v", dialect, name, err)
			return
		}
		defer admin.Close()
		drop := "DROP DATABASE IF EXISTS " + name
		if dialect == Postgres {
			// FORCE ends connections a test left open (PostgreSQL 13+).
			drop += " WITH (FORCE)"
		}
		if _, err := admin.ExecContext(ctx, drop); err != nil {
			tb.Errorf("dbtest: drop %s database %s: %v", dialect, name, err)
		}
	})

	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}
