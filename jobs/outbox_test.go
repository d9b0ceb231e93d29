package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/memredis"
)

// outboxQueue returns a queue name of t's own, so tests sharing one Redis
// database never see each other's tasks.
func outboxQueue(t *testing.T) string {
	t.Helper()
	return "ob" + db.NewPublicID()[:12]
}

// relayBundle is a relay under test with its own metrics registry.
type relayBundle struct {
	relay *jobs.Relay
	reg   *prometheus.Registry
}

func newRelay(t *testing.T, bdb *bun.DB, p jobs.RelayParams) relayBundle {
	t.Helper()
	reg := prometheus.NewRegistry()
	p.Registerer = reg
	r, err := jobs.NewRelay(bdb, p)
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("relay Close: %v", err)
		}
	})
	return relayBundle{relay: r, reg: reg}
}

// metric returns the value of the counter or gauge name in b's registry.
func (b relayBundle) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// startRelay runs r until the test ends and checks that Run then returns nil
// (and never before).
func startRelay(t *testing.T, r *jobs.Relay) (stopped func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil after cancel", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return after its context was cancelled")
		}
	})
	return func() bool {
		select {
		case err := <-done:
			done <- err
			return true
		default:
			return false
		}
	}
}

// waitFor polls cond until it holds or within has passed.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func inspector(t *testing.T, opt asynq.RedisConnOpt) *asynq.Inspector {
	t.Helper()
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	return insp
}

// queued returns every task in queue (pending or scheduled), keyed by id,
// failing t if an id shows up twice.
func queued(t *testing.T, insp *asynq.Inspector, queue string) map[string]*asynq.TaskInfo {
	t.Helper()
	out := map[string]*asynq.TaskInfo{}
	list := []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){insp.ListPendingTasks, insp.ListScheduledTasks}
	for _, ls := range list {
		for page := 1; ; page++ {
			infos, err := ls(queue, asynq.PageSize(500), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				return out
			}
			if err != nil {
				t.Fatalf("list tasks of %s: %v", queue, err)
			}
			for _, ti := range infos {
				if _, dup := out[ti.ID]; dup {
					t.Fatalf("task %s is in queue %s twice", ti.ID, queue)
				}
				out[ti.ID] = ti
			}
			if len(infos) < 500 {
				break
			}
		}
	}
	return out
}

func outboxRows(t *testing.T, bdb *bun.DB) []db.OutboxRow {
	t.Helper()
	var rows []db.OutboxRow
	if err := bdb.NewSelect().Model(&rows).Order("id").Scan(context.Background()); err != nil {
		t.Fatalf("select outbox: %v", err)
	}
	return rows
}

func unsent(bdb *bun.DB) func() (int, error) {
	return func() (int, error) { return db.Outbox{}.CountUnsent(context.Background(), bdb) }
}

func testTask(t *testing.T, queue string, n int) jobs.Task {
	t.Helper()
	return jobs.Task{Type: "test:outbox", Payload: fmt.Appendf(nil, `{"n":%d}`, n), Queue: queue, MaxRetry: 2}
}

// commit enqueues tasks in one committed transaction.
func commit(t *testing.T, bdb *bun.DB, tasks ...jobs.Task) {
	t.Helper()
	err := db.RunInTx(context.Background(), bdb, func(ctx context.Context, tx bun.Tx) error {
		return jobs.Enqueue(ctx, tx, tasks...)
	})
	if err != nil {
		t.Fatalf("commit tasks: %v", err)
	}
}

func TestEnqueueValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		task jobs.Task
	}{
		{name: "empty type", task: jobs.Task{Payload: []byte(`{}`)}},
		{name: "blank type", task: jobs.Task{Type: "  "}},
		{name: "type too long", task: jobs.Task{Type: string(make([]byte, 129))}},
		{name: "queue with spaces", task: jobs.Task{Type: "a:b", Queue: " low"}},
		{name: "queue too long", task: jobs.Task{Type: "a:b", Queue: string(slices.Repeat([]byte("q"), 65))}},
		{name: "negative max retry", task: jobs.Task{Type: "a:b", MaxRetry: -1}},
	}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				ok := jobs.Task{Type: "a:b", Payload: []byte(`{}`)}
				if err := jobs.Enqueue(ctx, bdb, ok, tc.task); err == nil {
					t.Fatalf("Enqueue(%+v) = nil, want an error", tc.task)
				}
			})
		}
		if err := jobs.Enqueue(context.Background(), bdb); err != nil {
			t.Fatalf("Enqueue() with no tasks = %v, want nil", err)
		}
		if rows := outboxRows(t, bdb); len(rows) != 0 {
			t.Fatalf("%d rows written by rejected calls, want 0", len(rows))
		}
	})
}

func TestNewRelayRejectsBadParams(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	tests := []struct {
		name string
		db   *bun.DB
		p    jobs.RelayParams
	}{
		{name: "no database", p: jobs.RelayParams{Redis: opt}},
		{name: "no redis", db: bdb},
		{name: "negative poll", db: bdb, p: jobs.RelayParams{Redis: opt, PollInterval: -time.Second}},
		{name: "negative batch", db: bdb, p: jobs.RelayParams{Redis: opt, BatchSize: -1}},
		{name: "negative retention", db: bdb, p: jobs.RelayParams{Redis: opt, Retention: -time.Hour}},
		{name: "negative lease", db: bdb, p: jobs.RelayParams{Redis: opt, Lease: -time.Second}},
		{name: "negative enqueue timeout", db: bdb, p: jobs.RelayParams{Redis: opt, EnqueueTimeout: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if r, err := jobs.NewRelay(tc.db, tc.p); err == nil {
				_ = r.Close()
				t.Fatalf("NewRelay = nil error, want one")
			}
		})
	}
}

// TestRelayRolledBackNeverSent: rows of a rolled-back transaction do not
// exist, so a relay pass sends only the committed control task.
func TestRelayRolledBackNeverSent(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	insp := inspector(t, opt)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		queue := outboxQueue(t)
		b := newRelay(t, bdb, jobs.RelayParams{Redis: opt})

		errRollback := errors.New("rollback")
		err := b.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			if err := jobs.Enqueue(ctx, tx, testTask(t, queue, 1), testTask(t, queue, 2)); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("RunInTx = %v, want the rollback error", err)
		}
		commit(t, bdb, testTask(t, queue, 3))

		n, err := b.relay.Drain(ctx)
		if err != nil || n != 1 {
			t.Fatalf("Drain = %d, %v, want 1 row (the committed one)", n, err)
		}
		rows := outboxRows(t, bdb)
		if len(rows) != 1 {
			t.Fatalf("outbox has %d rows, want only the committed one", len(rows))
		}
		tasks := queued(t, insp, queue)
		if len(tasks) != 1 || tasks[rows[0].TaskID] == nil {
			t.Fatalf("queue holds %d tasks, want just %s", len(tasks), rows[0].TaskID)
		}
		if got := string(tasks[rows[0].TaskID].Payload); got != `{"n":3}` {
			t.Errorf("payload = %s, want the committed task's", got)
		}
	})
}

