package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// Column widths of the outbox table; checked up front so a bad task fails
// the caller's transaction instead of becoming a row the relay can never
// hand to asynq.
const (
	maxOutboxQueueLen  = 64
	maxOutboxTypeLen   = 128
	maxOutboxTaskIDLen = 64
)

// Enqueue writes tasks as outbox rows through idb, normally the caller's
// bun.Tx, so the tasks exist exactly when the transaction commits. Each row
// gets the task's ID or else a fresh random task id ("ob_" + 26 base32
// characters) that becomes the asynq task id; the request id in ctx, if any, travels as the
// HeaderRequestID header. Call (*Relay).Wake after the commit, or use
// (*Relay).RunInTx, so the relay picks the rows up at once.
func Enqueue(ctx context.Context, idb bun.IDB, tasks ...Task) error {
	if len(tasks) == 0 {
		return nil
	}
	rid := domain.RequestID(ctx)
	now := time.Now().UTC()
	rows := make([]db.OutboxRow, len(tasks))
	for i, t := range tasks {
		queue := t.Queue
		if queue == "" {
			queue = QueueDefault
		}
		if err := validateTask(t.Type, queue, t.MaxRetry); err != nil {
			return fmt.Errorf("enqueue task %d of %d: %w", i+1, len(tasks), err)
		}
		id := t.ID
		switch {
		case id == "":
			id = "ob_" + db.NewPublicID()
		case len(id) > maxOutboxTaskIDLen:
			return fmt.Errorf("enqueue task %d of %d: task id %q is longer than %d bytes", i+1, len(tasks), id, maxOutboxTaskIDLen)
		}
		headers := map[string]string{}
		if rid != "" {
			headers[HeaderRequestID] = rid
		}
		rows[i] = db.OutboxRow{
			TaskID:    id,
			Queue:     queue,
			Type:      t.Type,
			Payload:   t.Payload,
			Headers:   headers,
			MaxRetry:  t.MaxRetry,
			ProcessAt: t.ProcessAt,
			CreatedAt: now,
		}
	}
	if err := (db.Outbox{}).Insert(ctx, idb, rows); err != nil {
		return fmt.Errorf("enqueue %d tasks: %w", len(tasks), err)
	}
	return nil
}

// validateTask rejects what asynq would refuse at relay time. Such a task is
// a programming error, so the error is a plain (internal) one.
func validateTask(typ, queue string, maxRetry int) error {
	switch {
	case strings.TrimSpace(typ) == "":
		return errors.New("task type is empty")
	case len(typ) > maxOutboxTypeLen:
		return fmt.Errorf("task type %q is longer than %d bytes", typ, maxOutboxTypeLen)
	case strings.TrimSpace(queue) != queue || queue == "":
		return fmt.Errorf("queue name %q is empty or has surrounding spaces", queue)
	case len(queue) > maxOutboxQueueLen:
		return fmt.Errorf("queue name %q is longer than %d bytes", queue, maxOutboxQueueLen)
	case maxRetry < 0:
		return fmt.Errorf("task %s: max retry %d is negative", typ, maxRetry)
	}
	return nil
}

// Relay defaults, used when RelayParams leaves a field zero.
const (
	DefaultRelayPollInterval = time.Second
	DefaultRelayBatchSize    = 100
	DefaultRelayRetention    = 10 * time.Minute
	DefaultRelayLease        = 30 * time.Second
	// DefaultRelayEnqueueTimeout caps the default enqueue timeout, which is
	// otherwise half the lease.
	DefaultRelayEnqueueTimeout = 5 * time.Second
)

const (
	// relayConcurrency bounds the enqueues in flight per batch: each is one
	// Redis round trip (~65 µs), so a batch of 100 takes a few of them.
	relayConcurrency = 16
	// relayMaxBackoffFactor caps the wait after repeated failures at this
	// many poll intervals.
	relayMaxBackoffFactor = 10
)

