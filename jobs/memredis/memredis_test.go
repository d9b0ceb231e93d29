package memredis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/jobs/memredis"
)

func start(t *testing.T, addr string) *memredis.Server {
	t.Helper()
	srv, err := memredis.Start(addr)
	if err != nil {
		t.Fatalf("Start(%q): %v", addr, err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, srv *memredis.Server) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", srv.URL(), err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTTLExpiresInRealTime(t *testing.T) {
	t.Parallel()
	srv := start(t, "127.0.0.1:0")
	rdb := client(t, srv)
	ctx := context.Background()

	if err := rdb.Set(ctx, "lock", "me", 300*time.Millisecond).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := rdb.Set(ctx, "keep", "me", time.Hour).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	// Nobody fast-forwards the server: only its own clock can expire the key.
	waitFor(t, 5*time.Second, "key with a 300ms TTL expired", func() bool {
		n, err := rdb.Exists(ctx, "lock").Result()
		if err != nil {
			t.Fatalf("EXISTS: %v", err)
		}
		return n == 0
	})
	ttl, err := rdb.TTL(ctx, "keep").Result()
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	if ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL(keep) = %s, want in (0, 1h]", ttl)
	}
	// SET NX succeeds again once the lock expired, as locks rely on.
	ok, err := rdb.SetNX(ctx, "lock", "you", time.Second).Result()
	if err != nil || !ok {
		t.Errorf("SETNX after expiry = %v, %v; want true, nil", ok, err)
	}
}

func TestTimeFollowsWallClock(t *testing.T) {
	t.Parallel()
	rdb := client(t, start(t, "127.0.0.1:0"))
	before := time.Now()
	got, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatalf("TIME: %v", err)
	}
	after := time.Now()
	// TIME has microsecond resolution; allow for the truncation.
	if got.Before(before.Add(-time.Millisecond)) || got.After(after.Add(time.Millisecond)) {
		t.Errorf("TIME = %s, want between %s and %s", got, before, after)
	}
}

func TestRestartOnSameAddress(t *testing.T) {
	t.Parallel()
	first, err := memredis.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	addr := first.Addr()
	rdb := client(t, first)
	if err := rdb.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	first.Close()
	first.Close() // a second Close is harmless

	second := start(t, addr)
	if second.Addr() != addr {
		t.Fatalf("Addr() = %q, want %q", second.Addr(), addr)
	}
	// The same client reconnects; the new server starts empty.
	err = rdb.Get(context.Background(), "k").Err()
	if !errors.Is(err, redis.Nil) {
		t.Errorf("GET k on restarted server: err = %v, want redis.Nil", err)
	}
}

func TestStartBadAddress(t *testing.T) {
	t.Parallel()
	srv := start(t, "127.0.0.1:0")
	if _, err := memredis.Start(srv.Addr()); err == nil {
		t.Fatal("Start on a taken address: err = nil, want an error")
	}
}

func TestAsynqEnqueueAndProcess(t *testing.T) {
	t.Parallel()
	srv := start(t, "127.0.0.1:0")
	opt, err := asynq.ParseRedisURI(srv.URL())
	if err != nil {
		t.Fatalf("ParseRedisURI: %v", err)
	}

	got := make(chan string, 1)
	mux := asynq.NewServeMux()
	mux.HandleFunc("test:echo", func(_ context.Context, task *asynq.Task) error {
		got <- string(task.Payload())
		return nil
	})
	worker := asynq.NewServer(opt, asynq.Config{
		Concurrency:     1,
		LogLevel:        asynq.FatalLevel,
		ShutdownTimeout: time.Second,
	})
	cl := asynq.NewClient(opt)
	t.Cleanup(func() { _ = cl.Close() })
	if _, err := cl.Enqueue(asynq.NewTask("test:echo", []byte("hello")), asynq.TaskID("t1")); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	// The task id makes a second enqueue a conflict, as the outbox relay
	// expects. The worker starts after it: a task already processed (and
	// deleted) frees its id.
	if _, err := cl.Enqueue(asynq.NewTask("test:echo", []byte("again")), asynq.TaskID("t1")); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("second Enqueue with the same id: err = %v, want ErrTaskIDConflict", err)
	}
	if err := worker.Start(mux); err != nil {
		t.Fatalf("server start: %v", err)
	}
	t.Cleanup(worker.Shutdown)
	select {
	case p := <-got:
		if p != "hello" {
			t.Errorf("payload = %q, want %q", p, "hello")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("task not processed within 30s")
	}
}