// TestRelayThreeRelaysExactlyOnce races three running relays over 300 rows
// committed in 30 transactions: every row becomes exactly one task.
func TestRelayThreeRelaysExactlyOnce(t *testing.T) {
	t.Parallel()
	const txs, perTx, relays = 30, 10, 3
	opt := jobstest.RedisOpt(t)
	insp := inspector(t, opt)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		queue := outboxQueue(t)
		bs := make([]relayBundle, relays)
		for i := range bs {
			bs[i] = newRelay(t, bdb, jobs.RelayParams{Redis: opt, PollInterval: 50 * time.Millisecond, BatchSize: 25})
			startRelay(t, bs[i].relay)
		}

		var wg sync.WaitGroup
		errs := make(chan error, txs)
		for i := range txs {
			wg.Go(func() {
				tasks := make([]jobs.Task, perTx)
				for j := range tasks {
					tasks[j] = testTask(t, queue, i*perTx+j)
				}
				// Committing through a relay wakes it, as the API does.
				errs <- bs[i%relays].relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
					return jobs.Enqueue(ctx, tx, tasks...)
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
		}

		waitFor(t, 60*time.Second, "all rows sent", func() (bool, error) {
			n, err := unsent(bdb)()
			return n == 0, err
		})
		rows := outboxRows(t, bdb)
		if len(rows) != txs*perTx {
			t.Fatalf("outbox has %d rows, want %d", len(rows), txs*perTx)
		}
		tasks := queued(t, insp, queue)
		if len(tasks) != len(rows) {
			t.Errorf("queue holds %d tasks, want %d", len(tasks), len(rows))
		}
		for _, r := range rows {
			if r.SentAt.IsZero() {
				t.Errorf("row %d not marked sent", r.ID)
			}
			if tasks[r.TaskID] == nil {
				t.Errorf("row %d: task %s not in asynq", r.ID, r.TaskID)
			}
		}
		// Each row was marked by exactly one relay: overlapping claims would
		// count a row twice (as a conflict on the second enqueue).
		var relayed, conflicts float64
		for _, b := range bs {
			relayed += b.metric(t, "moim_outbox_relayed_total")
			conflicts += b.metric(t, "moim_outbox_relay_conflicts_total")
		}
		if relayed != float64(len(rows)) || conflicts != 0 {
			t.Errorf("relays counted %v relayed and %v conflicts, want %d and 0", relayed, conflicts, len(rows))
		}
	})
}

// TestRelayAfterCrashBetweenEnqueueAndMark: a task already in asynq under the
// row's task id (a relay died before marking) is not enqueued again, and the
// row gets marked.
func TestRelayAfterCrashBetweenEnqueueAndMark(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	insp := inspector(t, opt)
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		queue := outboxQueue(t)
		commit(t, bdb, testTask(t, queue, 1), testTask(t, queue, 2))
		rows := outboxRows(t, bdb)

		// What the crashed relay managed before dying: the first row's task.
		crashed := rows[0]
		if _, err := client.EnqueueContext(ctx,
			asynq.NewTaskWithHeaders(crashed.Type, crashed.Payload, crashed.Headers),
			asynq.TaskID(crashed.TaskID), asynq.Queue(crashed.Queue), asynq.MaxRetry(crashed.MaxRetry)); err != nil {
			t.Fatalf("enqueue as the crashed relay: %v", err)
		}

		b := newRelay(t, bdb, jobs.RelayParams{Client: client})
		n, err := b.relay.Drain(ctx)
		if err != nil || n != 2 {
			t.Fatalf("Drain = %d, %v, want 2", n, err)
		}
		if got := b.metric(t, "moim_outbox_relay_conflicts_total"); got != 1 {
			t.Errorf("conflicts = %v, want 1", got)
		}
		tasks := queued(t, insp, queue)
		if len(tasks) != 2 || tasks[rows[0].TaskID] == nil || tasks[rows[1].TaskID] == nil {
			t.Fatalf("queue holds %d tasks, want exactly the two rows' tasks", len(tasks))
		}
		for _, r := range outboxRows(t, bdb) {
			if r.SentAt.IsZero() {
				t.Errorf("row %d not marked sent", r.ID)
			}
		}
	})
}

