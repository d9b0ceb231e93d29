// Package loadenv gives the load programs under cmd/moim their database
// and Redis: MOIM_DATABASE_URL and MOIM_REDIS_URL when set, else a
// temporary SQLite file and the in-memory Redis, as `make run` uses.
package loadenv

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/memredis"
)

// Env is an opened, migrated database and a Redis.
type Env struct {
	DB       *bun.DB
	Backend  string // the database scheme: sqlite, postgres, mysql
	RedisOpt asynq.RedisConnOpt
	Redis    redis.UniversalClient
	closers  []func()
}

// Open opens the environment; Close releases it.
func Open(ctx context.Context, name string) (*Env, error) {
	e := &Env{}
	tmp, err := os.MkdirTemp("", name)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = os.RemoveAll(tmp) })
	dbURL := os.Getenv("MOIM_DATABASE_URL")
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(tmp, "moim.db")
	}
	e.Backend = strings.SplitN(dbURL, ":", 2)[0]
	if e.DB, err = db.Open(ctx, dbURL, db.Options{}); err != nil {
		e.Close()
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = e.DB.Close() })
	if _, err := db.MigrateUp(ctx, e.DB); err != nil {
		e.Close()
		return nil, err
	}
	redisURL := os.Getenv("MOIM_REDIS_URL")
	if redisURL == "" {
		mr, err := memredis.Start("127.0.0.1:0")
		if err != nil {
			e.Close()
			return nil, err
		}
		e.closers = append(e.closers, mr.Close)
		redisURL = mr.URL()
	}
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		e.Close()
		return nil, err
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		e.Close()
		return nil, fmt.Errorf("unsupported redis client %T", opt.MakeRedisClient())
	}
	e.RedisOpt, e.Redis = opt, rdb
	e.closers = append(e.closers, func() { _ = rdb.Close() })
	return e, nil
}

// Close releases everything Open made, newest first.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// memberRow is the part of a members row a load program fills.
type memberRow struct {
	bun.BaseModel `bun:"table:members"`

	ID           int64     `bun:"id,pk,autoincrement"`
	PublicID     string    `bun:"public_id"`
	Email        string    `bun:"email"`
	PasswordHash string    `bun:"password_hash"`
	Nickname     string    `bun:"nickname"`
	NicknameKey  string    `bun:"nickname_key"`
	SMSConsent   bool      `bun:"sms_consent"`
	NotifyMail   bool      `bun:"notify_mail"`
	NotifySMS    bool      `bun:"notify_sms"`
	NotifySlack  bool      `bun:"notify_slack"`
	Role         int16     `bun:"role"`
	CreatedAt    time.Time `bun:"created_at"`
	UpdatedAt    time.Time `bun:"updated_at"`
}

// Members inserts n members named prefix, a run tag and 000001… in bulk and returns their
// public ids: the stores insert one at a time, which would make a load
// program's setup its slowest part.
func Members(ctx context.Context, bdb *bun.DB, n int, prefix string) ([]string, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	ids := make([]string, n)
	// A run tag keeps names and emails unique when a database from an
	// earlier run is used again.
	tag := db.NewPublicID()[:6]
	const chunk = 500
	for lo := 0; lo < n; lo += chunk {
		rows := make([]memberRow, 0, chunk)
		for i := lo; i < min(lo+chunk, n); i++ {
			ids[i] = db.NewPublicID()
			nick := fmt.Sprintf("%s%s%06d", prefix, tag, i)
			rows = append(rows, memberRow{PublicID: ids[i], Email: nick + "@example.com", PasswordHash: "x",
				Nickname: nick, NicknameKey: nick, Role: int16(domain.RoleMember), CreatedAt: now, UpdatedAt: now,
				// The defaults of a sign-up: every channel on.
				NotifyMail: true, NotifySMS: true, NotifySlack: true})
		}
		if _, err := bdb.NewInsert().Model(&rows).Exec(ctx); err != nil {
			return nil, fmt.Errorf("insert members: %w", err)
		}
	}
	return ids, nil
}

// API is one API instance serving on a loopback port.
type API struct {
	URL      string // http://127.0.0.1:port
	Relay    *jobs.Relay
	Tokens   *auth.Tokens
	Sessions *auth.Sessions
}

