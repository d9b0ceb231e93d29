package db_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
)

// withPassword returns serverURL with its password replaced by pw.
func withPassword(t *testing.T, serverURL, pw string) string {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatalf("parse %s: %v", u.Redacted(), err)
	}
	user := "moim"
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, pw)
	return u.String()
}

func TestOpen(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, filepath.Join(t.TempDir(), "rel", "moim.db"))
	if err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(t.TempDir(), "nested", "dir", "moim.db")

	tests := []struct {
		name        string
		url         string
		wantDialect string
		wantFile    string
	}{
		{"sqlite relative path", "sqlite:" + rel, "sqlite", rel},
		{"sqlite absolute path, parent created", "sqlite:" + abs, "sqlite", abs},
		{"sqlite triple slash", "sqlite://" + filepath.Join(t.TempDir(), "x.db"), "sqlite", ""},
		{"sqlite memory", "sqlite::memory:", "sqlite", ""},
	}
	if u := os.Getenv(dbtest.PostgresURLEnv); u != "" {
		tests = append(tests,
			struct{ name, url, wantDialect, wantFile string }{"postgres", u, "pg", ""},
			struct{ name, url, wantDialect, wantFile string }{"postgresql scheme", strings.Replace(u, "postgres://", "postgresql://", 1), "pg", ""},
		)
	}
	if u := os.Getenv(dbtest.MySQLURLEnv); u != "" {
		tests = append(tests, struct{ name, url, wantDialect, wantFile string }{"mysql", u, "mysql", ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bdb, err := db.Open(context.Background(), tt.url, db.Options{})
			if err != nil {
				t.Fatalf("Open(%q) error: %v", tt.url, err)
			}
			defer bdb.Close()
			if got := bdb.Dialect().Name().String(); got != tt.wantDialect {
				t.Errorf("dialect = %q, want %q", got, tt.wantDialect)
			}
			var one int
			if err := bdb.QueryRowContext(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Errorf("SELECT 1 = %d, %v; want 1, nil", one, err)
			}
			if tt.wantFile != "" {
				if _, err := os.Stat(tt.wantFile); err != nil {
					t.Errorf("database file: %v", err)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	const pw = "Sup3rS3cretPw"
	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{"unknown scheme", "oracle://scott:" + pw + "@localhost/orcl", `unsupported url scheme "oracle"`},
		{"no scheme", "just-a-path.db", "no scheme"},
		{"sqlite without path", "sqlite:", "needs a file path"},
		{"postgres unreachable", "postgres://moim:" + pw + "@127.0.0.1:1/moim?sslmode=disable", "ping pg database"},
		{"postgres bad port", "postgres://moim:" + pw + "@127.0.0.1:port/moim", "parse database url"},
		{"postgres bad sslmode", "postgres://moim:" + pw + "@127.0.0.1:1/moim?sslmode=sometimes", "invalid url"},
		{"mysql unreachable", "mysql://moim:" + pw + "@127.0.0.1:1/moim?timeout=2s", "ping mysql database"},
		{"mysql no database", "mysql://moim:" + pw + "@127.0.0.1:1", "database name"},
		{"mysql bad parameter", "mysql://moim:" + pw + "@127.0.0.1:1/moim?timeout=soon", "open mysql database"},
		{"escaped password", "postgres://moim:" + url.QueryEscape(pw+"/@:") + "@127.0.0.1:1/moim?sslmode=disable", "ping pg database"},
	}
	if u := os.Getenv(dbtest.MySQLURLEnv); u != "" {
		tests = append(tests, struct{ name, url, wantErr string }{"mysql wrong password", withPassword(t, u, pw), "ping mysql database"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			bdb, err := db.Open(ctx, tt.url, db.Options{})
			if err == nil {
				bdb.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.url)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantErr)
			}
			for _, secret := range []string{pw, url.QueryEscape(pw + "/@:")} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q contains the password", msg)
				}
			}
		})
	}
}

func TestOpenMemoryIsOneDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb, err := db.Open(ctx, "sqlite::memory:", db.Options{MaxOpenConns: 8, ConnMaxIdleTime: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if _, err := db.MigrateUp(ctx, bdb); err != nil {
		t.Fatal(err)
	}
	// Many goroutines at once would each get a new, empty database if the
	// pool opened more than one connection.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			_, err := bdb.NewSelect().Table("pings").Count(ctx)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("count pings: %v", err)
		}
	}
}

func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.Open(t, dbtest.SQLite)
	// Hold several connections at once, so the settings are checked on more
	// than the first one the pool made.
	var conns []bun.Conn
	for range 3 {
		c, err := bdb.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"synchronous", "1"}, // NORMAL
	}
	for i, c := range conns {
		for _, tt := range tests {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatalf("conn %d: PRAGMA %s: %v", i, tt.pragma, err)
			}
			if got != tt.want {
				t.Errorf("conn %d: PRAGMA %s = %q, want %q", i, tt.pragma, got, tt.want)
			}
		}
	}
}

func TestNewPublicID(t *testing.T) {
	t.Parallel()
	format := regexp.MustCompile(`^[a-z2-7]{26}$`)
	seen := make(map[string]bool)
	for range 10000 {
		id := db.NewPublicID()
		if !format.MatchString(id) {
			t.Fatalf("NewPublicID() = %q, want 26 lowercase base32 characters", id)
		}
		if seen[id] {
			t.Fatalf("NewPublicID() returned %q twice", id)
		}
		seen[id] = true
	}
}
