package jobs_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite"

	"github.com/moim/moim/jobs"
)

// unopenedDB is a *bun.DB that is never used: enough for wiring tests.
func unopenedDB(t *testing.T) *bun.DB {
	t.Helper()
	sqldb, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	bdb := bun.NewDB(sqldb, sqlitedialect.New())
	t.Cleanup(func() { _ = bdb.Close() })
	return bdb
}

func TestNewMuxRequiresDB(t *testing.T) {
	t.Parallel()
	if _, err := jobs.NewMux(jobs.Deps{}); err == nil || !strings.Contains(err.Error(), "DB") {
		t.Fatalf("NewMux without DB = %v, want an error naming DB", err)
	}
}

func TestNewMuxRoutesAndWraps(t *testing.T) {
	t.Parallel()
	logger, logs := newTestLogger()
	m := jobs.NewMetrics(prometheus.NewRegistry())
	mux, err := jobs.NewMux(jobs.Deps{DB: unopenedDB(t), Logger: logger, Metrics: m})
	if err != nil {
		t.Fatalf("NewMux: %v", err)
	}
	for _, typ := range []string{jobs.TypePing, jobs.TypeOutboxPrune} {
		if _, pattern := mux.Handler(asynq.NewTask(typ, nil)); pattern != typ {
			t.Errorf("NewMux routes %q to %q, want a handler of its own", typ, pattern)
		}
	}
	// A bad ping payload never reaches the database, so the unopened DB is
	// enough to see the middleware around a registered handler.
	task := asynq.NewTaskWithHeaders(jobs.TypePing, []byte("{"), map[string]string{jobs.HeaderRequestID: "req-mux"})
	err = mux.ProcessTask(context.Background(), task)
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("ProcessTask(bad ping) = %v, want SkipRetry", err)
	}
	if got := testutil.ToFloat64(m.Failed.WithLabelValues(jobs.TypePing)); got != 1 {
		t.Errorf("failed{%s} = %v, want 1", jobs.TypePing, got)
	}
	if got := logs.lines(`msg="task failed"`, "request_id=req-mux", "type="+jobs.TypePing); len(got) != 1 {
		t.Errorf("failure lines = %d, want 1; log:\n%s", len(got), logs)
	}
}

func TestNewMetricsRegistersOnGivenRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := jobs.NewMetrics(reg)
	m.Processed.WithLabelValues("a:b").Inc()
	m.Failed.WithLabelValues("a:b").Inc()
	m.Duration.WithLabelValues("a:b").Observe(0.1)
	n, err := testutil.GatherAndCount(reg, "moim_tasks_processed_total", "moim_tasks_failed_total", "moim_task_duration_seconds")
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if n != 3 {
		t.Errorf("series = %d, want 3", n)
	}
	// Registering twice on one registry is a wiring mistake caught at once.
	defer func() {
		if recover() == nil {
			t.Error("second NewMetrics on the same registry did not panic")
		}
	}()
	jobs.NewMetrics(reg)
}

// TestMetricsStartAtZero: every task type the mux serves, every delivery
// outcome, every matcher and admission outcome, and every transaction
// retry reason is a series at 0 before anything happened, so rates and
// alerts over failures work from the first scrape.
func TestMetricsStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := jobs.NewMetrics(reg)
	if _, err := jobs.NewMux(jobs.Deps{DB: unopenedDB(t), Metrics: m,
		MatchMetrics: jobs.NewMatchMetrics(reg), RoomMetrics: jobs.NewRoomMetrics(reg)}); err != nil {
		t.Fatal(err)
	}
	if err := jobs.RegisterTxMetrics(reg); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{jobs.TypePing, jobs.TypeNotifyDeliver, jobs.TypeMissionTransition, jobs.TypeRetention} {
		if got := testutil.ToFloat64(m.Failed.WithLabelValues(typ)); got != 0 {
			t.Errorf("failed{%s} = %v", typ, got)
		}
	}
	for name, want := range map[string]int{
		// One series a registered type (the image types need storage).
		"moim_tasks_failed_total":          jobs.TypeCount(jobs.Deps{}),
		"moim_deliveries_total":            3 * 4, // mail, sms, slack × sent, retry, failed, unknown
		"moim_matches_total":               2,     // MEAL, STUDY
		"moim_match_conflicts_total":       2,
		"moim_applications_expired_total":  2,
		"moim_room_requests_decided_total": 5,
		"moim_db_tx_retries_total":         4, // deadlock, serialization, lock_timeout, busy
		"moim_db_tx_gave_up_total":         1,
	} {
		n, err := testutil.GatherAndCount(reg, name)
		if err != nil {
			t.Fatalf("gather %s: %v", name, err)
		}
		if n != want {
			t.Errorf("%s: %d series, want %d", name, n, want)
		}
	}
}