// TestRelayRedisDown: with Redis gone, rows stay unsent, failures are
// recorded on them and the relay keeps running; once Redis is back on the
// same address the rows flow.
func TestRelayRedisDown(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		queue := outboxQueue(t)

		srv, err := memredis.Start("127.0.0.1:0")
		if err != nil {
			t.Fatalf("start redis: %v", err)
		}
		addr := srv.Addr()
		srv.Close()
		opt := asynq.RedisClientOpt{Addr: addr, DialTimeout: time.Second}

		commit(t, bdb, testTask(t, queue, 1), testTask(t, queue, 2), testTask(t, queue, 3))
		b := newRelay(t, bdb, jobs.RelayParams{Redis: opt, PollInterval: 20 * time.Millisecond})
		stopped := startRelay(t, b.relay)

		// The counter moves just after the rows are updated, so wait for both.
		waitFor(t, 30*time.Second, "two failed attempts recorded on every row and counted", func() (bool, error) {
			for _, r := range outboxRows(t, bdb) {
				if r.Attempts < 2 {
					return false, nil
				}
			}
			return b.metric(t, "moim_outbox_relay_errors_total") >= 2, nil
		})
		for _, r := range outboxRows(t, bdb) {
			if !r.SentAt.IsZero() {
				t.Fatalf("row %d marked sent while Redis was down", r.ID)
			}
			if r.LastError == "" {
				t.Errorf("row %d: no last error recorded", r.ID)
			}

		}
		if stopped() {
			t.Fatal("Run returned while Redis was down, want it to keep retrying")
		}
		if got := b.metric(t, "moim_outbox_relay_errors_total"); got < 2 {
			t.Errorf("relay errors = %v, want >= 2", got)
		}
		if got := b.metric(t, "moim_outbox_unsent"); got != 3 {
			t.Errorf("unsent gauge = %v, want 3", got)
		}

		var back *memredis.Server
		waitFor(t, 10*time.Second, "redis restarted on "+addr, func() (bool, error) {
			back, err = memredis.Start(addr)
			return err == nil, nil
		})
		t.Cleanup(back.Close)
		waitFor(t, 30*time.Second, "rows sent after Redis came back", func() (bool, error) {
			n, err := unsent(bdb)()
			return n == 0, err
		})
		insp := inspector(t, opt)
		tasks := queued(t, insp, queue)
		if len(tasks) != 3 {
			t.Fatalf("restarted Redis holds %d tasks, want 3", len(tasks))
		}
		for _, r := range outboxRows(t, bdb) {
			if tasks[r.TaskID] == nil {
				t.Errorf("row %d: task %s missing", r.ID, r.TaskID)
			}
			if !r.ClaimedUntil.IsZero() {
				t.Errorf("row %d: still claimed after it was sent", r.ID)
			}
		}
	})
}

// TestRelayWake: with an hour-long poll interval only a Wake can move a row
// committed after the relay went idle.
func TestRelayWake(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	insp := inspector(t, opt)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		queue := outboxQueue(t)
		commit(t, bdb, testTask(t, queue, 1))
		b := newRelay(t, bdb, jobs.RelayParams{Redis: opt, PollInterval: time.Hour})
		startRelay(t, b.relay)
		waitFor(t, 30*time.Second, "the first pass", func() (bool, error) {
			n, err := unsent(bdb)()
			return n == 0, err
		})

		err := b.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			return jobs.Enqueue(ctx, tx, testTask(t, queue, 2))
		})
		if err != nil {
			t.Fatalf("RunInTx: %v", err)
		}
		waitFor(t, 30*time.Second, "the woken pass", func() (bool, error) {
			n, err := unsent(bdb)()
			return n == 0, err
		})
		if got := len(queued(t, insp, queue)); got != 2 {
			t.Fatalf("queue holds %d tasks, want 2", got)
		}
	})
}

