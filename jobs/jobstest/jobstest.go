// Package jobstest gives tests a Redis of their own: a logical database of
// the Redis named by MOIM_TEST_REDIS_URL, or else an in-memory server.
package jobstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/jobs/memredis"
)

// EnvRedisURL names the environment variable holding the URL of a real Redis
// for tests. Its database 0 holds only the claims on databases 1–15.
const EnvRedisURL = "MOIM_TEST_REDIS_URL"

const (
	// Database 0 is left for the claims (and for whatever else the shared
	// server runs); tests get 1..15, the default 16 databases minus one.
	firstDB = 1
	lastDB  = 15

	claimPrefix = "moim:testdb:"
	// claimTTL frees a database whose test process died without cleanup.
	claimTTL = 10 * time.Minute
	// claimWait bounds the wait when every database is claimed by other
	// tests (other test packages, or other checkouts on the same machine,
	// run as separate processes); a slow neighbour only slows this one.
	claimWait = 3 * time.Minute
	claimPoll = 100 * time.Millisecond
)

// releaseScript deletes the claim only if it is still ours, so a claim that
// expired and was taken by another test is left alone.
const releaseScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`

// Backend reports which Redis the helpers hand out: "redis" when
// MOIM_TEST_REDIS_URL is set, "memredis" otherwise.
func Backend() string {
	if os.Getenv(EnvRedisURL) != "" {
		return "redis"
	}
	return "memredis"
}

// RedisURL returns the URL of an empty Redis database that belongs to t
// alone until t ends, so parallel tests never see each other's queues. With
// MOIM_TEST_REDIS_URL set it claims a free logical database of that server
// (waiting up to a minute if all are taken) and fails t if the server cannot
// be reached; otherwise it starts an in-memory server. Everything is released
// in t.Cleanup.
//
// A test holding a database must not run parallel subtests (t.Parallel in
// t.Run): those wait for a free parallel slot while it keeps the database,
// and the tests in the slots may be waiting for a database themselves.
func RedisURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvRedisURL)
	if base == "" {
		srv, err := memredis.Start("127.0.0.1:0")
		if err != nil {
			t.Fatalf("jobstest: %v", err)
		}
		t.Cleanup(srv.Close)
		return srv.URL()
	}
	u, err := claimDB(t, base)
	if err != nil {
		t.Fatalf("jobstest: %s: %v", EnvRedisURL, err)
	}
	return u
}

// RedisOpt is RedisURL as asynq connection options.
func RedisOpt(t testing.TB) asynq.RedisClientOpt {
	t.Helper()
	u := RedisURL(t)
	opt, err := asynq.ParseRedisURI(u)
	if err != nil {
		t.Fatalf("jobstest: parse %s: %v", redactURL(u), err)
	}
	copt, ok := opt.(asynq.RedisClientOpt)
	if !ok {
		t.Fatalf("jobstest: %s is not a single-server Redis URL (got %T)", redactURL(u), opt)
	}
	return copt
}

// claimDB claims a free logical database of the server at base, empties it,
// registers its release and returns a URL pointing at it.
func claimDB(t testing.TB, base string) (string, error) {
	t.Helper()
	opts, err := redis.ParseURL(base)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", redactURL(base), err)
	}
	opts.DB = 0
	ctx, cancel := context.WithTimeout(context.Background(), claimWait+10*time.Second)
	defer cancel()

	ctl := redis.NewClient(opts)
	if err := ctl.Ping(ctx).Err(); err != nil {
		_ = ctl.Close()
		return "", fmt.Errorf("ping %s: %w", redactURL(base), err)
	}
	token, err := newToken()
	if err != nil {
		_ = ctl.Close()
		return "", err
	}

	db, err := claimFree(ctx, ctl, token)
	if err != nil {
		_ = ctl.Close()
		return "", err
	}
	key := claimPrefix + strconv.Itoa(db)
	dbOpts := *opts
	dbOpts.DB = db
	data := redis.NewClient(&dbOpts)

	t.Cleanup(func() {
		// A fresh context: the test's own may already be done.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := data.FlushDB(ctx).Err(); err != nil {
			t.Errorf("jobstest: flush redis db %d: %v", db, err)
		}
		if err := redis.NewScript(releaseScript).Run(ctx, ctl, []string{key}, token).Err(); err != nil {
			t.Errorf("jobstest: release redis db %d: %v", db, err)
		}
		_ = data.Close()
		_ = ctl.Close()
	})

	// Whatever an earlier test left behind (a crashed process, a test that
	// ran before claims existed) must not leak into this one.
	if err := data.FlushDB(ctx).Err(); err != nil {
		return "", fmt.Errorf("flush redis db %d: %w", db, err)
	}
	return withDB(base, db)
}

// claimFree takes the first unclaimed database, polling until ctx ends or
// claimWait passes.
func claimFree(ctx context.Context, ctl *redis.Client, token string) (int, error) {
	deadline := time.Now().Add(claimWait)
	for {
		for n := firstDB; n <= lastDB; n++ {
			ok, err := ctl.SetNX(ctx, claimPrefix+strconv.Itoa(n), token, claimTTL).Result()
			if err != nil {
				return 0, fmt.Errorf("claim redis db %d: %w", n, err)
			}
			if ok {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("claim redis db: all of %d..%d stayed taken for %s", firstDB, lastDB, claimWait)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("claim redis db: %w", ctx.Err())
		case <-time.After(claimPoll):
		}
	}
}

// withDB returns base with its path set to /db.
func withDB(base string, db int) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", redactURL(base), err)
	}
	u.Path = "/" + strconv.Itoa(db)
	u.RawPath = ""
	// go-redis also reads ?db=; drop it so the path wins everywhere.
	q := u.Query()
	q.Del("db")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func newToken() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("claim token: %w", err)
	}
	return strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b), nil
}

// redactURL hides a password in messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}
