package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/notify"
)

// The random-matching task types.
const (
	// TypeMatchTrigger is written to the outbox with each application: it
	// asks for a matcher run of the category, deduplicated in Redis, so a
	// burst of applications causes a handful of runs.
	TypeMatchTrigger = "match:trigger"
	// TypeMatchRun runs the matcher of one category.
	TypeMatchRun = "match:run"
	// TypeMatchSweep is the periodic tick: expire old applications and
	// start a run for every category with applications waiting.
	TypeMatchSweep = "tick:match-sweep"
	// TickMatchSweep is its catalogue name.
	TickMatchSweep = "match-sweep"
)

// MatchPayload names the category of a trigger or a run.
type MatchPayload struct {
	Category domain.Category `json:"category"`
}

// NewMatchTriggerTask returns the trigger an application writes to the
// outbox in its own transaction.
func NewMatchTriggerTask(c domain.Category) (Task, error) {
	// Retries mostly wait out a run in progress, a second each.
	return newTask(TypeMatchTrigger, MatchPayload{Category: c}, QueueCritical, 25)
}

// matchRunID is the asynq task id of a category's run: while one is
// pending or running, another enqueue of it is refused, which is the
// deduplication.
func matchRunID(c domain.Category) string { return "match:run:" + c.String() }

// MatchingParams tune the matcher.
type MatchingParams struct {
	// GroupSize is the size of a group per category; missing ones are 2.
	GroupSize map[domain.Category]int
	// WaitLimit is how long an application waits before it expires.
	WaitLimit time.Duration
	// Parallel is how many group transactions commit at once.
	Parallel int
}

func (p MatchingParams) groupSize(c domain.Category) int {
	if n := p.GroupSize[c]; n >= 2 {
		return n
	}
	return 2
}

// runTimeout bounds one matcher run; 20,000 applications take seconds.
const runTimeout = 2 * time.Minute

// runQueue is where matcher runs go, ahead of mail and the like: a member
// is looking at the screen.
const runQueue = QueueCritical

// enqueueRun asks for a run of c. A run already pending (or waiting for
// its retry) picks up what prompted this; one already running may have
// read the waiting list before it, so the caller learns that
// (errRunActive) and asks again shortly. A run that was archived after
// failing every retry, or kept as completed, would hold the task id for
// good, so it is deleted and the new run enqueued in its place.
func enqueueRun(ctx context.Context, client *asynq.Client, insp *asynq.Inspector, c domain.Category) error {
	payload, err := json.Marshal(MatchPayload{Category: c})
	if err != nil {
		return err
	}
	// A run that hangs (a lock wait, a dead connection) would hold the
	// category's task id; the timeout ends it well before the sweep.
	state, err := enqueueOnce(ctx, client, insp, asynq.NewTask(TypeMatchRun, payload), runQueue, matchRunID(c),
		asynq.MaxRetry(3), asynq.Timeout(runTimeout))
	if err != nil {
		return err
	}
	if state == asynq.TaskStateActive {
		return errRunActive
	}
	return nil
}

// enqueueOnce enqueues t in queue under task id id unless a task with that
// id is already pending, scheduled, waiting for a retry or active, and
// returns the state it found (0 when it enqueued t). A task with the id
// that was archived after its retries, or kept as completed, would hold
// the id for good, so it is deleted and t enqueued in its place. It
// returns an error only for a Redis failure.
func enqueueOnce(ctx context.Context, client *asynq.Client, insp *asynq.Inspector, t *asynq.Task, queue, id string, opts ...asynq.Option) (asynq.TaskState, error) {
	opts = append(opts, asynq.TaskID(id), asynq.Queue(queue))
	for attempt := 0; attempt < 3; attempt++ {
		_, err := client.EnqueueContext(ctx, t, opts...)
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			return 0, err
		}
		info, err := insp.GetTaskInfo(queue, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound):
			continue // finished between the two calls: enqueue again
		case err != nil:
			return 0, err
		}
		switch info.State {
		case asynq.TaskStateArchived, asynq.TaskStateCompleted:
			if err := insp.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return 0, err
			}
			continue
		default: // pending, scheduled, retry or active: that one will do
			return info.State, nil
		}
	}
	// The id kept changing hands: whoever holds it now is active.
	return asynq.TaskStateActive, nil
}

// errRunActive: a run is in progress and may have missed the application
// that asked; the trigger is retried shortly, after that run.
var errRunActive = notify.Temporary(fmt.Errorf("a matcher run is in progress: %w", ErrDeferred), time.Second)

