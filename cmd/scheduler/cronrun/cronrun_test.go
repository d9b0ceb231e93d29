package cronrun_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Seoul even on hosts without a zoneinfo database

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moim/moim/cmd/scheduler/cronrun"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

const testTaskType = "test:tick"

// testTick is a tick whose task carries its slot, like the real ones.
func testTick(name, spec string) jobs.Tick {
	return jobs.Tick{
		Name:  name,
		Spec:  spec,
		Queue: jobs.QueueTicks,
		Build: func(slot time.Time) (jobs.Task, error) {
			b, err := json.Marshal(jobs.TickPayload{Slot: slot.UTC().Format(time.RFC3339)})
			return jobs.Task{Type: testTaskType, Payload: b, Queue: jobs.QueueTicks}, err
		},
	}
}

// fixedClock returns a NowFunc that always reads t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// logRecorder is a slog handler that keeps messages so a test can wait for
// a runner to reach a point that leaves nothing else to observe.
type logRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newLogRecorder() logRecorder { return logRecorder{mu: new(sync.Mutex), msgs: new([]string)} }

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.msgs = append(*l.msgs, r.Message)
	return nil
}
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logRecorder) WithGroup(string) slog.Handler      { return l }

func (l logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range *l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// counter reads one series of a runner's counters from its registry.
func counter(t *testing.T, reg *prometheus.Registry, name, tick string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "tick" && lp.GetValue() == tick {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{tick=%q}", name, tick)
	return 0
}

func enqueued(t *testing.T, reg *prometheus.Registry, tick string) float64 {
	return counter(t, reg, "moim_scheduler_ticks_enqueued_total", tick)
}

func duplicates(t *testing.T, reg *prometheus.Registry, tick string) float64 {
	return counter(t, reg, "moim_scheduler_ticks_duplicate_total", tick)
}

func failures(t *testing.T, reg *prometheus.Registry, tick string) float64 {
	return counter(t, reg, "moim_scheduler_tick_errors_total", tick)
}

// newRunner builds a runner with its own registry.
func newRunner(t *testing.T, p cronrun.Params) (*cronrun.Runner, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p.Registerer = reg
	r, err := cronrun.New(p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, reg
}

// start runs r until the returned stop is called (or the test ends); stop
// waits for Run to return and fails the test if it returned an error.
func start(t *testing.T, r *cronrun.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slotCounter is a worker handler that counts runs per task id.
type slotCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *slotCounter) ProcessTask(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	var p jobs.TickPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode payload: %v: %w", err, asynq.SkipRetry)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[id+" "+p.Slot]++
	return nil
}

func (c *slotCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		m[k] = v
	}
	return m
}

// startWorker runs a real asynq server on the worker's queues that counts the
// test tick's runs.
func startWorker(t *testing.T, opt asynq.RedisConnOpt) *slotCounter {
	t.Helper()
	c := &slotCounter{counts: map[string]int{}}
	mux := asynq.NewServeMux()
	mux.Handle(testTaskType, c)
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:       4,
		Queues:            jobs.WithTickQueue(nil), // a worker's default weights
		TaskCheckInterval: 20 * time.Millisecond,
		LogLevel:          asynq.ErrorLevel,
		ShutdownTimeout:   2 * time.Second,
	})
	if err := srv.Start(mux); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return c
}

// drained reports whether nothing is left to run on the ticks' queue.
func drained(t *testing.T, insp *asynq.Inspector) bool {
	t.Helper()
	qi, err := insp.GetQueueInfo(jobs.QueueTicks)
	if err != nil {
		return false // the queue does not exist until the first enqueue
	}
	return qi.Pending == 0 && qi.Active == 0 && qi.Scheduled == 0 && qi.Retry == 0
}

func newInspector(t *testing.T, opt asynq.RedisConnOpt) *asynq.Inspector {
	t.Helper()
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	return insp
}