// TestRelayTaskFields: what asynq receives matches the task: type, payload,
// queue, retries, retention, delay and the request id header.
func TestRelayTaskFields(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	insp := inspector(t, opt)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		queue := outboxQueue(t)
		at := time.Now().Add(time.Hour).Truncate(time.Second)
		ctx := domain.WithRequestID(context.Background(), "req-42")
		commit(t, bdb, jobs.Task{Type: "test:now", Payload: []byte(`{"a":1}`), Queue: queue, MaxRetry: 7})
		err := db.RunInTx(context.Background(), bdb, func(_ context.Context, tx bun.Tx) error {
			return jobs.Enqueue(ctx, tx, jobs.Task{Type: "test:later", Payload: []byte(`{"b":2}`), Queue: queue, ProcessAt: at})
		})
		if err != nil {
			t.Fatalf("enqueue with request id: %v", err)
		}

		b := newRelay(t, bdb, jobs.RelayParams{Redis: opt, Retention: 90 * time.Minute})
		if n, err := b.relay.Drain(context.Background()); err != nil || n != 2 {
			t.Fatalf("Drain = %d, %v, want 2", n, err)
		}
		rows := outboxRows(t, bdb)
		tasks := queued(t, insp, queue)
		now, later := tasks[rows[0].TaskID], tasks[rows[1].TaskID]
		if now == nil || later == nil {
			t.Fatalf("tasks %s, %s not both in asynq (%d there)", rows[0].TaskID, rows[1].TaskID, len(tasks))
		}
		if now.Type != "test:now" || string(now.Payload) != `{"a":1}` || now.MaxRetry != 7 || now.State != asynq.TaskStatePending {
			t.Errorf("immediate task = %s %s retry %d %v, want test:now {\"a\":1} retry 7 pending",
				now.Type, now.Payload, now.MaxRetry, now.State)
		}
		if _, ok := now.Headers[jobs.HeaderRequestID]; ok {
			t.Errorf("task without a request id got header %q", now.Headers[jobs.HeaderRequestID])
		}
		if now.Retention != 90*time.Minute {
			t.Errorf("retention = %v, want 1h30m", now.Retention)
		}
		if got := later.Headers[jobs.HeaderRequestID]; got != "req-42" {
			t.Errorf("request id header = %q, want req-42", got)
		}
		if later.State != asynq.TaskStateScheduled || !later.NextProcessAt.Equal(at) {
			t.Errorf("delayed task: %v at %v, want scheduled at %v", later.State, later.NextProcessAt, at)
		}
		if later.MaxRetry != 0 || later.Queue != queue {
			t.Errorf("delayed task: retry %d queue %s, want 0 and %s", later.MaxRetry, later.Queue, queue)
		}
	})
}

// TestRelayMetricsShareRegistry: relays in one process may share a
// registry; the second reuses the first one's collectors.
func TestRelayMetricsShareRegistry(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	reg := prometheus.NewRegistry()
	for range 2 {
		r, err := jobs.NewRelay(bdb, jobs.RelayParams{Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, Registerer: reg})
		if err != nil {
			t.Fatalf("NewRelay: %v", err)
		}
		_ = r.Close()
	}
}

// hungRedis listens on 127.0.0.1 and accepts connections but never answers
// them, like a Redis that is stuck. The channel closes when the first bytes
// of a request arrive.
func hungRedis(t *testing.T) (addr string, asked <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		once  sync.Once
		wg    sync.WaitGroup
	)
	got := make(chan struct{})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						once.Do(func() { close(got) })
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), got
}

