package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/jobs"
)

// ownRedis starts a redis-server of the test's own on a free port, without
// persistence, so the test may FLUSHALL it; the test is skipped when the
// binary is missing.
func ownRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed: queue re-registration after FLUSHALL needs a Redis of the test's own")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer func() { _ = rdb.Close() }()
	for deadline := time.Now().Add(10 * time.Second); rdb.Ping(context.Background()).Err() != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr
}

// TestQueuesComeBackAfterFlushall: asynq's client remembers per process
// that it registered a queue, so after a FLUSHALL its enqueues no longer
// register it and the inspector (deduplicated enqueues, /metrics) finds no
// queue; KeepQueuesRegistered puts the names back within its interval.
func TestQueuesComeBackAfterFlushall(t *testing.T) {
	t.Parallel()
	addr := ownRedis(t)
	ctx := context.Background()
	opt := asynq.RedisClientOpt{Addr: addr}
	client := asynq.NewClient(opt)
	insp := asynq.NewInspector(opt)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = client.Close(); _ = insp.Close(); _ = rdb.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(jobs.NewQueueMetrics(insp, time.Millisecond, nil))

	enqueue := func(id string) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("test:noop", nil), asynq.Queue(jobs.QueueCritical), asynq.TaskID(id))
		return err
	}
	series := `moim_queue_size{queue=critical,state=pending}`
	if err := enqueue("before"); err != nil {
		t.Fatal(err)
	}
	if _, err := insp.GetTaskInfo(jobs.QueueCritical, "before"); err != nil {
		t.Fatalf("inspect before the flush: %v", err)
	}
	if _, ok := scrape(t, reg)[series]; !ok {
		t.Fatalf("%s missing before the flush", series)
	}

	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// The failure this guards against: the same process enqueues, and
	// cannot see what it enqueued.
	if err := enqueue("lost"); err != nil {
		t.Fatal(err)
	}
	if _, err := insp.GetTaskInfo(jobs.QueueCritical, "lost"); !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatalf("inspect after the flush = %v, want queue not found (asynq remembers the queue per process)", err)
	}

	const interval = 50 * time.Millisecond
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- jobs.KeepQueuesRegistered(kctx, rdb, jobs.QueueNames(map[string]int{"probe": 1}), interval, nil)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("KeepQueuesRegistered = %v", err)
		}
	})
	// Flushed again while it runs: the next interval repairs it.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	bound := 20 * interval // the interval, with room for a slow machine
	deadline := time.Now().Add(bound)
	for {
		_, ierr := insp.GetTaskInfo(jobs.QueueCritical, "after")
		_, ok := scrape(t, reg)[series]
		if errors.Is(ierr, asynq.ErrTaskNotFound) && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s of the flush: inspect = %v, %s present %v", bound, ierr, series, ok)
		}
		time.Sleep(interval / 5)
	}
	if err := enqueue("after"); err != nil {
		t.Fatal(err)
	}
	info, err := insp.GetTaskInfo(jobs.QueueCritical, "after")
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("inspect after re-registration: %+v, %v", info, err)
	}
	names, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if fmt.Sprint(names) != "[critical default low probe ticks]" {
		t.Errorf("queues = %v, want critical, default, low, probe and ticks", names)
	}
	// The metrics serve the last refresh and refresh behind the scrape, so
	// the enqueue shows at a later scrape, not necessarily the next one.
	for deadline := time.Now().Add(bound); ; time.Sleep(interval / 5) {
		got := scrape(t, reg)[series]
		if got == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v within %s of re-registration, want 1", series, got, bound)
		}
	}
}

func TestQueueNames(t *testing.T) {
	t.Parallel()
	got := jobs.QueueNames(map[string]int{"low": 1, "mail": 2})
	if fmt.Sprint(got) != "[critical default low mail ticks]" {
		t.Errorf("QueueNames = %v", got)
	}
}