// RelayParams configures a Relay.
type RelayParams struct {
	// Redis is where tasks go. Ignored when Client is set.
	Redis asynq.RedisConnOpt
	// Client, if set, is used instead of a client built from Redis; the
	// caller keeps ownership and closes it.
	Client *asynq.Client
	// PollInterval is how long an idle relay waits for a Wake before looking
	// at the table anyway; zero means DefaultRelayPollInterval.
	PollInterval time.Duration
	// BatchSize is the most rows one claim takes; zero means
	// DefaultRelayBatchSize.
	BatchSize int
	// Lease is how long a claimed row belongs to this relay: if the relay
	// dies before marking it sent, another relay takes it once the lease has
	// passed. Zero means DefaultRelayLease.
	Lease time.Duration
	// EnqueueTimeout bounds the handing of one batch to Redis; rows not
	// confirmed by then count as failed and are retried after the backoff.
	// Keep it well under Lease, or a slow batch's rows may be sent again by
	// another relay (harmlessly: they meet their task id). Zero means half
	// the lease, at most DefaultRelayEnqueueTimeout.
	EnqueueTimeout time.Duration
	// Retention is how long asynq keeps a relayed task after it completes.
	// A row is relayed again when a relay dies (or fails to mark) between
	// enqueue and mark, once the lease has passed, or after an enqueue that
	// reached Redis but was not confirmed in time. While the task is still
	// in Redis, pending or retained, the second enqueue meets
	// asynq.ErrTaskIDConflict and nothing runs twice; a few minutes covers
	// the lease and a short database outage. Past that the task runs
	// again, and every outbox task's handler is idempotent by the rows it
	// reads (a decided request, an existing delivery, a processed ping), so
	// the second run does nothing new. Every completed task holds Redis
	// memory this long. Zero means DefaultRelayRetention.
	Retention time.Duration
	// Logger receives failures and recoveries; nil discards them.
	Logger *slog.Logger
	// Registerer, if set, gets the relay's metrics. Relays sharing a
	// registerer share the metrics.
	Registerer prometheus.Registerer
}

// Relay moves committed outbox rows into asynq. Any number of relays, in one
// process or many, may run on one database: each batch leases its rows in a
// short transaction (see db.Outbox.Claim) and talks to Redis with no
// transaction open, so a slow or hung Redis never holds a database lock that
// the API's writes wait for. A task id already in asynq counts as relayed,
// so a row sent again after a lease ran out becomes no second task while
// the first is retained (RelayParams.Retention); later, the handlers'
// idempotence makes a second run a no-op.
type Relay struct {
	db             *bun.DB
	store          db.Outbox
	client         *asynq.Client
	ownClient      bool
	poll           time.Duration
	batch          int
	lease          time.Duration
	enqueueTimeout time.Duration
	retention      time.Duration
	logger         *slog.Logger
	wake           chan struct{}

	// floor is the highest row id this relay has claimed, and fullDue (Unix
	// nanoseconds of now) when a claim next starts from the beginning of
	// the table instead of after floor; see claimAfter.
	floor   atomic.Int64
	fullDue atomic.Int64

	// now is the clock leases are taken and rows marked by; tests shift it.
	now func() time.Time
	// afterEnqueue, if set, runs after a batch's enqueues and before its
	// marks; when it returns true the batch is abandoned there, as if the
	// process had died (tests play a crash with it).
	afterEnqueue func() bool

	relayed   prometheus.Counter
	conflicts prometheus.Counter
	failures  prometheus.Counter
	unsent    prometheus.Gauge
}