// Two schedulers on one Redis, the second a few hundred milliseconds late
// (so the first one's task has usually completed before the second enqueues
// it): every slot still runs exactly once, because the finished task keeps its
// id for the retention and the late enqueue conflicts.
func TestTwoRunnersRunEachSlotOnce(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	worker := startWorker(t, opt)
	insp := newInspector(t, opt)
	tick := testTick("every-second", "* * * * * *")
	params := cronrun.Params{
		Redis:         opt,
		Ticks:         []jobs.Tick{tick},
		CatchUpWindow: time.Minute,
	}

	ra, regA := newRunner(t, params)
	rb, regB := newRunner(t, params)
	stopA := start(t, ra)
	waitFor(t, 5*time.Second, "the first runner's first slot to run", func() bool {
		return len(worker.snapshot()) > 0
	})
	// Start B 400 ms into a second: A fired that second's slot at its start
	// and the worker has had time to finish it.
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 400*time.Millisecond).Sub(now))
	stopB := start(t, rb)

	attemptsB := func() float64 {
		return enqueued(t, regB, tick.Name) + duplicates(t, regB, tick.Name) + failures(t, regB, tick.Name)
	}
	waitFor(t, 15*time.Second, "five slots run and three attempts by the late runner", func() bool {
		return len(worker.snapshot()) >= 5 && attemptsB() >= 3
	})
	stopA()
	stopB()
	waitFor(t, 5*time.Second, "the queue to drain", func() bool { return drained(t, insp) })

	counts := worker.snapshot()
	for key, n := range counts {
		if n != 1 {
			t.Errorf("slot %s ran %d times, want 1", key, n)
		}
		id, slot, _ := strings.Cut(key, " ")
		at, err := time.Parse(time.RFC3339, slot)
		if err != nil {
			t.Errorf("slot %q: %v", slot, err)
		}
		if want := cronrun.TaskID(tick.Name, at); id != want {
			t.Errorf("task id = %q, want %q (the payload's slot)", id, want)
		}
		info, err := insp.GetTaskInfo(jobs.QueueTicks, id)
		if err != nil {
			t.Errorf("task %s: %v", id, err)
		} else if info.State != asynq.TaskStateCompleted {
			t.Errorf("task %s state = %v, want completed (kept for its retention)", id, info.State)
		}
	}
	enq := enqueued(t, regA, tick.Name) + enqueued(t, regB, tick.Name)
	if int(enq) != len(counts) {
		t.Errorf("enqueued = %v, want %d (one per slot run)", enq, len(counts))
	}
	if f := failures(t, regA, tick.Name) + failures(t, regB, tick.Name); f != 0 {
		t.Errorf("errors = %v, want 0", f)
	}
	// Every slot B tried was A's too, so at least one attempt met the
	// other's task.
	if d := duplicates(t, regA, tick.Name) + duplicates(t, regB, tick.Name); d < 1 {
		t.Errorf("duplicates = %v, want at least 1", d)
	}
	// The retained ticks stay in their own queue: the business queues'
	// completed lists hold none of them.
	for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow} {
		done, err := insp.ListCompletedTasks(q)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatalf("list completed %s: %v", q, err)
		}
		if len(done) != 0 {
			t.Errorf("queue %s holds %d completed tasks, want 0 (ticks go to %s)", q, len(done), jobs.QueueTicks)
		}
	}
}

// A runner started after a slot passed enqueues that slot (only the latest
// missed one) on start; after it ran, a restart meets the finished task and
// does not run it again.
func TestRestartCatchesUpLatestMissedSlotOnce(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	worker := startWorker(t, opt)
	insp := newInspector(t, opt)
	tick := testTick("ten-min", "*/10 * * * *")
	// 09:47:30; the window holds slots 08:50 … 09:40, of which only the
	// latest is due.
	now := time.Date(2026, 3, 10, 9, 47, 30, 0, time.UTC)
	const wantID = "tick:ten_min:20260310T094000Z"
	params := cronrun.Params{
		Redis:         opt,
		Ticks:         []jobs.Tick{tick},
		CatchUpWindow: time.Hour,
		NowFunc:       fixedClock(now),
	}

	first, reg1 := newRunner(t, params)
	stop := start(t, first)
	waitFor(t, 5*time.Second, "the missed slot to run", func() bool {
		return worker.snapshot()[wantID+" 2026-03-10T09:40:00Z"] == 1
	})
	stop()
	if got := enqueued(t, reg1, tick.Name); got != 1 {
		t.Errorf("first start enqueued = %v, want 1", got)
	}

	restarted, reg2 := newRunner(t, params)
	stop = start(t, restarted)
	waitFor(t, 5*time.Second, "the restart to meet the finished slot", func() bool {
		return duplicates(t, reg2, tick.Name) == 1
	})
	stop()
	waitFor(t, 5*time.Second, "the queue to drain", func() bool { return drained(t, insp) })

	if got := enqueued(t, reg2, tick.Name); got != 0 {
		t.Errorf("restart enqueued = %v, want 0", got)
	}
	counts := worker.snapshot()
	if len(counts) != 1 {
		t.Errorf("runs = %v, want only %s once", counts, wantID)
	}
	completed, err := insp.ListCompletedTasks(jobs.QueueTicks)
	if err != nil {
		t.Fatalf("list completed: %v", err)
	}
	if len(completed) != 1 || completed[0].ID != wantID {
		var ids []string
		for _, c := range completed {
			ids = append(ids, c.ID)
		}
		t.Errorf("completed tasks = %v, want [%s]", ids, wantID)
	}
}