// TestRelayHungRedisLeavesDatabaseFree: while the relay waits on a Redis
// that accepts connections and never answers, it holds no transaction, so
// another write to the database completes before the relay's enqueue times
// out (on SQLite it would otherwise wait for the single write lock). The
// batch's rows then stay unsent with the failure recorded and their claim
// released.
func TestRelayHungRedisLeavesDatabaseFree(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		queue := outboxQueue(t)
		addr, asked := hungRedis(t)
		commit(t, bdb, testTask(t, queue, 1), testTask(t, queue, 2), testTask(t, queue, 3))
		var claimed []int64
		for _, r := range outboxRows(t, bdb) {
			claimed = append(claimed, r.ID)
		}

		// go-redis gives up on its own after ReadTimeout; longer than the
		// relay's timeout, so the relay's is the one that fires.
		opt := asynq.RedisClientOpt{Addr: addr, DialTimeout: time.Second, ReadTimeout: 20 * time.Second, WriteTimeout: 20 * time.Second}
		b := newRelay(t, bdb, jobs.RelayParams{Redis: opt, EnqueueTimeout: 3 * time.Second})
		enqueued := make(chan struct{})
		jobs.SetAfterEnqueue(b.relay, func() { close(enqueued) })

		type drained struct {
			n   int
			err error
		}
		drainDone := make(chan drained, 1)
		go func() {
			n, err := b.relay.Drain(context.Background())
			drainDone <- drained{n, err}
		}()
		select {
		case <-asked:
		case <-time.After(30 * time.Second):
			t.Fatal("the relay never sent the hung Redis a request")
		}

		writeDone := make(chan error, 1)
		go func() {
			// A new row, and an update of the claimed rows themselves: the
			// first needs SQLite's write lock, the second the row locks a
			// claim transaction would hold on PostgreSQL and MySQL.
			writeDone <- db.RunInTx(context.Background(), bdb, func(ctx context.Context, tx bun.Tx) error {
				if err := jobs.Enqueue(ctx, tx, testTask(t, queue, 4)); err != nil {
					return err
				}
				_, err := tx.NewUpdate().Model((*db.OutboxRow)(nil)).
					Set("last_error = ?", "probe").
					Where("id IN (?)", bun.List(claimed)).
					Exec(ctx)
				return err
			})
		}()
		select {
		case err := <-writeDone:
			if err != nil {
				t.Fatalf("write beside the stuck relay: %v", err)
			}
		case <-enqueued:
			t.Fatal("a write waited for the relay's enqueue to time out: the relay held the database while calling Redis")
		}

		var d drained
		select {
		case d = <-drainDone:
		case <-time.After(30 * time.Second):
			t.Fatal("Drain did not return after its enqueue timeout")
		}
		if d.err == nil || d.n != 0 {
			t.Fatalf("Drain = %d, %v, want 0 and an error", d.n, d.err)
		}
		rows := outboxRows(t, bdb)
		if len(rows) != 4 {
			t.Fatalf("outbox has %d rows, want 4", len(rows))
		}
		for i, r := range rows {
			wantAttempts := 1
			if i == 3 {
				wantAttempts = 0 // committed after the claim
			}
			if !r.SentAt.IsZero() || r.Attempts != wantAttempts || !r.ClaimedUntil.IsZero() {
				t.Errorf("row %d: sent %v, attempts %d, claimed until %v; want unsent, %d attempts, unclaimed",
					r.ID, r.SentAt, r.Attempts, r.ClaimedUntil, wantAttempts)
			}
			if wantAttempts == 1 && (r.LastError == "" || r.LastError == "probe") {
				t.Errorf("row %d: last error %q, want the relay's failure", r.ID, r.LastError)
			}
		}
		if got := b.metric(t, "moim_outbox_relay_errors_total"); got != 1 {
			t.Errorf("relay errors = %v, want 1", got)
		}
	})
}

// crashAfterEnqueue runs one Drain of a relay that stops between handing its
// batch to asynq and marking it, as a relay killed there does, and returns
// the rows it left claimed.
func crashAfterEnqueue(t *testing.T, bdb *bun.DB, p jobs.RelayParams) []db.OutboxRow {
	t.Helper()
	b := newRelay(t, bdb, p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jobs.SetCrashAfterEnqueue(b.relay, cancel)
	if n, err := b.relay.Drain(ctx); !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("crashing Drain = %d, %v, want 0 and context.Canceled", n, err)
	}
	rows := outboxRows(t, bdb)
	for _, r := range rows {
		if !r.SentAt.IsZero() || r.ClaimedUntil.IsZero() {
			t.Fatalf("row %d after the crash: sent %v, claimed until %v; want unsent and claimed", r.ID, r.SentAt, r.ClaimedUntil)
		}
	}
	return rows
}

