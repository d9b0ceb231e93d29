package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

// logBuffer is a slog destination the worker's goroutines may write to while
// the test reads it.
type logBuffer struct{ jobstest.LogBuffer }

// startServer runs a real worker (NewServer) for mux until the test ends and
// returns a client for the same Redis.
func startServer(t *testing.T, opt asynq.RedisClientOpt, mux *asynq.ServeMux, concurrency int, logger *slog.Logger) *asynq.Client {
	t.Helper()
	srv := jobs.NewServer(jobs.ServerParams{
		Redis:             opt,
		Concurrency:       concurrency,
		ShutdownTimeout:   5 * time.Second,
		TaskCheckInterval: 50 * time.Millisecond,
		Logger:            logger,
	})
	if err := srv.Start(mux); err != nil {
		t.Fatalf("server start: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	cl := asynq.NewClient(opt)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// lines returns the log lines containing every one of parts.
func (b *logBuffer) lines(parts ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		ok := l != ""
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// newTestLogger logs everything, debug included, as text into a buffer.
func newTestLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// eventually polls cond every 20ms until it holds, failing t after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// chain wraps h in the middleware the way NewMux does.
func chain(logger *slog.Logger, m *jobs.Metrics, h asynq.Handler) asynq.Handler {
	return jobs.Logging(logger)(jobs.Instrument(m)(jobs.Recover(logger)(h)))
}

func TestMiddlewareDirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		headers   map[string]string
		handler   func(ctx context.Context) error
		wantErr   string // "" for success
		wantLine  []string
		wantFails float64
	}{
		{
			name:     "success carries request id",
			headers:  map[string]string{jobs.HeaderRequestID: "req-ok"},
			handler:  func(context.Context) error { return nil },
			wantLine: []string{"level=DEBUG", `msg="task finished"`, "request_id=req-ok", "type=test:direct", "duration="},
		},
		{
			name:      "error is logged at warn",
			headers:   map[string]string{jobs.HeaderRequestID: "req-err"},
			handler:   func(context.Context) error { return errors.New("provider down") },
			wantErr:   "provider down",
			wantLine:  []string{"level=WARN", `msg="task failed"`, "request_id=req-err", `err="provider down"`, "will_retry=false"},
			wantFails: 1,
		},
		{
			name:      "panic becomes an error with its stack logged",
			handler:   func(context.Context) error { panic("boom") },
			wantErr:   "test:direct handler panicked: boom",
			wantLine:  []string{"level=ERROR", `msg="task panicked"`, "panic=boom", "stack=", "goroutine"},
			wantFails: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newTestLogger()
			m := jobs.NewMetrics(prometheus.NewRegistry())
			var gotReqID string
			h := chain(logger, m, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
				gotReqID = domain.RequestID(ctx)
				return tt.handler(ctx)
			}))

			err := h.ProcessTask(context.Background(), asynq.NewTaskWithHeaders("test:direct", nil, tt.headers))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ProcessTask = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Fatalf("ProcessTask = %v, want %q", err, tt.wantErr)
			}
			if want := tt.headers[jobs.HeaderRequestID]; gotReqID != want {
				t.Errorf("request id in handler ctx = %q, want %q", gotReqID, want)
			}
			if got := logs.lines(tt.wantLine...); len(got) != 1 {
				t.Errorf("log lines with %q = %d, want 1; log:\n%s", tt.wantLine, len(got), logs)
			}
			if got := logs.lines(`msg="task started"`, "type=test:direct"); len(got) != 1 {
				t.Errorf("start lines = %d, want 1; log:\n%s", len(got), logs)
			}
			if got := testutil.ToFloat64(m.Processed.WithLabelValues("test:direct")); got != 1 {
				t.Errorf("processed = %v, want 1", got)
			}
			if got := testutil.ToFloat64(m.Failed.WithLabelValues("test:direct")); got != tt.wantFails {
				t.Errorf("failed = %v, want %v", got, tt.wantFails)
			}
			if got := testutil.CollectAndCount(m.Duration); got != 1 {
				t.Errorf("duration series = %d, want 1", got)
			}
		})
	}
}

