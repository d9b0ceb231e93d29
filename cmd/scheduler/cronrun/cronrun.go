// Package cronrun runs moim's tick catalogue: at every slot of every tick it
// enqueues the tick's task into asynq under a task id derived from the slot,
// so that any number of schedulers (and restarts) run each slot once. It is a
// library so that cmd/scheduler and the all-in-one cmd/moim share it; it
// never touches SQL.
//
// Why not asynq.Scheduler: it enqueues without any cross-instance dedupe, so
// two schedulers run every tick twice (hibiken/asynq #395, #1055). Here each
// slot's task id is derived from the tick's name and the slot (TaskID) and
// kept, with a retention longer than the catch-up window, in the ticks'
// own queue (jobs.QueueTicks); asynq.ErrTaskIDConflict means another
// scheduler (or an earlier run of this one) already enqueued that slot.
package cronrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/moim/moim/jobs"
)

// MinRetention is the least time a finished tick task keeps its id. It covers
// clock skew between scheduler hosts and a scheduler that fires late; the
// catch-up window is added on top of it when that is longer. A shorter
// retention would let a scheduler starting within the window run a slot
// again that another already ran; so ticks keep their ids this long and
// stay out of the way in their own queue (jobs.QueueTicks) instead.
const MinRetention = 10 * time.Minute

// retentionMargin is added to the retention so that a slot at the very edge
// of the catch-up window still meets its finished task.
const retentionMargin = 5 * time.Minute

// Enqueue retries within one slot: transient Redis errors should not cost a
// slot, but a dead Redis must not keep a tick busy past its next slot.
const (
	enqueueAttempts = 5
	enqueueBackoff  = 200 * time.Millisecond
	enqueueMaxWait  = 5 * time.Second
)

// Params configures a Runner.
type Params struct {
	// Redis is where tasks are enqueued.
	Redis asynq.RedisConnOpt
	// Ticks is the catalogue, normally jobs.Ticks().
	Ticks []jobs.Tick
	// Overrides replaces the spec of the named ticks (config scheduler.ticks).
	Overrides map[string]string
	// Location is the time zone specs are read in; nil means UTC. A spec's
	// own CRON_TZ= prefix wins over it.
	Location *time.Location
	// CatchUpWindow is how far back a starting runner looks for a missed
	// slot; zero turns catch-up off.
	CatchUpWindow time.Duration
	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
	// NowFunc is the clock; nil means time.Now. Tests set it.
	NowFunc func() time.Time
	// Registerer, when set, gets the runner's counters.
	Registerer prometheus.Registerer
}

// Runner enqueues the tasks of a tick catalogue at their slots.
type Runner struct {
	redis     asynq.RedisConnOpt
	entries   []entry
	window    time.Duration
	retention time.Duration
	logger    *slog.Logger
	now       func() time.Time

	enqueued   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	failures   *prometheus.CounterVec
}

// entry is a tick with its parsed schedule.
type entry struct {
	tick  jobs.Tick
	spec  string
	sched cron.Schedule
	loc   *time.Location
}

