// Package db is moim's SQL layer on bun: Open for PostgreSQL, MySQL/MariaDB
// and SQLite, the migrations, the stores (each a zero-size type whose methods
// take a bun.IDB so they compose in a transaction) and the one place where
// driver errors become domain errors.
package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/pgdriver"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Options sizes the connection pool. Zero values pick the defaults below.
type Options struct {
	// MaxOpenConns caps open connections; 0 means 4×GOMAXPROCS.
	MaxOpenConns int
	// MaxIdleConns caps idle connections; 0 means MaxOpenConns. database/sql's
	// own default of 2 makes a busy pool close and reopen connections
	// constantly, which costs far more than keeping them.
	MaxIdleConns int
	// ConnMaxLifetime and ConnMaxIdleTime are passed to database/sql as is
	// (0 = no limit).
	ConnMaxLifetime time.Duration
	ConnMaxIdleTime time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = 4 * runtime.GOMAXPROCS(0)
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = o.MaxOpenConns
	}
	return o
}

// Open connects to the database named by rawURL and pings it:
//
//	postgres://user:pass@host:5432/db?sslmode=disable  (also postgresql://)
//	mysql://user:pass@host:3306/db?tls=true            (MySQL 8, MariaDB 10.11+)
//	sqlite:data/moim.db                                (relative or absolute file)
//	sqlite::memory:                                    (one private in-memory database)
//
// Errors never contain the URL's password.
func Open(ctx context.Context, rawURL string, opts Options) (*bun.DB, error) {
	opts = opts.withDefaults()
	scheme, _, ok := strings.Cut(rawURL, ":")
	if !ok {
		return nil, errors.New("open database: url has no scheme: want postgres://, mysql:// or sqlite:")
	}
	var (
		bdb *bun.DB
		err error
	)
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		bdb, err = openPostgres(rawURL, opts)
	case "mysql":
		bdb, err = openMySQL(rawURL, opts)
	case "sqlite":
		bdb, err = openSQLite(rawURL[len(scheme)+1:], opts)
	default:
		return nil, fmt.Errorf("open database: unsupported url scheme %q: want postgres://, mysql:// or sqlite:", scheme)
	}
	if err != nil {
		return nil, redact(err, rawURL)
	}
	if err := bdb.PingContext(ctx); err != nil {
		_ = bdb.Close()
		return nil, redact(fmt.Errorf("ping %s database %s: %w", bdb.Dialect().Name(), safeURL(rawURL), err), rawURL)
	}
	return bdb, nil
}

func setPool(sqldb *sql.DB, opts Options) {
	sqldb.SetMaxOpenConns(opts.MaxOpenConns)
	sqldb.SetMaxIdleConns(opts.MaxIdleConns)
	sqldb.SetConnMaxLifetime(opts.ConnMaxLifetime)
	sqldb.SetConnMaxIdleTime(opts.ConnMaxIdleTime)
}

func openPostgres(rawURL string, opts Options) (_ *bun.DB, err error) {
	if _, err := parseURL(rawURL); err != nil {
		return nil, err
	}
	// pgdriver.WithDSN panics on a DSN it cannot parse (an unknown sslmode,
	// say); turn that into an error, since the URL comes from configuration.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open postgres database %s: invalid url: %v", safeURL(rawURL), r)
		}
	}()
	connector := pgdriver.NewConnector(pgdriver.WithDSN(rawURL))
	sqldb := sql.OpenDB(connector)
	setPool(sqldb, opts)
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

func openMySQL(rawURL string, opts Options) (*bun.DB, error) {
	cfg, err := mysqlConfig(rawURL)
	if err != nil {
		return nil, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open mysql database %s: %w", safeURL(rawURL), err)
	}
	sqldb := sql.OpenDB(connector)
	setPool(sqldb, opts)
	// The dialect formats times itself (bun inlines arguments); without an
	// explicit location it would write a non-UTC time in its own zone.
	return bun.NewDB(sqldb, mysqldialect.New(mysqldialect.WithTimeLocation("UTC"))), nil
}

