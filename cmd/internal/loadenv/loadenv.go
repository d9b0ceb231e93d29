// Package loadenv gives the load programs under cmd/moim their database
// and Redis: MOIM_DATABASE_URL and MOIM_REDIS_URL when set, else a
// temporary SQLite file and the in-memory Redis, as `make run` uses.
package loadenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
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
				Nickname: nick, NicknameKey: nick, Role: int16(domain.RoleMember), CreatedAt: now, UpdatedAt: now})
		}
		if _, err := bdb.NewInsert().Model(&rows).Exec(ctx); err != nil {
			return nil, fmt.Errorf("insert members: %w", err)
		}
	}
	return ids, nil
}