// parser accepts the standard five fields, an optional leading seconds field
// (so a tick, or a test, can run every second) and descriptors.
func parser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// New checks the catalogue and the overrides, parses every spec and returns a
// Runner; a problem with any tick fails here, at start-up, one line each.
func New(p Params) (*Runner, error) {
	if p.Redis == nil {
		return nil, errors.New("cronrun: no redis connection")
	}
	if p.CatchUpWindow < 0 {
		return nil, fmt.Errorf("cronrun: negative catch-up window %s", p.CatchUpWindow)
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	now := p.NowFunc
	if now == nil {
		now = time.Now
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	r := &Runner{
		redis:     p.Redis,
		window:    p.CatchUpWindow,
		retention: max(p.CatchUpWindow, MinRetention) + retentionMargin,
		logger:    logger,
		now:       now,
	}
	// Every problem at once: bad specs first, then catalogue and override
	// names, one line each.
	var errs []error
	for _, t := range p.Ticks {
		spec := t.EffectiveSpec(p.Overrides)
		sched, err := parseSpec(spec, now().In(loc))
		if err != nil {
			what := "spec"
			if _, ok := p.Overrides[t.Name]; ok {
				what = "override spec"
			}
			errs = append(errs, fmt.Errorf("tick %q: %s %q: %w", t.Name, what, spec, err))
			continue
		}
		r.entries = append(r.entries, entry{tick: t, spec: spec, sched: sched, loc: loc})
	}
	if err := jobs.ValidateTicks(p.Ticks, p.Overrides); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := r.initMetrics(p.Registerer); err != nil {
		return nil, err
	}
	return r, nil
}

// parseSpec parses spec with robfig's parser and makes its schedule
// slot-deterministic.
func parseSpec(spec string, now time.Time) (sched cron.Schedule, err error) {
	// robfig's parser slices past the end of a "TZ=zone" spec without a
	// schedule and panics.
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, errors.New("time zone without a schedule")
	}
	sched, err = parser().Parse(spec)
	if err != nil {
		return nil, err
	}
	if cd, ok := sched.(cron.ConstantDelaySchedule); ok {
		// robfig's @every counts from whenever it is asked, so two
		// schedulers would compute different slots; align to the epoch.
		sched = alignedEvery{step: cd.Delay}
	}
	if sched.Next(now).IsZero() {
		return nil, errors.New("never fires")
	}
	return sched, nil
}

// alignedEvery fires at every multiple of step since the Unix epoch, so every
// scheduler computes the same slots for "@every <step>".
type alignedEvery struct{ step time.Duration }

// Next returns the first multiple of step strictly after t.
func (a alignedEvery) Next(t time.Time) time.Time {
	step := int64(a.step / time.Second) // robfig rounds @every to whole seconds, at least 1
	sec := t.Unix()
	next := (sec/step + 1) * step
	if sec < 0 && sec%step != 0 {
		next -= step // integer division truncates towards zero before the epoch
	}
	return time.Unix(next, 0).In(t.Location())
}

func (r *Runner) initMetrics(reg prometheus.Registerer) error {
	r.enqueued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moim_scheduler_ticks_enqueued_total",
		Help: "Tick slots this scheduler enqueued.",
	}, []string{"tick"})
	r.duplicates = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moim_scheduler_ticks_duplicate_total",
		Help: "Tick slots already enqueued by another scheduler or an earlier run (task id conflict).",
	}, []string{"tick"})
	r.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moim_scheduler_tick_errors_total",
		Help: "Failed attempts to build or enqueue a tick task.",
	}, []string{"tick"})
	for _, e := range r.entries {
		// Touch every series so dashboards see zeros, not gaps.
		r.enqueued.WithLabelValues(e.tick.Name)
		r.duplicates.WithLabelValues(e.tick.Name)
		r.failures.WithLabelValues(e.tick.Name)
	}
	if reg == nil {
		return nil
	}
	for _, c := range []**prometheus.CounterVec{&r.enqueued, &r.duplicates, &r.failures} {
		if err := reg.Register(*c); err != nil {
			// A second runner in the same process (cmd/moim tests) shares
			// the counters of the first.
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("cronrun: register metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return fmt.Errorf("cronrun: register metrics: %w", err)
			}
			*c = existing
		}
	}
	return nil
}

// Next returns the first slot of the named tick strictly after t, and false
// for a tick the runner does not have.
func (r *Runner) Next(name string, t time.Time) (time.Time, bool) {
	for _, e := range r.entries {
		if e.tick.Name == name {
			return e.sched.Next(t.In(e.loc)), true
		}
	}
	return time.Time{}, false
}

// Run enqueues missed slots (the latest one per tick within the catch-up
// window), then every tick at each of its slots, until ctx is done. It
// returns nil when ctx is cancelled.
func (r *Runner) Run(ctx context.Context) error {
	client := asynq.NewClient(r.redis)
	defer func() {
		if err := client.Close(); err != nil {
			r.logger.WarnContext(ctx, "close asynq client", slog.Any("error", err))
		}
	}()
	for _, e := range r.entries {
		r.logger.InfoContext(ctx, "tick scheduled",
			slog.String("tick", e.tick.Name),
			slog.String("spec", e.spec),
			slog.Time("next", e.sched.Next(r.now().In(e.loc))))
	}

	// One goroutine per tick so a slow enqueue or a long retry of one tick
	// never delays another.
	var wg sync.WaitGroup
	for i := range r.entries {
		wg.Go(func() { r.loop(ctx, client, &r.entries[i]) })
	}
	wg.Wait()
	return nil
}

// loop drives one tick. It computes slots itself from Schedule.Next instead
// of using robfig's Cron runner, because that runner calls a job without
// telling it which slot it stands for; a job reading the clock would get a
// time a little after the slot, different on every scheduler.
func (r *Runner) loop(ctx context.Context, c *asynq.Client, e *entry) {
	start := r.now().In(e.loc)
	if r.window > 0 {
		if slot, ok := latestSlot(e.sched, start.Add(-r.window), start); ok {
			r.logger.InfoContext(ctx, "tick catching up", slog.String("tick", e.tick.Name), slog.Time("slot", slot))
			r.fire(ctx, c, e, slot)
		}
	}
	last := start
	for {
		next := e.sched.Next(last)
		if next.IsZero() {
			r.logger.WarnContext(ctx, "tick has no more slots", slog.String("tick", e.tick.Name))
			return
		}
		r.logger.DebugContext(ctx, "tick waiting", slog.String("tick", e.tick.Name), slog.Time("next", next))
		if !r.sleepUntil(ctx, next) {
			return
		}
		// Woken late (a busy host, a suspended VM): run only the latest due
		// slot, as catch-up on start does.
		slot, _ := latestSlot(e.sched, last, r.now().In(e.loc))
		if slot.IsZero() {
			slot = next
		}
		if slot.After(next) {
			r.logger.WarnContext(ctx, "tick skipped slots",
				slog.String("tick", e.tick.Name), slog.Time("from", next), slog.Time("to", slot))
		}
		r.fire(ctx, c, e, slot)
		last = slot
	}
}