// NewRelay returns a relay over bdb. It does not connect to Redis; Run
// reports Redis failures and keeps retrying. Close releases the Redis client
// it built.
func NewRelay(bdb *bun.DB, p RelayParams) (*Relay, error) {
	if bdb == nil {
		return nil, errors.New("new relay: no database")
	}
	if p.Client == nil && p.Redis == nil {
		return nil, errors.New("new relay: neither Redis nor Client set")
	}
	if p.PollInterval < 0 || p.BatchSize < 0 || p.Retention < 0 || p.Lease < 0 || p.EnqueueTimeout < 0 {
		return nil, fmt.Errorf("new relay: negative poll interval (%s), batch size (%d), retention (%s), lease (%s) or enqueue timeout (%s)",
			p.PollInterval, p.BatchSize, p.Retention, p.Lease, p.EnqueueTimeout)
	}
	r := &Relay{
		db:             bdb,
		client:         p.Client,
		poll:           p.PollInterval,
		batch:          p.BatchSize,
		lease:          p.Lease,
		enqueueTimeout: p.EnqueueTimeout,
		retention:      p.Retention,
		logger:         p.Logger,
		wake:           make(chan struct{}, 1),
		now:            time.Now,
	}
	if r.poll == 0 {
		r.poll = DefaultRelayPollInterval
	}
	if r.batch == 0 {
		r.batch = DefaultRelayBatchSize
	}
	if r.lease == 0 {
		r.lease = DefaultRelayLease
	}
	if r.enqueueTimeout == 0 {
		r.enqueueTimeout = min(r.lease/2, DefaultRelayEnqueueTimeout)
	}
	if r.retention == 0 {
		r.retention = DefaultRelayRetention
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if err := r.initMetrics(p.Registerer); err != nil {
		return nil, fmt.Errorf("new relay: %w", err)
	}
	if r.client == nil {
		r.client = asynq.NewClient(p.Redis)
		r.ownClient = true
	}
	return r, nil
}

func (r *Relay) initMetrics(reg prometheus.Registerer) error {
	var err error
	r.relayed, err = registerRelayMetric(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moim_outbox_relayed_total",
		Help: "Outbox rows handed to asynq and marked sent.",
	}))
	if err != nil {
		return err
	}
	r.conflicts, err = registerRelayMetric(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moim_outbox_relay_conflicts_total",
		Help: "Outbox rows whose task was already in asynq (relayed before a crash), marked sent without a second task.",
	}))
	if err != nil {
		return err
	}
	r.failures, err = registerRelayMetric(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moim_outbox_relay_errors_total",
		Help: "Outbox relay batches that failed, wholly or in part, because Redis or the database did.",
	}))
	if err != nil {
		return err
	}
	r.unsent, err = registerRelayMetric(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moim_outbox_unsent",
		Help: "Outbox rows waiting for the relay, as last counted (on each idle poll and after a failure).",
	}))
	return err
}

// registerRelayMetric registers c with reg, or returns the collector already
// registered under the same name, so several relays in one process can share
// one registry. A nil reg leaves c unregistered.
func registerRelayMetric[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register relay metrics: %w", err)
	}
	return c, nil
}

// Close releases the Redis client the relay built (a Client passed in
// RelayParams is left to its owner). Call it after Run has returned.
func (r *Relay) Close() error {
	if !r.ownClient {
		return nil
	}
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("close relay redis client: %w", err)
	}
	return nil
}

// Wake asks Run to look at the table now instead of at the next poll. It
// never blocks: kicks that arrive while one is pending are merged, which is
// enough because a pass relays everything committed before it starts (a
// row whose id is below one already relayed, from a transaction that
// committed after a later one, waits for the next full claim, within a
// poll interval; see claimAfter).
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// RunInTx runs fn in a transaction (db.RunInTx) and, once it has committed,
// wakes the relay so the tasks fn enqueued reach Redis within a round trip.
func (r *Relay) RunInTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	if err := db.RunInTx(ctx, r.db, fn); err != nil {
		return err
	}
	r.Wake()
	return nil
}

// Run relays until ctx is done and then returns nil. After each pass that
// empties the table it waits for a Wake or the poll interval. Failures
// (Redis or the database down) never stop it: rows that did not reach Redis
// stay unsent, with the failure recorded on them (attempts, last_error) and
// their claim released, and Run backs off exponentially, up to ten poll
// intervals, before trying again. A batch cut short by ctx leaves its rows
// claimed; they are relayed once their lease has passed.
func (r *Relay) Run(ctx context.Context) error {
	// Since Go 1.23 Reset and Stop leave no stale tick in timer.C, so the
	// timer is reused without draining.
	timer := time.NewTimer(r.poll)
	defer timer.Stop()
	failures := 0
	countUnsent := true
	for {
		n, err := r.Drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wake := r.wake
		var wait time.Duration
		if err != nil {
			failures++
			wait = r.backoff(failures)
			r.logger.WarnContext(ctx, "outbox relay failed",
				slog.Any("error", err),
				slog.Int("failures", failures),
				slog.Duration("retry_in", wait))
			// While failing, commits must not cut the backoff short: every
			// write would otherwise retry against a Redis that is down. A
			// pending kick stays buffered for after the wait.
			wake = nil
			countUnsent = true
		} else {
			if failures > 0 {
				r.logger.InfoContext(ctx, "outbox relay recovered",
					slog.Int("failures", failures), slog.Int("relayed", n))
			}
			failures = 0
			wait = r.poll
		}
		if countUnsent {
			r.refreshUnsent(ctx)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			// A wake follows a commit: the pass that follows relays it, and
			// counting the table each time would double the statements.
			countUnsent = false
			timer.Stop()
		case <-timer.C:
			countUnsent = true
		}
	}
}