// With no slot inside the catch-up window (or catch-up off) a start
// enqueues nothing.
func TestStartWithoutMissedSlotEnqueuesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		window time.Duration
	}{
		{name: "slot older than the window", window: 5 * time.Minute},
		{name: "catch-up off", window: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opt := jobstest.RedisOpt(t)
			insp := newInspector(t, opt)
			logs := newLogRecorder()
			tick := testTick("ten-min", "*/10 * * * *")
			r, reg := newRunner(t, cronrun.Params{
				Redis:         opt,
				Ticks:         []jobs.Tick{tick},
				CatchUpWindow: tt.window,
				NowFunc:       fixedClock(time.Date(2026, 3, 10, 9, 47, 30, 0, time.UTC)),
				Logger:        slog.New(logs),
			})
			stop := start(t, r)
			waitFor(t, 5*time.Second, "the runner to wait for its next slot", func() bool {
				return logs.count("tick waiting") > 0
			})
			stop()
			if got := enqueued(t, reg, tick.Name) + duplicates(t, reg, tick.Name); got != 0 {
				t.Errorf("enqueue attempts = %v, want 0", got)
			}
			if qs, err := insp.Queues(); err != nil || len(qs) != 0 {
				t.Errorf("queues = %v (err %v), want none", qs, err)
			}
		})
	}
}

