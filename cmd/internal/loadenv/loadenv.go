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

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
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