// latestSlot returns the latest slot in (after, until].
func latestSlot(s cron.Schedule, after, until time.Time) (time.Time, bool) {
	slot := s.Next(after)
	if slot.IsZero() || slot.After(until) {
		return time.Time{}, false
	}
	for n := s.Next(slot); !n.IsZero() && !n.After(until); n = s.Next(n) {
		slot = n
	}
	return slot, true
}

// sleepUntil waits until the clock reads t or later; false means ctx is done.
// It re-reads the clock after each timer because the wall clock can move
// while the timer (monotonic) runs.
func (r *Runner) sleepUntil(ctx context.Context, t time.Time) bool {
	for {
		d := t.Sub(r.now())
		if d <= 0 {
			return ctx.Err() == nil
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// slotIDLayout is the slot in a task id: UTC, ISO 8601 basic format.
const slotIDLayout = "20060102T150405Z"

// TaskID returns the asynq task id of a tick's slot,
// "tick:<name>:<slot>" with the name's dashes as underscores and the slot
// in UTC basic format ("tick:match_sweep:20261207T201630Z"). Every
// scheduler derives the same id for the same slot, whatever its time zone.
// The id holds no "-" because the queue UI shows an id only up to its
// first dash (it takes ids for UUIDs); tick names are lowercase letters,
// digits and dashes (ValidateTicks), so the mapping stays one to one.
//
// Ids were "<name>@<RFC 3339 slot>" before: a task queued under such an id
// still runs (same type, same handler), and while an old and a new
// scheduler overlap in a rolling deploy a slot may run under both ids;
// tick handlers are idempotent, so that costs one extra run.
func TaskID(name string, slot time.Time) string {
	return "tick:" + strings.ReplaceAll(name, "-", "_") + ":" + slot.UTC().Format(slotIDLayout)
}

// fire enqueues one slot of a tick, retrying transient errors with backoff
// until the tick's next slot is due.
func (r *Runner) fire(ctx context.Context, c *asynq.Client, e *entry, slot time.Time) {
	name := e.tick.Name
	id := TaskID(name, slot)
	log := r.logger.With(slog.String("tick", name), slog.String("task_id", id))
	t, err := e.tick.Build(slot)
	if err != nil {
		r.failures.WithLabelValues(name).Inc()
		log.ErrorContext(ctx, "build tick task", slog.Any("error", err))
		return
	}
	// Task ids are unique per queue: every scheduler must put a tick in
	// the same queue for the dedupe to hold, so the catalogue's queue
	// (jobs.QueueTicks for every tick) decides.
	queue := e.tick.Queue
	if queue == "" {
		queue = t.Queue
	}
	if queue == "" {
		queue = jobs.QueueDefault
	}
	task := asynq.NewTask(t.Type, t.Payload,
		asynq.TaskID(id),
		asynq.Queue(queue),
		asynq.MaxRetry(t.MaxRetry),
		asynq.Retention(r.retention),
	)
	deadline := e.sched.Next(slot)
	backoff := enqueueBackoff
	for attempt := 1; ; attempt++ {
		_, err := c.EnqueueContext(ctx, task)
		switch {
		case err == nil:
			r.enqueued.WithLabelValues(name).Inc()
			// Every 15 to 30 s per tick: news only when debugging. Slots
			// that were missed, skipped or failed are logged at info and up.
			log.DebugContext(ctx, "tick enqueued", slog.String("queue", queue))
			return
		case errors.Is(err, asynq.ErrTaskIDConflict):
			r.duplicates.WithLabelValues(name).Inc()
			log.DebugContext(ctx, "tick already enqueued")
			return
		case ctx.Err() != nil:
			return
		}
		r.failures.WithLabelValues(name).Inc()
		// Jitter keeps two schedulers that failed together from retrying
		// in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		if attempt >= enqueueAttempts || !r.now().Add(wait).Before(deadline) {
			log.ErrorContext(ctx, "enqueue tick; giving up on this slot",
				slog.Int("attempt", attempt), slog.Any("error", err))
			return
		}
		log.WarnContext(ctx, "enqueue tick; retrying",
			slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.Any("error", err))
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		backoff = min(2*backoff, enqueueMaxWait)
	}
}