// TestRelayStoppedBetweenEnqueueAndMark: a real relay stops after its
// enqueues and before its marks. Once the lease has passed, three relays
// race over the rows: each row is taken by one of them, meets its task id in
// asynq and is marked, and every task is in asynq exactly once.
func TestRelayStoppedBetweenEnqueueAndMark(t *testing.T) {
	t.Parallel()
	const rowsN, relays = 20, 3
	opt := jobstest.RedisOpt(t)
	insp := inspector(t, opt)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		queue := outboxQueue(t)
		tasks := make([]jobs.Task, rowsN)
		for i := range tasks {
			tasks[i] = testTask(t, queue, i)
		}
		commit(t, bdb, tasks...)

		rows := crashAfterEnqueue(t, bdb, jobs.RelayParams{Redis: opt, Lease: 200 * time.Millisecond, EnqueueTimeout: 30 * time.Second})
		if got := len(queued(t, insp, queue)); got != rowsN {
			t.Fatalf("after the crash asynq holds %d tasks, want %d", got, rowsN)
		}
		leaseEnd := rows[0].ClaimedUntil
		waitFor(t, 30*time.Second, "the lease to pass", func() (bool, error) {
			return time.Now().After(leaseEnd.Add(time.Millisecond)), nil
		})

		bs := make([]relayBundle, relays)
		for i := range bs {
			bs[i] = newRelay(t, bdb, jobs.RelayParams{Redis: opt, BatchSize: 3})
		}
		var wg sync.WaitGroup
		errs := make(chan error, relays)
		for _, b := range bs {
			wg.Go(func() {
				if _, err := b.relay.Drain(context.Background()); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Drain: %v", err)
		}

		// Every relay drained until its claim came back short, and marked
		// all it claimed, so nothing is left.
		if n, err := unsent(bdb)(); err != nil || n != 0 {
			t.Fatalf("unsent rows = %d, %v, want 0", n, err)
		}
		tasks2 := queued(t, insp, queue)
		if len(tasks2) != rowsN {
			t.Errorf("asynq holds %d tasks, want %d", len(tasks2), rowsN)
		}
		for _, r := range outboxRows(t, bdb) {
			if tasks2[r.TaskID] == nil {
				t.Errorf("row %d: task %s not in asynq", r.ID, r.TaskID)
			}
			if r.SentAt.IsZero() || !r.ClaimedUntil.IsZero() {
				t.Errorf("row %d: sent %v, claimed until %v; want sent and unclaimed", r.ID, r.SentAt, r.ClaimedUntil)
			}
		}
		var relayed, conflicts float64
		for _, b := range bs {
			relayed += b.metric(t, "moim_outbox_relayed_total")
			conflicts += b.metric(t, "moim_outbox_relay_conflicts_total")
		}
		if relayed != rowsN || conflicts != rowsN {
			t.Errorf("relays counted %v relayed and %v conflicts, want %d of each (every row once, each already in asynq)",
				relayed, conflicts, rowsN)
		}
	})
}

// TestRelayLeaseExpiry: rows a relay claimed and abandoned are left alone by
// another relay until the lease has passed, and relayed by it after.
func TestRelayLeaseExpiry(t *testing.T) {
	t.Parallel()
	const rowsN = 5
	opt := jobstest.RedisOpt(t)
	insp := inspector(t, opt)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		queue := outboxQueue(t)
		tasks := make([]jobs.Task, rowsN)
		for i := range tasks {
			tasks[i] = testTask(t, queue, i)
		}
		commit(t, bdb, tasks...)
		rows := crashAfterEnqueue(t, bdb, jobs.RelayParams{Redis: opt, Lease: time.Hour})

		b := newRelay(t, bdb, jobs.RelayParams{Redis: opt})
		var shift atomic.Int64
		jobs.SetClock(b.relay, func() time.Time { return time.Now().Add(time.Duration(shift.Load())) })

		// A minute before the lease ends: nothing to claim.
		shift.Store(int64(time.Until(rows[0].ClaimedUntil) - time.Minute))
		if n, err := b.relay.Drain(ctx); err != nil || n != 0 {
			t.Fatalf("Drain within the lease = %d, %v, want 0", n, err)
		}
		if n, err := unsent(bdb)(); err != nil || n != rowsN {
			t.Fatalf("unsent rows within the lease = %d, %v, want %d", n, err, rowsN)
		}

		// Just after it ends: all of them.
		shift.Store(int64(time.Until(rows[0].ClaimedUntil) + time.Millisecond))
		if n, err := b.relay.Drain(ctx); err != nil || n != rowsN {
			t.Fatalf("Drain after the lease = %d, %v, want %d", n, err, rowsN)
		}
		if got := b.metric(t, "moim_outbox_relay_conflicts_total"); got != rowsN {
			t.Errorf("conflicts = %v, want %d (the crashed relay had enqueued them all)", got, rowsN)
		}
		if got := len(queued(t, insp, queue)); got != rowsN {
			t.Errorf("asynq holds %d tasks, want %d", got, rowsN)
		}
	})
}

