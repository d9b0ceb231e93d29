package jobs_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/memredis"
)

// scrape gathers g into "name{label=value,...}" → value.
func scrape(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// checkMetrics fails t for every wanted series that is missing or differs.
func checkMetrics(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing", k)
			continue
		}
		if g != w {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
}

type queueMetricsBundle struct {
	client  *asynq.Client
	insp    *asynq.Inspector
	metrics *jobs.QueueMetrics
	reg     *prometheus.Registry
}

// setupQueueMetrics registers a collector with maxAge over opt.
func setupQueueMetrics(t *testing.T, opt asynq.RedisClientOpt, maxAge time.Duration) queueMetricsBundle {
	t.Helper()
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	m := jobs.NewQueueMetrics(insp, maxAge, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	return queueMetricsBundle{client: client, insp: insp, metrics: m, reg: reg}
}

func enqueue(t *testing.T, c *asynq.Client, queue string, opts ...asynq.Option) *asynq.TaskInfo {
	t.Helper()
	info, err := c.Enqueue(asynq.NewTask("test:noop", nil), append(opts, asynq.Queue(queue))...)
	if err != nil {
		t.Fatalf("enqueue on %s: %v", queue, err)
	}
	return info
}

func TestQueueMetricsFollowTasks(t *testing.T) {
	t.Parallel()
	// A max age of 1ns makes every scrape read Redis.
	b := setupQueueMetrics(t, jobstest.RedisOpt(t), time.Nanosecond)

	first := enqueue(t, b.client, jobs.QueueCritical)
	enqueue(t, b.client, jobs.QueueCritical)
	enqueue(t, b.client, jobs.QueueLow, asynq.ProcessIn(time.Hour))

	steps := []struct {
		name   string
		action func(t *testing.T)
		want   map[string]float64
	}{
		{
			name:   "enqueued",
			action: func(*testing.T) {},
			want: map[string]float64{
				"moim_queue_size{queue=critical,state=pending}":   2,
				"moim_queue_size{queue=critical,state=scheduled}": 0,
				"moim_queue_size{queue=critical,state=archived}":  0,
				"moim_queue_size{queue=low,state=pending}":        0,
				"moim_queue_size{queue=low,state=scheduled}":      1,
				"moim_queue_processed_total{queue=critical}":      0,
				"moim_queue_failed_total{queue=critical}":         0,
				"moim_queue_paused{queue=critical}":               0,
				"moim_queue_metrics_up":                           1,
			},
		},
		{
			name: "archived and paused",
			action: func(t *testing.T) {
				if err := b.insp.ArchiveTask(jobs.QueueCritical, first.ID); err != nil {
					t.Fatalf("archive: %v", err)
				}
				if err := b.insp.PauseQueue(jobs.QueueLow); err != nil {
					t.Fatalf("pause: %v", err)
				}
			},
			want: map[string]float64{
				"moim_queue_size{queue=critical,state=pending}":  1,
				"moim_queue_size{queue=critical,state=archived}": 1,
				"moim_queue_size{queue=low,state=scheduled}":     1,
				"moim_queue_paused{queue=low}":                   1,
				"moim_queue_metrics_up":                          1,
			},
		},
	}
	for _, st := range steps {
		st.action(t)
		got := scrape(t, b.reg)
		t.Run(st.name, func(t *testing.T) { checkMetrics(t, got, st.want) })
	}
	if _, ok := scrape(t, b.reg)["moim_queue_latency_seconds{queue=critical}"]; !ok {
		t.Error("moim_queue_latency_seconds{queue=critical} missing")
	}
}

func TestQueueMetricsCachesScrapes(t *testing.T) {
	t.Parallel()
	b := setupQueueMetrics(t, jobstest.RedisOpt(t), time.Hour)
	enqueue(t, b.client, jobs.QueueDefault)

	// Concurrent scrapes of a cold cache must share one round of reads.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := b.reg.Gather(); err != nil {
				t.Errorf("gather: %v", err)
			}
		})
	}
	wg.Wait()
	if got := b.metrics.Refreshes(); got != 1 {
		t.Fatalf("refreshes after concurrent scrapes = %d, want 1", got)
	}

	// A task enqueued within MaxAge is not visible yet: the snapshot is served.
	enqueue(t, b.client, jobs.QueueDefault)
	checkMetrics(t, scrape(t, b.reg), map[string]float64{
		"moim_queue_size{queue=default,state=pending}": 1,
		"moim_queue_metrics_up":                        1,
	})
	if got := b.metrics.Refreshes(); got != 1 {
		t.Errorf("refreshes after a scrape within max age = %d, want 1", got)
	}
}

func TestQueueMetricsKeepSnapshotWhenRedisFails(t *testing.T) {
	t.Parallel()
	srv, err := memredis.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("start memredis: %v", err)
	}
	t.Cleanup(srv.Close)
	opt := asynq.RedisClientOpt{Addr: srv.Addr(), DialTimeout: time.Second}
	b := setupQueueMetrics(t, opt, time.Nanosecond)
	enqueue(t, b.client, jobs.QueueDefault)

	checkMetrics(t, scrape(t, b.reg), map[string]float64{
		"moim_queue_size{queue=default,state=pending}": 1,
		"moim_queue_metrics_up":                        1,
	})
	srv.Close()
	checkMetrics(t, scrape(t, b.reg), map[string]float64{
		"moim_queue_size{queue=default,state=pending}": 1, // last snapshot kept
		"moim_queue_metrics_up":                        0,
	})
	if got := b.metrics.Refreshes(); got != 2 {
		t.Errorf("refreshes = %d, want 2", got)
	}
}
