package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

// createPing stores a fresh, unprocessed ping and returns its id.
func createPing(t *testing.T, bdb *bun.DB, requestID string) string {
	t.Helper()
	p := &domain.Ping{RequestID: requestID, CreatedAt: clocktest.Now().UTC().Truncate(time.Second)}
	if err := (db.Pings{}).Create(context.Background(), bdb, p); err != nil {
		t.Fatalf("create ping: %v", err)
	}
	if p.ID == "" {
		t.Fatal("create ping: no id")
	}
	return p.ID
}

func findPing(t *testing.T, bdb *bun.DB, id string) *domain.Ping {
	t.Helper()
	p, err := db.Pings{}.FindByID(context.Background(), bdb, id)
	if err != nil {
		t.Fatalf("find ping %s: %v", id, err)
	}
	return p
}

func pingTask(t *testing.T, pingID, queue, requestID string) (*asynq.Task, []asynq.Option) {
	t.Helper()
	task, err := jobs.NewPingTask(pingID, queue)
	if err != nil {
		t.Fatalf("NewPingTask: %v", err)
	}
	at := asynq.NewTaskWithHeaders(task.Type, task.Payload, map[string]string{jobs.HeaderRequestID: requestID})
	return at, []asynq.Option{asynq.Queue(task.Queue), asynq.MaxRetry(task.MaxRetry)}
}

func TestPingHandlerIsIdempotent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		id := createPing(t, bdb, "req-idem")
		// Whole seconds, so every dialect stores the instant exactly.
		first := time.Date(2026, 3, 11, 9, 0, 0, 0, time.UTC)
		later := first.Add(time.Hour)
		task, _ := pingTask(t, id, "", "req-idem")

		h := &jobs.PingHandler{DB: bdb, NowFunc: func() time.Time { return first }}
		if err := h.ProcessTask(ctx, task); err != nil {
			t.Fatalf("first run: %v", err)
		}
		got := findPing(t, bdb, id)
		if got.ProcessedAt == nil || !got.ProcessedAt.Equal(first) {
			t.Fatalf("processed_at after first run = %v, want %s", got.ProcessedAt, first)
		}

		// A redelivered task finds the work done and changes nothing.
		h.NowFunc = func() time.Time { return later }
		if err := h.ProcessTask(ctx, task); err != nil {
			t.Fatalf("second run: %v", err)
		}
		got = findPing(t, bdb, id)
		if got.ProcessedAt == nil || !got.ProcessedAt.Equal(first) {
			t.Errorf("processed_at after second run = %v, want still %s", got.ProcessedAt, first)
		}
	})
}

// Concurrent deliveries of one ping (asynq may redeliver while a slow first
// attempt still runs) all succeed and exactly one of them does the work.
func TestPingHandlerConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		id := createPing(t, bdb, "req-conc")
		task, _ := pingTask(t, id, "", "req-conc")
		logger, logs := newTestLogger()
		const workers = 8
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for i := range workers {
			at := time.Date(2026, 3, 11, 9, 0, i, 0, time.UTC)
			h := &jobs.PingHandler{DB: bdb, Logger: logger, NowFunc: func() time.Time { return at }}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- h.ProcessTask(context.Background(), task)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("ProcessTask = %v, want nil", err)
			}
		}
		if got := logs.lines(`msg="ping processed"`, "ping_id="+id); len(got) != 1 {
			t.Errorf("winners = %d, want 1; log:\n%s", len(got), logs)
		}
		if got := logs.lines(`msg="ping already processed"`, "ping_id="+id); len(got) != workers-1 {
			t.Errorf("no-op deliveries = %d, want %d", len(got), workers-1)
		}
		if findPing(t, bdb, id).ProcessedAt == nil {
			t.Error("processed_at not set")
		}
	})
}

func TestPingHandlerRejectsForGood(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		tests := []struct {
			name    string
			payload []byte
		}{
			{"not json", []byte("{")},
			{"wrong shape", []byte(`{"ping_id": 42}`)},
			{"empty id", []byte(`{"ping_id": ""}`)},
			{"no id", []byte(`{}`)},
			{"unknown ping", []byte(`{"ping_id": "no-such-ping"}`)},
		}
		h := &jobs.PingHandler{DB: bdb}
		for _, tt := range tests {
			err := h.ProcessTask(context.Background(), asynq.NewTask(jobs.TypePing, tt.payload))
			if !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("%s: ProcessTask = %v, want an error wrapping SkipRetry", tt.name, err)
			}
		}
	})
}

// TestPingEndToEnd enqueues ping tasks on every queue through Redis and
// waits for a real worker (NewServer running NewMux) to mark the rows.
func TestPingEndToEnd(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		opt := jobstest.RedisOpt(t)
		logger, logs := newTestLogger()
		m := jobs.NewMetrics(prometheus.NewRegistry())
		mux, err := jobs.NewMux(jobs.Deps{DB: bdb, Logger: logger, Metrics: m})
		if err != nil {
			t.Fatalf("NewMux: %v", err)
		}
		cl := startServer(t, opt, mux, 2, logger)

		queues := []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow}
		ids := make([]string, len(queues))
		for i, q := range queues {
			reqID := fmt.Sprintf("req-e2e-%s", q)
			ids[i] = createPing(t, bdb, reqID)
			task, opts := pingTask(t, ids[i], q, reqID)
			if _, err := cl.Enqueue(task, opts...); err != nil {
				t.Fatalf("enqueue ping on %s: %v", q, err)
			}
		}
		for i, id := range ids {
			eventually(t, 30*time.Second, "ping on "+queues[i]+" processed", func() bool {
				return findPing(t, bdb, id).ProcessedAt != nil
			})
		}
		eventually(t, 10*time.Second, "pings counted", func() bool {
			return testutil.ToFloat64(m.Processed.WithLabelValues(jobs.TypePing)) == float64(len(queues))
		})
		if got := testutil.ToFloat64(m.Failed.WithLabelValues(jobs.TypePing)); got != 0 {
			t.Errorf("failed{%s} = %v, want 0; log:\n%s", jobs.TypePing, got, logs)
		}
		for i, q := range queues {
			parts := []string{`msg="ping processed"`, "ping_id=" + ids[i], "request_id=req-e2e-" + q}
			if got := logs.lines(parts...); len(got) != 1 {
				t.Errorf("lines with %q = %d, want 1; log:\n%s", parts, len(got), logs)
			}
		}
	})
}