// TestRelayShutdownFinishesBatch: a relay told to stop while a batch is in
// flight still marks that batch, so a deploy never leaves rows waiting out
// their lease.
func TestRelayShutdownFinishesBatch(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	insp := inspector(t, opt)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		queue := outboxQueue(t)
		commit(t, bdb, testTask(t, queue, 1), testTask(t, queue, 2), testTask(t, queue, 3))
		b := newRelay(t, bdb, jobs.RelayParams{Redis: opt})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		jobs.SetAfterEnqueue(b.relay, cancel) // the stop arrives between enqueue and mark
		if _, err := b.relay.Drain(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Drain after stop = %v, want nil or context.Canceled", err)
		}
		if ctx.Err() == nil {
			t.Fatal("the relay never reached the point between enqueue and mark")
		}
		for _, r := range outboxRows(t, bdb) {
			if r.SentAt.IsZero() || !r.ClaimedUntil.IsZero() {
				t.Errorf("row %d: sent %v, claimed until %v; want sent and unclaimed", r.ID, r.SentAt, r.ClaimedUntil)
			}
		}
		if n := len(queued(t, insp, queue)); n != 3 {
			t.Errorf("asynq holds %d tasks, want 3", n)
		}
	})
}

// TestRelayRowBelowFloor: a row whose id is below one the relay has
// already claimed (its transaction committed after a later one) is skipped
// by the claims that start after the highest id, and taken by the next
// full claim, a poll interval later.
func TestRelayRowBelowFloor(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	insp := inspector(t, opt)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		queue := outboxQueue(t)
		b := newRelay(t, bdb, jobs.RelayParams{Redis: opt, PollInterval: time.Minute})
		now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
		jobs.SetClock(b.relay, func() time.Time { return now })
		row := func(id int64, n int) db.OutboxRow {
			task := testTask(t, queue, n)
			return db.OutboxRow{ID: id, TaskID: fmt.Sprintf("ob_floor_%s_%d", queue, n), Queue: queue, Type: task.Type,
				Payload: task.Payload, MaxRetry: task.MaxRetry}
		}
		if err := (db.Outbox{}).Insert(ctx, bdb, []db.OutboxRow{row(1000, 1)}); err != nil {
			t.Fatalf("insert: %v", err)
		}
		if n, err := b.relay.Drain(ctx); err != nil || n != 1 {
			t.Fatalf("first Drain = %d, %v, want 1", n, err)
		}
		if err := (db.Outbox{}).Insert(ctx, bdb, []db.OutboxRow{row(5, 2), row(2000, 3)}); err != nil {
			t.Fatalf("insert: %v", err)
		}
		if n, err := b.relay.Drain(ctx); err != nil || n != 1 {
			t.Fatalf("Drain within the poll interval = %d, %v, want 1 (the row above the floor)", n, err)
		}
		now = now.Add(time.Minute)
		if n, err := b.relay.Drain(ctx); err != nil || n != 1 {
			t.Fatalf("Drain a poll interval later = %d, %v, want 1 (the row below the floor)", n, err)
		}
		if got := len(queued(t, insp, queue)); got != 3 {
			t.Errorf("asynq holds %d tasks, want 3", got)
		}
	})
}
