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
	"strings"
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

// Members inserts n members named prefix000001… in bulk and returns their
// public ids: the stores insert one at a time, which would make a load
// program's setup its slowest part.
func Members(ctx context.Context, bdb *bun.DB, n int, prefix string) ([]string, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	ids := make([]string, n)
	const chunk = 500
	for lo := 0; lo < n; lo += chunk {
		rows := make([]memberRow, 0, chunk)
		for i := lo; i < min(lo+chunk, n); i++ {
			ids[i] = db.NewPublicID()
			nick := fmt.Sprintf("%s%06d", prefix, i)
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
func (e *Env) StartAPI() (*API, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tokens, err := auth.NewTokens(auth.TokenParams{Key: []byte(strings.Repeat("k", 32)), TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	sessions, err := auth.NewSessions(auth.SessionParams{Redis: e.Redis, TTL: 2 * time.Hour})
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
	h, cleanup, err := httpapi.New(httpapi.Deps{
		Logger: logger, DB: e.DB, Redis: e.Redis, RedisConnOpt: e.RedisOpt, Relay: relay,
		Registry: prometheus.NewRegistry(), AdminUser: "admin", AdminPassword: "load",
		Passwords: hasher, Tokens: tokens, Sessions: sessions,
	})
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
