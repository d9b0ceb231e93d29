package jobs

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// Metrics are the task outcome collectors the worker middleware feeds, all
// labelled by task type. Type strings come from our own constants, so the
// label set stays small.
type Metrics struct {
	// Processed counts every finished attempt, failed or not (Prometheus
	// convention: the failure ratio is failed / processed).
	Processed *prometheus.CounterVec
	// Failed counts attempts that returned an error or panicked.
	Failed *prometheus.CounterVec
	// Duration observes how long each attempt ran.
	Duration *prometheus.HistogramVec
	// Deliveries counts delivery outcomes by channel and result: sent,
	// retry, failed, and unknown (found claimed after a crash: maybe sent,
	// never resent; someone should look).
	Deliveries *prometheus.CounterVec
}

// NewMetrics creates the task collectors and registers them on reg. It
// panics if they are already registered there, as MustRegister does: that is
// a wiring mistake to catch at startup. A nil reg leaves them unregistered,
// which suits tests that do not read them.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_tasks_processed_total",
			Help: "Task attempts finished by the worker, by task type.",
		}, []string{"type"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_tasks_failed_total",
			Help: "Task attempts that returned an error or panicked, by task type.",
		}, []string{"type"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "moim_task_duration_seconds",
			Help: "Time one task attempt took in its handler, by task type.",
			// From a quick DB update to a slow mail provider or image resize.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"type"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_deliveries_total",
			Help: "Notification delivery outcomes by channel (mail, sms, slack) and result (sent, retry, failed, unknown).",
		}, []string{"channel", "result"}),
	}
	// Every outcome is a series from the start, so a rate over it and an
	// alert on it work before the first failure.
	for _, c := range []domain.Channel{domain.ChannelMail, domain.ChannelSMS, domain.ChannelSlack} {
		for _, result := range deliveryResults {
			m.Deliveries.WithLabelValues(strings.ToLower(c.String()), result)
		}
	}
	if reg != nil {
		reg.MustRegister(m.Processed, m.Failed, m.Duration, m.Deliveries)
	}
	return m
}

// deliveryResults are the values of moim_deliveries_total's result label.
var deliveryResults = []string{"sent", "retry", "failed", "unknown"}

// touch makes the series of task type typ exist at zero.
func (m *Metrics) touch(typ string) {
	m.Processed.WithLabelValues(typ)
	m.Failed.WithLabelValues(typ)
	m.Duration.WithLabelValues(typ)
}

// txRetryCollector exports db.TxRetries: transactions run again after a
// deadlock, a serialization failure, a lock timeout or a busy SQLite, and
// those given up on. Every reason is there from the start, at zero.
type txRetryCollector struct {
	retries, gaveUp *prometheus.Desc
}

// RegisterTxMetrics registers the transaction retry counters on reg, for a
// process that runs transactions (api, worker).
func RegisterTxMetrics(reg prometheus.Registerer) error {
	return reg.Register(&txRetryCollector{
		retries: prometheus.NewDesc("moim_db_tx_retries_total",
			"Transactions run again after a transient conflict, by reason (deadlock, serialization, lock_timeout, busy).",
			[]string{"reason"}, nil),
		gaveUp: prometheus.NewDesc("moim_db_tx_gave_up_total",
			"Transactions still failing with a transient conflict on their last attempt.", nil, nil),
	})
}

func (c *txRetryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.retries
	ch <- c.gaveUp
}

func (c *txRetryCollector) Collect(ch chan<- prometheus.Metric) {
	s := db.TxRetries()
	for _, r := range db.RetryReasons {
		ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(s.Retries[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(c.gaveUp, prometheus.CounterValue, float64(s.GaveUp))
}