// backoff is the wait after the nth consecutive failure: the poll interval,
// doubled per failure, capped at relayMaxBackoffFactor poll intervals, with
// ±20% jitter so relays that failed together do not retry in lockstep.
func (r *Relay) backoff(n int) time.Duration {
	limit := r.poll * relayMaxBackoffFactor
	d := r.poll
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	jitter := time.Duration(rand.Int64N(int64(d)/5*2+1)) - d/5
	return d + jitter
}

func (r *Relay) refreshUnsent(ctx context.Context) {
	n, err := r.store.CountUnsent(ctx, r.db)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.WarnContext(ctx, "outbox relay: count unsent rows", slog.Any("error", err))
		}
		return
	}
	r.unsent.Set(float64(n))
}

// Drain relays batches until a batch comes back short (the table has no
// unsent rows this relay can claim) and returns how many rows it relayed.
// Run calls it on every wake-up; tools and tests may call it directly.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := r.relayBatch(ctx)
		total += n
		if err != nil {
			return total, err
		}
		if n < r.batch {
			return total, nil
		}
	}
}

// relayBatch claims one batch, hands it to asynq and marks what got there,
// each database step a short statement or transaction of its own, and
// returns how many rows it relayed.
func (r *Relay) relayBatch(ctx context.Context) (int, error) {
	after := r.claimAfter()
	rows, err := r.store.ClaimAfter(ctx, r.db, after, r.batch, r.now(), r.lease)
	if err != nil {
		r.fullDue.Store(0)
		if ctx.Err() != nil {
			// Shutting down: no failure of the database's.
			return 0, fmt.Errorf("relay outbox batch: %w", ctx.Err())
		}
		r.failures.Inc()
		return 0, fmt.Errorf("relay outbox batch: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	// Rows come sorted by id. A full claim sets the floor even lower, so
	// ids that start again lower (a table emptied and its counter reset)
	// do not leave every claim but the full ones empty.
	if last := rows[len(rows)-1].ID; after == 0 || last > r.floor.Load() {
		r.floor.Store(last)
	}
	// A claimed batch is finished even when ctx is cancelled (a shutdown):
	// enqueues are bounded by the enqueue timeout, and marking the rows now
	// spares them waiting out their lease until another relay takes them.
	bctx := context.WithoutCancel(ctx)
	res := r.enqueueRows(bctx, rows)
	if r.afterEnqueue != nil && r.afterEnqueue() {
		// The rows keep their claim until the lease passes; the relay that
		// takes them then meets ErrTaskIDConflict and marks them.
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("relay outbox batch: %w", err)
		}
		return 0, errors.New("relay outbox batch: abandoned")
	}
	var errs []error
	relayed := 0
	if len(res.sent) > 0 {
		if err := r.store.MarkSent(bctx, r.db, res.sent, r.now()); err != nil {
			// The tasks are in asynq; the rows are sent again, and marked,
			// once their lease has passed.
			errs = append(errs, err)
		} else {
			relayed = len(res.sent)
			r.relayed.Add(float64(relayed))
			r.conflicts.Add(float64(res.conflicts))
		}
	}
	if len(res.failed) > 0 {
		errs = append(errs, res.err)
		// Every unconfirmed row gets the failure, tried or not, so attempts
		// reads "failed passes over this row"; releasing the claim lets the
		// next pass, after the backoff, try them at once.
		if err := r.store.RecordFailure(bctx, r.db, res.failed, res.err.Error()); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// The failed rows lie below the floor: the next claim starts from
		// the beginning.
		r.fullDue.Store(0)
		r.failures.Inc()
		return relayed, fmt.Errorf("relay outbox batch: %w", errors.Join(errs...))
	}
	return relayed, nil
}

// claimAfter returns the id the next claim starts after. Mostly that is the
// highest id this relay has claimed, so claims skip the dead index entries
// that sent rows leave at the start of the unsent range until VACUUM. Once
// per poll interval, and after any failure, it is 0: a full claim then
// picks up rows below the floor — those of a transaction that committed
// after a later one, a failed batch's, and those whose lease ran out on
// another relay — so they wait at most a poll interval more.
func (r *Relay) claimAfter() int64 {
	now := r.now().UnixNano()
	if due := r.fullDue.Load(); now >= due && r.fullDue.CompareAndSwap(due, now+int64(r.poll)) {
		return 0
	}
	return r.floor.Load()
}

// enqueueResult sorts a batch's rows by what asynq said.
type enqueueResult struct {
	sent      []int64 // enqueued, or already in asynq
	conflicts int     // of sent, how many were already in asynq
	failed    []int64 // refused, not confirmed in time, or never tried
	err       error   // why failed is not empty
}

// enqueueRows hands rows to asynq, relayConcurrency at a time, and waits at
// most the enqueue timeout. After the first failure it starts no more
// enqueues (Redis is most likely down, and the rest would fail the same
// way) but still collects those in flight. An enqueue still unanswered at
// the timeout is left to finish in the background: its row counts as failed
// and, if the task did reach Redis, the next pass meets its task id.
func (r *Relay) enqueueRows(ctx context.Context, rows []db.OutboxRow) enqueueResult {
	ctx, cancel := context.WithTimeout(ctx, r.enqueueTimeout)
	defer cancel()
	type outcome struct {
		i   int
		err error
	}
	// Room for every row, so a late enqueue never blocks its goroutine.
	done := make(chan outcome, len(rows))
	const (
		pending = iota
		sent
		failed
	)
	state := make([]int, len(rows))
	var res enqueueResult
	next, inFlight := 0, 0
collect:
	for {
		for next < len(rows) && inFlight < relayConcurrency && res.err == nil {
			row := &rows[next]
			i := next
			next++
			inFlight++
			go func() { done <- outcome{i, r.enqueueRow(ctx, row)} }()
		}
		if inFlight == 0 {
			break
		}
		select {
		case o := <-done:
			inFlight--
			switch {
			case o.err == nil:
				state[o.i] = sent
			case errors.Is(o.err, asynq.ErrTaskIDConflict):
				// A relay enqueued it and died (or ran out of time) before
				// marking it sent.
				state[o.i] = sent
				res.conflicts++
			default:
				state[o.i] = failed
				if res.err == nil {
					res.err = fmt.Errorf("enqueue outbox row %d (%s): %w", rows[o.i].ID, rows[o.i].Type, o.err)
				}
			}
		case <-ctx.Done():
			if res.err == nil {
				res.err = fmt.Errorf("enqueue outbox rows: %d of %d not confirmed within %s: %w",
					len(rows)-next+inFlight, len(rows), r.enqueueTimeout, ctx.Err())
			}
			break collect
		}
	}
	for i, st := range state {
		if st == sent {
			res.sent = append(res.sent, rows[i].ID)
		} else {
			res.failed = append(res.failed, rows[i].ID)
		}
	}
	return res
}

func (r *Relay) enqueueRow(ctx context.Context, row *db.OutboxRow) error {
	opts := []asynq.Option{
		asynq.TaskID(row.TaskID),
		asynq.Queue(row.Queue),
		asynq.MaxRetry(row.MaxRetry),
		asynq.Retention(r.retention),
	}
	if !row.ProcessAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(row.ProcessAt))
	}
	_, err := r.client.EnqueueContext(ctx, asynq.NewTaskWithHeaders(row.Type, row.Payload, row.Headers), opts...)
	return err
}