// A daily spec read in Asia/Seoul fires at Seoul midnight, 15:00 UTC the day
// before, and the task id carries that instant in UTC.
func TestLocationIsHonoured(t *testing.T) {
	t.Parallel()
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatalf("load Asia/Seoul: %v", err)
	}
	opt := jobstest.RedisOpt(t)
	insp := newInspector(t, opt)
	now := time.Date(2026, 3, 10, 15, 30, 0, 0, time.UTC) // 00:30 on the 11th in Seoul
	ticks := []jobs.Tick{testTick("daily", "0 0 * * *"), testTick("daily-tz", "CRON_TZ=Asia/Seoul 0 0 * * *")}
	r, reg := newRunner(t, cronrun.Params{
		Redis:         opt,
		Ticks:         ticks,
		Location:      seoul,
		CatchUpWindow: time.Hour,
		NowFunc:       fixedClock(now),
	})

	wantNext := time.Date(2026, 3, 11, 15, 0, 0, 0, time.UTC)
	for _, tk := range ticks {
		next, ok := r.Next(tk.Name, now)
		if !ok || !next.Equal(wantNext) {
			t.Errorf("Next(%s) = %v, %v; want %v", tk.Name, next.UTC(), ok, wantNext)
		}
	}
	// The CRON_TZ prefix wins over the runner's location.
	utcRunner, _ := newRunner(t, cronrun.Params{Redis: opt, Ticks: ticks})
	if next, _ := utcRunner.Next("daily-tz", now); !next.Equal(wantNext) {
		t.Errorf("Next(daily-tz) in a UTC runner = %v, want %v", next.UTC(), wantNext)
	}
	if next, _ := utcRunner.Next("daily", now); !next.Equal(time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Next(daily) in a UTC runner = %v, want UTC midnight", next.UTC())
	}

	stop := start(t, r)
	waitFor(t, 5*time.Second, "the missed Seoul midnight to be enqueued", func() bool {
		return enqueued(t, reg, "daily") == 1 && enqueued(t, reg, "daily-tz") == 1
	})
	stop()
	for _, tk := range ticks {
		id := cronrun.TaskID(tk.Name, time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC))
		info, err := insp.GetTaskInfo(jobs.QueueTicks, id)
		if err != nil {
			t.Errorf("task %s: %v", id, err)
			continue
		}
		var p jobs.TickPayload
		if err := json.Unmarshal(info.Payload, &p); err != nil || p.Slot != "2026-03-10T15:00:00Z" {
			t.Errorf("task %s payload = %s (err %v), want slot 2026-03-10T15:00:00Z", id, info.Payload, err)
		}
		if info.Retention < cronrun.MinRetention {
			t.Errorf("task %s retention = %s, want at least %s", id, info.Retention, cronrun.MinRetention)
		}
	}
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	now := time.Date(2026, 3, 10, 9, 47, 30, 0, time.UTC)
	tests := []struct {
		name      string
		overrides map[string]string
		want      time.Time
	}{
		{name: "default spec", want: time.Date(2026, 3, 10, 9, 50, 0, 0, time.UTC)},
		{name: "descriptor", overrides: map[string]string{"outbox-prune": "@hourly"}, want: time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)},
		{name: "seconds field", overrides: map[string]string{"outbox-prune": "*/15 * * * * *"}, want: time.Date(2026, 3, 10, 9, 47, 45, 0, time.UTC)},
		{name: "spaces trimmed", overrides: map[string]string{"outbox-prune": "  5 * * * *  "}, want: time.Date(2026, 3, 10, 10, 5, 0, 0, time.UTC)},
		{name: "every aligned to the epoch", overrides: map[string]string{"outbox-prune": "@every 90s"}, want: time.Date(2026, 3, 10, 9, 48, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newRunner(t, cronrun.Params{Redis: opt, Ticks: jobs.Ticks(), Overrides: tt.overrides})
			got, ok := r.Next(jobs.TickOutboxPrune, now)
			if !ok || !got.Equal(tt.want) {
				t.Errorf("Next = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}

// Two runners started at different times agree on @every slots, which
// robfig's own @every (counted from the call) would not.
func TestEverySlotsAgree(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	r, _ := newRunner(t, cronrun.Params{Redis: opt, Ticks: []jobs.Tick{testTick("e", "@every 7m")}})
	base := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	want, _ := r.Next("e", base)
	d := want.Sub(base)
	if d <= 0 || d > 7*time.Minute {
		t.Fatalf("Next(%v) = %v, want within 7m after it", base, want)
	}
	// Asked at any moment before the slot, as a second runner started later
	// would, the answer is the same slot.
	for _, at := range []time.Time{base.Add(d / 3), base.Add(d / 2).Add(250 * time.Millisecond), want.Add(-time.Nanosecond)} {
		if got, _ := r.Next("e", at); !got.Equal(want) {
			t.Errorf("Next(%v) = %v, want %v", at, got, want)
		}
	}
	if want.Unix()%(7*60) != 0 {
		t.Errorf("slot %v is not a multiple of 7m since the epoch", want)
	}
	if got, _ := r.Next("e", want); got.Sub(want) != 7*time.Minute {
		t.Errorf("slot after %v = %v, want 7m later", want, got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	tests := []struct {
		name      string
		params    cronrun.Params
		wantLines []string
	}{
		{
			name:      "unknown override",
			params:    cronrun.Params{Redis: opt, Ticks: jobs.Ticks(), Overrides: map[string]string{"nope": "@hourly"}},
			wantLines: []string{`tick "nope": no such tick to override`},
		},
		{
			name:      "bad override spec",
			params:    cronrun.Params{Redis: opt, Ticks: jobs.Ticks(), Overrides: map[string]string{"outbox-prune": "61 * * * *"}},
			wantLines: []string{`tick "outbox-prune": override spec "61 * * * *": end of range (61) above maximum (59)`},
		},
		{
			name: "every problem, one line each",
			params: cronrun.Params{Redis: opt, Ticks: jobs.Ticks(), Overrides: map[string]string{
				"outbox-prune": "@fortnightly", "zzz": "* * * * *", "aaa": "* * * * *",
			}},
			wantLines: []string{
				`tick "outbox-prune": override spec "@fortnightly": unrecognized descriptor`,
				`tick "aaa": no such tick to override`,
				`tick "zzz": no such tick to override`,
			},
		},
		{
			name:      "never fires",
			params:    cronrun.Params{Redis: opt, Ticks: jobs.Ticks(), Overrides: map[string]string{"outbox-prune": "0 0 30 2 *"}},
			wantLines: []string{`tick "outbox-prune": override spec "0 0 30 2 *": never fires`},
		},
		{
			name:      "negative window",
			params:    cronrun.Params{Redis: opt, Ticks: jobs.Ticks(), CatchUpWindow: -time.Minute},
			wantLines: []string{"cronrun: negative catch-up window -1m0s"},
		},
		{
			name:      "no redis",
			params:    cronrun.Params{Ticks: jobs.Ticks()},
			wantLines: []string{"cronrun: no redis connection"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cronrun.New(tt.params)
			if err == nil {
				t.Fatalf("New succeeded, want %q", tt.wantLines)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wantLines) {
				t.Fatalf("error has %d lines, want %d:\n%v", len(lines), len(tt.wantLines), err)
			}
			for i, want := range tt.wantLines {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d = %q, want prefix %q", i, lines[i], want)
				}
			}
		})
	}
}
func TestTaskID(t *testing.T) {
	t.Parallel()
	seoul := time.FixedZone("KST", 9*3600)
	slot := time.Date(2026, 3, 11, 0, 0, 0, 0, seoul)
	got := cronrun.TaskID("outbox-prune", slot)
	if want := "tick:outbox_prune:20260310T150000Z"; got != want {
		t.Errorf("TaskID = %q, want %q", got, want)
	}
	// The queue UI shows an id up to its first dash.
	if strings.Contains(got, "-") {
		t.Errorf("TaskID = %q holds a dash; the queue UI would cut it", got)
	}
}