// StartAPI serves the API over e until Close: the relay is built but not
// run, so only the API itself is measured.
func (e *Env) StartAPI() (*API, error) { return e.StartAPIWith(nil) }

// StartAPIWith is StartAPI with adjust applied to the API's dependencies
// (nil leaves them as they are).
func (e *Env) StartAPIWith(adjust func(*httpapi.Deps)) (*API, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tokens, err := auth.NewTokens(auth.TokenParams{Key: []byte(strings.Repeat("k", 32)), TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	sessions, err := auth.NewSessions(auth.SessionParams{Store: db.SessionStore{DB: e.DB}, Redis: e.Redis, TTL: 2 * time.Hour})
	if err != nil {
		return nil, err
	}
	hasher, err := auth.NewHasher(auth.DefaultPasswordParams(), 0)
	if err != nil {
		return nil, err
	}
	relay, err := jobs.NewRelay(e.DB, jobs.RelayParams{Redis: e.RedisOpt})
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = relay.Close() })
	deps := httpapi.Deps{
		Logger: logger, DB: e.DB, Redis: e.Redis, RedisConnOpt: e.RedisOpt, Relay: relay,
		Registry: prometheus.NewRegistry(), AdminUser: "admin", AdminPassword: "load",
		Passwords: hasher, Tokens: tokens, Sessions: sessions,
		Accounts: httpapi.AccountParams{Key: []byte("load programs' account code key, 32+ bytes")},
	}
	if adjust != nil {
		adjust(&deps)
	}
	h, cleanup, err := httpapi.New(deps)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, cleanup)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	e.closers = append(e.closers, func() { _ = srv.Close() })
	return &API{URL: "http://" + ln.Addr().String(), Relay: relay, Tokens: tokens, Sessions: sessions}, nil
}

// Logins opens a session for each member and returns an access token each,
// straight in the stores: logging in through the API would measure argon2.
func (a *API) Logins(ctx context.Context, memberIDs []string) ([]string, error) {
	access := make([]string, len(memberIDs))
	for i, id := range memberIDs {
		s, _, err := a.Sessions.Create(ctx, id, "load", "127.0.0.1")
		if err != nil {
			return nil, err
		}
		if access[i], _, err = a.Tokens.Issue(id, domain.RoleMember, s.ID); err != nil {
			return nil, err
		}
	}
	return access, nil
}

// Tracer is a query hook that sums the time of each kind of statement
// (operation and table), to show where a transaction's time goes.
type Tracer struct {
	mu    sync.Mutex
	kinds map[string]*traceKind
}

type traceKind struct {
	n     int
	total time.Duration
}

// Trace installs a Tracer on e.DB.
func (e *Env) Trace() *Tracer {
	t := &Tracer{kinds: map[string]*traceKind{}}
	e.DB.AddQueryHook(t)
	return t
}

// BeforeQuery implements bun.QueryHook.
func (*Tracer) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

var traceTable = regexp.MustCompile(`(?i)\b(?:FROM|INTO|UPDATE)\s+"?(\w+)`)

// AfterQuery implements bun.QueryHook.
func (t *Tracer) AfterQuery(_ context.Context, ev *bun.QueryEvent) {
	d := time.Since(ev.StartTime)
	key := ev.Operation()
	if m := traceTable.FindStringSubmatch(ev.Query); m != nil {
		key += " " + m[1]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.kinds[key]
	if k == nil {
		k = &traceKind{}
		t.kinds[key] = k
	}
	k.n++
	k.total += d
}

// Report lists each kind of statement with its count and mean time,
// the costliest first, and resets the sums.
func (t *Tracer) Report() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.kinds))
	for k := range t.kinds {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return int(t.kinds[b].total - t.kinds[a].total) })
	var b strings.Builder
	for _, k := range keys {
		v := t.kinds[k]
		fmt.Fprintf(&b, "  %-34s n=%-7d total=%-9v mean=%v\n", k, v.n, v.total.Round(time.Millisecond), (v.total / time.Duration(v.n)).Round(time.Microsecond))
	}
	t.kinds = map[string]*traceKind{}
	return b.String()
}

// CPUProfile starts a CPU profile written to path ("" profiles nothing)
// and returns the function that stops it.
func CPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