// MatchTriggerHandler processes TypeMatchTrigger.
type MatchTriggerHandler struct {
	Client    *asynq.Client
	Inspector *asynq.Inspector
}

// ProcessTask asks for a run of the payload's category.
func (h *MatchTriggerHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p MatchPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || !p.Category.RandomCategory() {
		return fmt.Errorf("decode %s payload: %v: %w", TypeMatchTrigger, err, asynq.SkipRetry)
	}
	if err := enqueueRun(ctx, h.Client, h.Inspector, p.Category); err != nil {
		return fmt.Errorf("trigger %s matcher: %w", p.Category, err)
	}
	return nil
}

// MatchRunHandler processes TypeMatchRun: one split-transaction matcher
// run. It reads the waiting applications without locks, groups them in
// memory holding no connection, then commits each group in its own short
// transaction that flips the applications with a version check, records
// the match and notifies its members. A group whose versions moved
// (cancelled, expired or matched by a concurrent run) rolls back alone.
type MatchRunHandler struct {
	DB      *bun.DB
	Relay   *Relay // kicks the relay after each group; nil waits for its poll
	Params  MatchingParams
	Metrics *MatchMetrics
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// errGroupConflict rolls a group back: one of its applications changed.
var errGroupConflict = errors.New("an application of the group changed")

// ProcessTask runs the matcher for the payload's category.
func (h *MatchRunHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p MatchPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || !p.Category.RandomCategory() {
		return fmt.Errorf("decode %s payload: %v: %w", TypeMatchRun, err, asynq.SkipRetry)
	}
	res, err := h.Run(ctx, p.Category)
	if err != nil {
		return fmt.Errorf("match %s: %w", p.Category, err)
	}
	h.Logger.InfoContext(ctx, "matcher run", slog.String("category", p.Category.String()),
		slog.Int("waiting", res.Waiting), slog.Int("matches", res.Matches), slog.Int("conflicts", res.Conflicts))
	return nil
}

// RunResult is what one matcher run did.
type RunResult struct {
	Waiting   int // applications read
	Matches   int // groups committed
	Conflicts int // groups rolled back because a version moved
}

// Run matches the waiting applications of c once.
func (h *MatchRunHandler) Run(ctx context.Context, c domain.Category) (RunResult, error) {
	now := h.NowFunc().UTC()
	apps, err := (db.Applications{}).ListWaiting(ctx, h.DB, c, now)
	if err != nil {
		return RunResult{}, err
	}
	res := RunResult{Waiting: len(apps)}
	cands := make([]domain.Candidate, len(apps))
	for i, a := range apps {
		cands[i] = domain.Candidate{Key: a.Key, MemberID: a.MemberID, Conditions: a.Conditions, CreatedAt: a.CreatedAt}
	}
	groups := domain.GroupCandidates(cands, h.Params.groupSize(c))

	parallel := max(h.Params.Parallel, 1)
	sem := make(chan struct{}, parallel)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for _, g := range groups {
		members := make([]domain.Application, len(g.Members))
		for i, idx := range g.Members {
			members[i] = apps[idx]
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := h.commitGroup(ctx, c, members, g.Common, now)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				res.Matches++
			case errors.Is(err, errGroupConflict):
				res.Conflicts++
				if h.Metrics != nil {
					h.Metrics.Conflicts.WithLabelValues(c.String()).Inc()
				}
			case firstErr == nil:
				firstErr = err
			}
		})
	}
	wg.Wait()
	if h.Metrics != nil {
		h.Metrics.Matches.WithLabelValues(c.String()).Add(float64(res.Matches))
	}
	return res, firstErr
}

