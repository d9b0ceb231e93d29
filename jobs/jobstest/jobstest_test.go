package jobstest_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/memredis"
)

// fatalTB records a Fatalf instead of failing the real test, so the helper's
// own failures can be checked. Call the helper in its own goroutine: Fatalf
// ends that goroutine as testing does.
type fatalTB struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) message() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

// runHelper calls RedisURL with tb in a goroutine and returns its result.
func runHelper(tb *fatalTB) (string, bool) {
	var u string
	done := make(chan struct{})
	go func() {
		defer close(done)
		u = jobstest.RedisURL(tb)
	}()
	<-done
	return u, tb.message() == ""
}

func newClient(t *testing.T, rawURL string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", rawURL, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dbOf(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %q: %v", rawURL, err)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		t.Fatalf("db of %q: %v", rawURL, err)
	}
	return n
}

// TestRedisOptWorksWithAsynq runs on whatever backend the environment
// selects, so `make test` exercises the real Redis when it is configured.
func TestRedisOptWorksWithAsynq(t *testing.T) {
	t.Parallel()
	t.Logf("backend: %s", jobstest.Backend())
	opt := jobstest.RedisOpt(t)
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	cl := asynq.NewClient(opt)
	t.Cleanup(func() { _ = cl.Close() })

	// A fresh database has no queues at all.
	queues, err := insp.Queues()
	if err != nil {
		t.Fatalf("Queues: %v", err)
	}
	if len(queues) != 0 {
		t.Fatalf("fresh database has queues %v, want none", queues)
	}
	if _, err := cl.Enqueue(asynq.NewTask("test:noop", nil), asynq.Queue("q1")); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	info, err := insp.GetQueueInfo("q1")
	if err != nil {
		t.Fatalf("GetQueueInfo: %v", err)
	}
	if info.Pending != 1 {
		t.Errorf("pending = %d, want 1", info.Pending)
	}
}

func TestMemredisBackend(t *testing.T) {
	t.Setenv(jobstest.EnvRedisURL, "")
	if got := jobstest.Backend(); got != "memredis" {
		t.Fatalf("Backend() = %q, want memredis", got)
	}
	a, b := jobstest.RedisOpt(t), jobstest.RedisOpt(t)
	if a.Addr == b.Addr {
		t.Fatalf("two calls share server %s, want one each", a.Addr)
	}
	ca := newClient(t, "redis://"+a.Addr)
	if err := ca.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	cb := newClient(t, "redis://"+b.Addr)
	if err := cb.Get(context.Background(), "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET on the other server: err = %v, want redis.Nil", err)
	}
}

// TestClaimedDatabases drives the real-Redis path against an in-memory
// server, so the claim protocol is tested on every machine.
func TestClaimedDatabases(t *testing.T) {
	shared, err := memredis.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("memredis.Start: %v", err)
	}
	t.Cleanup(shared.Close)
	t.Setenv(jobstest.EnvRedisURL, shared.URL())
	if got := jobstest.Backend(); got != "redis" {
		t.Fatalf("Backend() = %q, want redis", got)
	}
	ctx := context.Background()
	ctl := newClient(t, shared.URL())

	// Leftovers from a crashed run in database 1 must be gone once claimed.
	leftover := newClient(t, "redis://"+shared.Addr()+"/1")
	if err := leftover.Set(ctx, "stale", "x", 0).Err(); err != nil {
		t.Fatalf("SET stale: %v", err)
	}

	seen := map[int]bool{}
	t.Run("distinct", func(t *testing.T) {
		for i := range 3 {
			u := jobstest.RedisURL(t)
			db := dbOf(t, u)
			if db < 1 || db > 15 {
				t.Fatalf("call %d: db = %d, want 1..15", i, db)
			}
			if seen[db] {
				t.Fatalf("call %d: db %d handed out twice", i, db)
			}
			seen[db] = true
			c := newClient(t, u)
			if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Fatalf("db %d: DBSIZE = %d, %v; want 0, nil", db, n, err)
			}
			if err := c.Set(ctx, "mine", "x", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			if n, err := ctl.Exists(ctx, "moim:testdb:"+strconv.Itoa(db)).Result(); err != nil || n != 1 {
				t.Fatalf("claim of db %d: EXISTS = %d, %v; want 1, nil", db, n, err)
			}
		}
	})
	// The subtest's cleanup flushed and released every database it took.
	for db := range seen {
		if n, err := ctl.Exists(ctx, "moim:testdb:"+strconv.Itoa(db)).Result(); err != nil || n != 0 {
			t.Errorf("claim of db %d after cleanup: EXISTS = %d, %v; want 0, nil", db, n, err)
		}
		c := newClient(t, "redis://"+shared.Addr()+"/"+strconv.Itoa(db))
		if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
			t.Errorf("db %d after cleanup: DBSIZE = %d, %v; want 0, nil", db, n, err)
		}
	}

	t.Run("waits for a free database", func(t *testing.T) {
		for n := 1; n <= 15; n++ {
			if err := ctl.Set(ctx, "moim:testdb:"+strconv.Itoa(n), "other", time.Minute).Err(); err != nil {
				t.Fatalf("SET claim %d: %v", n, err)
			}
		}
		type result struct {
			url string
			ok  bool
		}
		got := make(chan result, 1)
		tb := &fatalTB{TB: t}
		go func() {
			u, ok := runHelper(tb)
			got <- result{u, ok}
		}()
		// Whenever the helper gets here, database 7 is the only one free.
		if err := ctl.Del(ctx, "moim:testdb:7").Err(); err != nil {
			t.Fatalf("DEL claim 7: %v", err)
		}
		var r result
		select {
		case r = <-got:
		case <-time.After(60 * time.Second):
			t.Fatal("helper still waiting 60s after a database was freed")
		}
		if !r.ok {
			t.Fatalf("helper failed: %s", tb.message())
		}
		if db := dbOf(t, r.url); db != 7 {
			t.Errorf("db = %d, want 7", db)
		}
		for n := 1; n <= 15; n++ {
			if n != 7 {
				_ = ctl.Del(ctx, "moim:testdb:"+strconv.Itoa(n)).Err()
			}
		}
	})

	t.Run("leaves a claim that is no longer its own", func(t *testing.T) {
		var db int
		t.Run("inner", func(t *testing.T) {
			db = dbOf(t, jobstest.RedisURL(t))
			// The claim expired and another process took the database.
			if err := ctl.Set(ctx, "moim:testdb:"+strconv.Itoa(db), "other", time.Minute).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
		})
		key := "moim:testdb:" + strconv.Itoa(db)
		if v, err := ctl.Get(ctx, key).Result(); err != nil || v != "other" {
			t.Errorf("claim after cleanup = %q, %v; want other's claim kept", v, err)
		}
		_ = ctl.Del(ctx, key).Err()
	})
}

func TestUnreachableRedisFails(t *testing.T) {
	// Port 1 on loopback is closed: connecting is refused at once.
	t.Setenv(jobstest.EnvRedisURL, "redis://:secret@127.0.0.1:1/0")
	tb := &fatalTB{TB: t}
	if _, ok := runHelper(tb); ok {
		t.Fatal("RedisURL with an unreachable server succeeded, want a failure")
	}
	msg := tb.message()
	if !strings.Contains(msg, jobstest.EnvRedisURL) {
		t.Errorf("failure %q does not name %s", msg, jobstest.EnvRedisURL)
	}
	if strings.Contains(msg, "secret") {
		t.Errorf("failure %q shows the password", msg)
	}
}