// mysqlConfig turns mysql://user:pass@host:port/db?params into the driver's
// config. Query parameters are the driver's own (tls, timeout, ...); the
// settings the stores rely on are forced afterwards.
func mysqlConfig(rawURL string) (*mysql.Config, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	host := u.Host
	if host == "" {
		return nil, fmt.Errorf("open mysql database %s: url has no host", safeURL(rawURL))
	}
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "3306")
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return nil, fmt.Errorf("open mysql database %s: url needs exactly one database name as its path", safeURL(rawURL))
	}
	// The user and password are set on the config, not in the DSN: the DSN
	// syntax cannot carry every character a password may contain.
	dsn := "tcp(" + host + ")/" + dbName
	if u.RawQuery != "" {
		dsn += "?" + u.RawQuery
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open mysql database %s: %w", safeURL(rawURL), err)
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.MultiStatements = false
	cfg.Collation = "utf8mb4_unicode_ci"
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// NOW() and CURRENT_TIMESTAMP (bun's migration table uses the latter)
	// then agree with the UTC times the stores write.
	cfg.Params["time_zone"] = "'+00:00'"
	return cfg, nil
}

func openSQLite(path string, opts Options) (*bun.DB, error) {
	path, _, _ = strings.Cut(path, "?")
	if strings.HasPrefix(path, "//") {
		path = path[2:] // sqlite:///abs/file.db and sqlite://rel/file.db
	}
	if path == "" {
		return nil, errors.New("open sqlite database: url needs a file path (sqlite:data/moim.db) or :memory:")
	}
	// The driver applies these to every new connection. busy_timeout makes a
	// writer wait for the single write lock instead of failing at once;
	// _txlock=immediate takes that lock at BEGIN, so a write transaction never
	// fails half-way upgrading a read lock (an upgrade SQLite refuses without
	// consulting busy_timeout).
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")

	memory := path == ":memory:"
	var dsn string
	if memory {
		dsn = "file::memory:?" + q.Encode()
	} else {
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("open sqlite database %s: create directory: %w", path, err)
			}
		}
		q.Add("_pragma", "journal_mode(WAL)")
		dsn = "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	}
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	if memory {
		// Every connection to :memory: is a new, empty database, so the pool
		// holds exactly one and never lets it go.
		sqldb.SetMaxOpenConns(1)
		sqldb.SetMaxIdleConns(1)
		sqldb.SetConnMaxLifetime(0)
		sqldb.SetConnMaxIdleTime(0)
	} else {
		// WAL lets readers run beside the one writer; writers queue on
		// busy_timeout, so the usual pool works.
		setPool(sqldb, opts)
	}
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

// parseURL parses a network database URL. url.Parse's own error repeats the
// whole URL, password included, so only its reason is kept.
func parseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("parse database url: %v", err)
	}
	return u, nil
}

// safeURL returns rawURL with its password replaced, for error messages.
func safeURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// redact returns err with every occurrence of rawURL's password (plain and
// URL-escaped) masked, so a driver that echoes its DSN cannot leak it.
func redact(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	var secrets []string
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p)
		}
	}
	// Also take the raw text between the first ':' after "//" and the last
	// '@', in case the URL did not parse.
	if _, rest, ok := strings.Cut(rawURL, "//"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, p, ok := strings.Cut(rest[:at], ":"); ok && p != "" {
				secrets = append(secrets, p)
				if up, uerr := url.PathUnescape(p); uerr == nil && up != p {
					secrets = append(secrets, up)
				}
			}
		}
	}
	if len(secrets) == 0 {
		return err
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		clean = strings.ReplaceAll(clean, s, "xxxxx")
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

// redactedError shows a masked message but keeps the cause for errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// NewPublicID returns a new opaque id for URLs and JSON: 130 random bits
// from crypto/rand as 26 lowercase base32 characters. Public ids are never
// sequence numbers, which would leak counts and invite guessing.
func NewPublicID() string {
	return strings.ToLower(rand.Text())
}