// commitGroup records one match in one transaction.
func (h *MatchRunHandler) commitGroup(ctx context.Context, c domain.Category, apps []domain.Application, common domain.Conditions, now time.Time) error {
	run := func(ctx context.Context, tx bun.Tx) error {
		memberIDs := make([]string, len(apps))
		for i, a := range apps {
			memberIDs[i] = a.MemberID
		}
		m := domain.Match{Category: c, Method: domain.MatchRandom, Conditions: common, CreatedAt: now}
		matchKey, err := (db.Matches{}).Create(ctx, tx, &m, memberIDs)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return errGroupConflict // a member was deleted since the read
		}
		if err != nil {
			return err
		}
		// The expiry is checked at commit time, not at the run's start: an
		// application that ran out meanwhile is not matched.
		ok, err := (db.Applications{}).MarkGroupMatched(ctx, tx, apps, matchKey, h.NowFunc().UTC())
		if err != nil {
			return err
		}
		if !ok {
			return errGroupConflict
		}
		nicknames := make([]string, 0, len(m.Members))
		for _, mm := range m.Members {
			nicknames = append(nicknames, mm.Nickname)
		}
		args := domain.NotificationArgs{MatchID: m.ID, Category: c.String(), Members: nicknames, Link: "/matches/" + m.ID}
		// The texts name one place; members who share several choose there.
		if places := domain.Places.Names(common.Places); len(places) == 1 {
			args.Place = places[0]
		}
		_, err = Notify(ctx, tx, domain.NotifyMatchConfirmed, args, now, memberIDs...)
		return err
	}
	if h.Relay != nil {
		return h.Relay.RunInTx(ctx, run)
	}
	return db.RunInTx(ctx, h.DB, run)
}

// MatchMetrics count what the matcher does, by category.
type MatchMetrics struct {
	Matches   *prometheus.CounterVec
	Conflicts *prometheus.CounterVec
	Expired   *prometheus.CounterVec
}

// NewMatchMetrics creates the matcher's collectors and registers them on
// reg (nil leaves them unregistered).
func NewMatchMetrics(reg prometheus.Registerer) *MatchMetrics {
	m := &MatchMetrics{
		Matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_matches_total", Help: "Random matches made, by category.",
		}, []string{"category"}),
		Conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_match_conflicts_total",
			Help: "Matcher groups rolled back because an application changed meanwhile, by category.",
		}, []string{"category"}),
		Expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_applications_expired_total", Help: "Random-match applications that waited too long, by category.",
		}, []string{"category"}),
	}
	for _, c := range []domain.Category{domain.CategoryMeal, domain.CategoryStudy} {
		for _, v := range []*prometheus.CounterVec{m.Matches, m.Conflicts, m.Expired} {
			v.WithLabelValues(c.String())
		}
	}
	if reg != nil {
		reg.MustRegister(m.Matches, m.Conflicts, m.Expired)
	}
	return m
}

// expireBatch bounds the applications one sweep transaction expires.
const expireBatch = 200

// MatchSweepHandler processes TypeMatchSweep: it expires applications that
// waited past the limit (each gets NO_MATCH_FOUND, in the same
// transaction), then asks for a run of every category that has
// applications waiting, which catches anything a trigger missed.
type MatchSweepHandler struct {
	DB        *bun.DB
	Relay     *Relay
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Metrics   *MatchMetrics
	Logger    *slog.Logger
	NowFunc   func() time.Time
}

// ProcessTask sweeps once.
func (h *MatchSweepHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if _, err := decodeTickPayload(TypeMatchSweep, t.Payload()); err != nil {
		return err
	}
	now := h.NowFunc().UTC()
	for {
		var expired []domain.Application
		run := func(ctx context.Context, tx bun.Tx) error {
			var err error
			if expired, err = (db.Applications{}).Expire(ctx, tx, now, expireBatch); err != nil {
				return err
			}
			for _, a := range expired {
				args := domain.NotificationArgs{Category: a.Category.String(), Link: "/random-matches"}
				if _, err := Notify(ctx, tx, domain.NotifyNoMatchFound, args, now, a.MemberID); err != nil {
					return err
				}
			}
			return nil
		}
		var err error
		if h.Relay != nil {
			err = h.Relay.RunInTx(ctx, run)
		} else {
			err = db.RunInTx(ctx, h.DB, run)
		}
		if err != nil {
			return fmt.Errorf("expire applications: %w", err)
		}
		for _, a := range expired {
			if h.Metrics != nil {
				h.Metrics.Expired.WithLabelValues(a.Category.String()).Inc()
			}
		}
		if len(expired) < expireBatch {
			break
		}
	}
	cats, err := (db.Applications{}).CategoriesWaiting(ctx, h.DB, now)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	var errs []error
	for _, c := range cats {
		// A run in progress will be followed by the next sweep; one
		// category's failure does not keep the others from their run.
		if err := enqueueRun(ctx, h.Client, h.Inspector, c); err != nil && !errors.Is(err, errRunActive) {
			errs = append(errs, fmt.Errorf("sweep %s: %w", c, err))
		}
	}
	return errors.Join(errs...)
}