// TestMiddlewareOnServer runs the middleware inside a real asynq server: a
// panicking task fails and is archived, the worker keeps going, the request
// id travels from the task header into the handler and the logs, and the
// metrics count both tasks.
func TestMiddlewareOnServer(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	logger, logs := newTestLogger()
	m := jobs.NewMetrics(prometheus.NewRegistry())

	seen := make(chan string, 10)
	mux := asynq.NewServeMux()
	mux.Use(jobs.Logging(logger), jobs.Instrument(m), jobs.Recover(logger))
	mux.HandleFunc("test:panic", func(context.Context, *asynq.Task) error {
		var nilMap map[string]int
		nilMap["x"]++ // a runtime panic, the kind a bug causes
		return nil
	})
	mux.HandleFunc("test:ok", func(ctx context.Context, _ *asynq.Task) error {
		seen <- domain.RequestID(ctx)
		return nil
	})
	// One worker: it must survive the panic to run the next task.
	cl := startServer(t, opt, mux, 1, logger)
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })

	const panics = 3
	for i := range panics {
		task := asynq.NewTaskWithHeaders("test:panic", nil, map[string]string{jobs.HeaderRequestID: fmt.Sprintf("req-panic-%d", i)})
		if _, err := cl.Enqueue(task, asynq.Queue(jobs.QueueDefault), asynq.MaxRetry(0)); err != nil {
			t.Fatalf("enqueue panic task: %v", err)
		}
	}
	eventually(t, 30*time.Second, "panicking tasks archived", func() bool {
		info, err := insp.GetQueueInfo(jobs.QueueDefault)
		return err == nil && info.Archived == panics
	})

	okTask := asynq.NewTaskWithHeaders("test:ok", nil, map[string]string{jobs.HeaderRequestID: "req-ok-1"})
	if _, err := cl.Enqueue(okTask, asynq.Queue(jobs.QueueLow)); err != nil {
		t.Fatalf("enqueue ok task: %v", err)
	}
	select {
	case got := <-seen:
		if got != "req-ok-1" {
			t.Errorf("request id in handler = %q, want req-ok-1", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not process a task after the panics")
	}
	// The metrics middleware runs after the handler returns; wait for it.
	eventually(t, 10*time.Second, "ok task counted", func() bool {
		return testutil.ToFloat64(m.Processed.WithLabelValues("test:ok")) == 1
	})

	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"processed test:panic", testutil.ToFloat64(m.Processed.WithLabelValues("test:panic")), panics},
		{"failed test:panic", testutil.ToFloat64(m.Failed.WithLabelValues("test:panic")), panics},
		{"failed test:ok", testutil.ToFloat64(m.Failed.WithLabelValues("test:ok")), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	logChecks := []struct {
		name  string
		parts []string
		want  int
	}{
		{"panic stacks", []string{"level=ERROR", `msg="task panicked"`, "assignment to entry in nil map", "goroutine"}, panics},
		{"failed attempts", []string{"level=WARN", `msg="task failed"`, "type=test:panic", "will_retry=false", "queue=default"}, panics},
		{"archived tasks", []string{"level=ERROR", `msg="task archived"`, "type=test:panic", "request_id=req-panic-"}, panics},
		{"ok task finished", []string{"level=DEBUG", `msg="task finished"`, "type=test:ok", "request_id=req-ok-1", "queue=low", "task_id="}, 1},
	}
	for _, c := range logChecks {
		if got := logs.lines(c.parts...); len(got) != c.want {
			t.Errorf("%s: %d lines with %q, want %d; log:\n%s", c.name, len(got), c.parts, c.want, logs)
		}
	}
	if got := logs.lines("task_id=", "req-panic-0"); len(got) == 0 || strings.Contains(got[0], "task_id= ") {
		t.Errorf("panic task lines lack a task id: %q", got)
	}
}

// TestDeferredIsNotAFailure: a task that only waits for another worker is
// retried but neither logged as failed nor counted as a failure.
func TestDeferredIsNotAFailure(t *testing.T) {
	t.Parallel()
	logger, logs := newTestLogger()
	m := jobs.NewMetrics(nil)
	h := chain(logger, m, asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("waiting: %w", jobs.ErrDeferred)
	}))
	err := h.ProcessTask(context.Background(), asynq.NewTask("test:deferred", nil))
	if !errors.Is(err, jobs.ErrDeferred) {
		t.Fatalf("err = %v, want it passed on for a retry", err)
	}
	if got := testutil.ToFloat64(m.Failed.WithLabelValues("test:deferred")); got != 0 {
		t.Errorf("failed metric = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.Processed.WithLabelValues("test:deferred")); got != 1 {
		t.Errorf("processed metric = %v, want 1", got)
	}
	if lines := logs.lines("task failed"); len(lines) != 0 {
		t.Errorf("logged as failed: %v", lines)
	}
	if lines := logs.lines("task deferred"); len(lines) != 1 {
		t.Errorf("deferred lines = %v, want one", lines)
	}
}
