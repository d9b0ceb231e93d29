package jobs

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultQueueMetricsMaxAge is how long a queue snapshot is served before
// Redis is asked again, when NewQueueMetrics is given no positive max age.
const DefaultQueueMetricsMaxAge = 10 * time.Second

// QueueMetrics is a prometheus.Collector exposing asynq's per-queue sizes,
// latency and processed/failed totals.
//
// Each queue costs a few Redis round trips (including a Lua script that
// samples memory), so scrapes are served from a snapshot at most MaxAge old;
// the refresh runs under a mutex, so concurrent scrapes share one round of
// Redis calls. When Redis fails, the last good snapshot is kept and
// moim_queue_metrics_up drops to 0, so dashboards show stale-but-known values
// and an alert can fire on the gauge.
type QueueMetrics struct {
	insp   *asynq.Inspector
	maxAge time.Duration
	logger *slog.Logger

	sizeDesc      *prometheus.Desc
	latencyDesc   *prometheus.Desc
	processedDesc *prometheus.Desc
	failedDesc    *prometheus.Desc
	pausedDesc    *prometheus.Desc
	upDesc        *prometheus.Desc

	mu        sync.Mutex
	snapshot  []*asynq.QueueInfo
	up        bool
	fetchedAt time.Time // zero until the first attempt

	refreshes atomic.Int64
}

// NewQueueMetrics returns a collector reading queues through insp. A maxAge
// <= 0 means DefaultQueueMetricsMaxAge. The caller owns insp and closes it.
func NewQueueMetrics(insp *asynq.Inspector, maxAge time.Duration, logger *slog.Logger) *QueueMetrics {
	if maxAge <= 0 {
		maxAge = DefaultQueueMetricsMaxAge
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &QueueMetrics{
		insp:   insp,
		maxAge: maxAge,
		logger: logger,
		sizeDesc: prometheus.NewDesc("moim_queue_size",
			"Tasks in an asynq queue by state.", []string{"queue", "state"}, nil),
		latencyDesc: prometheus.NewDesc("moim_queue_latency_seconds",
			"Age of the oldest pending task in an asynq queue.", []string{"queue"}, nil),
		processedDesc: prometheus.NewDesc("moim_queue_processed_total",
			"Tasks processed (succeeded or failed) in an asynq queue, as counted by asynq.", []string{"queue"}, nil),
		failedDesc: prometheus.NewDesc("moim_queue_failed_total",
			"Tasks that failed in an asynq queue, as counted by asynq.", []string{"queue"}, nil),
		pausedDesc: prometheus.NewDesc("moim_queue_paused",
			"1 when an asynq queue is paused.", []string{"queue"}, nil),
		upDesc: prometheus.NewDesc("moim_queue_metrics_up",
			"1 when the last read of queue metrics from Redis succeeded.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *QueueMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.sizeDesc
	ch <- m.latencyDesc
	ch <- m.processedDesc
	ch <- m.failedDesc
	ch <- m.pausedDesc
	ch <- m.upDesc
}

// Collect implements prometheus.Collector. It refreshes the snapshot when it
// is older than MaxAge and emits it.
func (m *QueueMetrics) Collect(ch chan<- prometheus.Metric) {
	snap, up := m.current(time.Now())
	for _, q := range snap {
		for _, s := range queueSizes(q) {
			ch <- prometheus.MustNewConstMetric(m.sizeDesc, prometheus.GaugeValue, float64(s.n), q.Queue, s.state)
		}
		ch <- prometheus.MustNewConstMetric(m.latencyDesc, prometheus.GaugeValue, q.Latency.Seconds(), q.Queue)
		ch <- prometheus.MustNewConstMetric(m.processedDesc, prometheus.CounterValue, float64(q.ProcessedTotal), q.Queue)
		ch <- prometheus.MustNewConstMetric(m.failedDesc, prometheus.CounterValue, float64(q.FailedTotal), q.Queue)
		paused := 0.0
		if q.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(m.pausedDesc, prometheus.GaugeValue, paused, q.Queue)
	}
	upValue := 0.0
	if up {
		upValue = 1
	}
	ch <- prometheus.MustNewConstMetric(m.upDesc, prometheus.GaugeValue, upValue)
}

// Refreshes reports how many rounds of Redis reads the collector has made;
// operators and tests use it to see the cache working.
func (m *QueueMetrics) Refreshes() int64 { return m.refreshes.Load() }

// current returns the snapshot, refreshing it first when it is stale. The
// mutex is held across the refresh on purpose: scrapes that arrive meanwhile
// wait for its result instead of starting their own round of Redis calls.
func (m *QueueMetrics) current(now time.Time) ([]*asynq.QueueInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.fetchedAt.IsZero() && now.Sub(m.fetchedAt) < m.maxAge {
		return m.snapshot, m.up
	}
	m.refreshes.Add(1)
	snap, err := m.read()
	// A failed attempt also counts as fresh, so a Redis outage costs one
	// attempt per MaxAge rather than one per scrape.
	m.fetchedAt = now
	if err != nil {
		m.up = false
		m.logger.Warn("queue metrics refresh failed", slog.Any("err", err))
		return m.snapshot, m.up
	}
	m.snapshot, m.up = snap, true
	return m.snapshot, m.up
}

// read fetches every queue's info from Redis.
func (m *QueueMetrics) read() ([]*asynq.QueueInfo, error) {
	names, err := m.insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	snap := make([]*asynq.QueueInfo, 0, len(names))
	for _, name := range names {
		info, err := m.insp.GetQueueInfo(name)
		if err != nil {
			return nil, fmt.Errorf("read queue %q: %w", name, err)
		}
		snap = append(snap, info)
	}
	return snap, nil
}

// stateSize is one value of moim_queue_size.
type stateSize struct {
	state string
	n     int
}

// queueSizes returns q's task counts by the state label they are exported as.
func queueSizes(q *asynq.QueueInfo) []stateSize {
	return []stateSize{
		{"pending", q.Pending},
		{"active", q.Active},
		{"scheduled", q.Scheduled},
		{"retry", q.Retry},
		{"archived", q.Archived},
		{"completed", q.Completed},
	}
}
