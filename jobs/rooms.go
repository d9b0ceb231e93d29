package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// The room task types.
const (
	// TypeRoomParticipation decides one join or leave request.
	TypeRoomParticipation = "room:participation"
	// TypeParticipationSweep is the tick that re-enqueues requests whose
	// task was lost (archived after its retries, or Redis lost).
	TypeParticipationSweep = "tick:participation-sweep"
	// TickParticipationSweep is its catalogue name.
	TickParticipationSweep = "participation-sweep"
)

// ParticipationPayload names the request by row id.
type ParticipationPayload struct {
	Request int64 `json:"request"`
}

// NewParticipationTask returns the task the API writes to the outbox with
// a join or leave request.
func NewParticipationTask(key int64) (Task, error) {
	// A member is waiting on the answer; the retries wait out contention
	// that outlasted the handler's own retries.
	return newTask(TypeRoomParticipation, ParticipationPayload{Request: key}, QueueCritical, 10)
}

// AdmissionParams bound the optimistic retries of one admission.
type AdmissionParams struct {
	// Retries is how many times a request is tried again in the same task
	// when the room changed under it (42Partner: 3).
	Retries int
	// RetryWait is the mean pause before a retry; each pause is jittered
	// between half and one and a half of it (42Partner: 100 ms flat).
	RetryWait time.Duration
}

// RoomMetrics count admissions by result and the optimistic retries.
type RoomMetrics struct {
	Admissions *prometheus.CounterVec
	Retries    prometheus.Counter
}

// NewRoomMetrics creates the room collectors and registers them on reg
// (nil leaves them unregistered).
func NewRoomMetrics(reg prometheus.Registerer) *RoomMetrics {
	m := &RoomMetrics{
		Admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_room_requests_decided_total", Help: "Room join and leave requests decided, by result.",
		}, []string{"result"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moim_room_admission_retries_total",
			Help: "Room requests tried again because the room changed between the read and the version-checked update.",
		}),
	}
	// The decisions a worker makes; REQUESTED is never one.
	for _, st := range []domain.ParticipationStatus{domain.ParticipationJoined, domain.ParticipationLeft,
		domain.ParticipationRejectedFull, domain.ParticipationRejectedClosed, domain.ParticipationRejectedInvalid} {
		m.Admissions.WithLabelValues(st.String())
	}
	if reg != nil {
		reg.MustRegister(m.Admissions, m.Retries)
	}
	return m
}

// RoomParticipationHandler processes TypeRoomParticipation: it decides the
// request with an optimistic, version-checked update of the room and
// notifies in the same transaction (the host of a join or leave, the member
// of the result).
type RoomParticipationHandler struct {
	DB      *bun.DB
	Relay   *Relay
	Params  AdmissionParams
	Metrics *RoomMetrics
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// ProcessTask decides the payload's request.
func (h *RoomParticipationHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p ParticipationPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Request <= 0 {
		return fmt.Errorf("decode %s payload: %v: %w", TypeRoomParticipation, err, asynq.SkipRetry)
	}
	adm, err := h.Decide(ctx, p.Request)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return fmt.Errorf("request %d: %w: %w", p.Request, err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	if adm.Decided {
		h.Logger.DebugContext(ctx, "room request decided", slog.String("request", adm.Request.ID),
			slog.String("room", adm.Request.RoomID), slog.String("status", adm.Request.Status.String()))
	}
	return nil
}

// Decide decides the request with row id key, retrying up to
// Params.Retries times with a jittered pause when the room changed between
// the read and the update. It returns the admission (Decided false when
// the request was decided before). A conflict that outlasts the retries is
// returned as an error for the task's own retry.
func (h *RoomParticipationHandler) Decide(ctx context.Context, key int64) (*db.Admission, error) {
	for attempt := 0; ; attempt++ {
		adm, err := h.decideOnce(ctx, key)
		if !errors.Is(err, db.ErrStale) {
			if err == nil && adm.Decided && h.Metrics != nil {
				h.Metrics.Admissions.WithLabelValues(adm.Request.Status.String()).Inc()
			}
			return adm, err
		}
		if attempt >= h.Params.Retries {
			return nil, fmt.Errorf("decide request %d: still contended after %d retries: %w", key, attempt, err)
		}
		if h.Metrics != nil {
			h.Metrics.Retries.Inc()
		}
		if err := sleepJittered(ctx, h.Params.RetryWait); err != nil {
			return nil, err
		}
	}
}

// sleepJittered waits between half and one and a half of mean, so the
// losers of one race do not meet again in step.
func sleepJittered(ctx context.Context, mean time.Duration) error {
	if mean <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(mean/2 + rand.N(mean))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (h *RoomParticipationHandler) decideOnce(ctx context.Context, key int64) (*db.Admission, error) {
	var adm *db.Admission
	run := func(ctx context.Context, tx bun.Tx) error {
		now := h.NowFunc().UTC()
		var err error
		if adm, err = (db.Participations{}).Admit(ctx, tx, key, now); err != nil || !adm.Decided {
			return err
		}
		return notifyDecision(ctx, tx, adm, now)
	}
	if h.Relay != nil {
		return adm, h.Relay.RunInTx(ctx, run)
	}
	return adm, db.RunInTx(ctx, h.DB, run)
}

// RoomArgs are the notification arguments naming room r.
func RoomArgs(r *domain.Room) domain.NotificationArgs {
	return domain.NotificationArgs{
		RoomID: r.ID, Title: r.Title, Category: r.Category.String(), Place: r.Place,
		StartsAt: r.StartsAt, Link: "/rooms/" + r.ID,
	}
}

// notifyDecision tells the host about a join or a leave and the member
// about the result of a join.
func notifyDecision(ctx context.Context, tx bun.IDB, adm *db.Admission, now time.Time) error {
	r, req := &adm.Room, &adm.Request
	args := RoomArgs(r)
	actor := args
	actor.ActorID, actor.Actor = req.MemberID, adm.Nickname
	var err error
	switch req.Status {
	case domain.ParticipationJoined:
		if _, err = Notify(ctx, tx, domain.NotifyParticipationOnMyRoom, actor, now, r.HostID); err == nil {
			_, err = Notify(ctx, tx, domain.NotifyJoinAccepted, args, now, req.MemberID)
		}
	case domain.ParticipationRejectedFull:
		_, err = Notify(ctx, tx, domain.NotifyJoinRejectedFull, args, now, req.MemberID)
	case domain.ParticipationLeft:
		_, err = Notify(ctx, tx, domain.NotifyParticipationCancelled, actor, now, r.HostID)
	}
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		err = nil // the host deleted their account: nobody to tell
	}
	return err
}

// DefaultSweepAfter is how old pending work (a REQUESTED room request, a
// notification not fanned out, a PENDING delivery) must be before a sweep
// redoes it: its own task has had time to run.
const DefaultSweepAfter = time.Minute

// sweepAfter is d, or DefaultSweepAfter when d is not set.
func sweepAfter(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultSweepAfter
	}
	return d
}

// participationSweepBatch bounds the requests one sweep re-enqueues.
const participationSweepBatch = 500

// ParticipationSweepHandler processes TypeParticipationSweep: requests
// still REQUESTED After they were made get their task again, under a task
// id per request so a task still queued is not doubled.
type ParticipationSweepHandler struct {
	DB        *bun.DB
	Client    *asynq.Client
	Inspector *asynq.Inspector
	// After is the age of a request the sweep takes up; zero means
	// DefaultSweepAfter.
	After   time.Duration
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// ProcessTask sweeps once.
func (h *ParticipationSweepHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if _, err := decodeTickPayload(TypeParticipationSweep, t.Payload()); err != nil {
		return err
	}
	pending, err := (db.Participations{}).Pending(ctx, h.DB, h.NowFunc().Add(-sweepAfter(h.After)), participationSweepBatch)
	if err != nil {
		return fmt.Errorf("participation sweep: %w", err)
	}
	requeued := 0
	for _, p := range pending {
		task, err := NewParticipationTask(p.Key)
		if err != nil {
			return err
		}
		// A task of an earlier sweep that ran out of retries is replaced,
		// so the request is not stuck behind its id.
		state, err := enqueueOnce(ctx, h.Client, h.Inspector, asynq.NewTask(task.Type, task.Payload), task.Queue,
			"room:participation:"+strconv.FormatInt(p.Key, 10), asynq.MaxRetry(task.MaxRetry))
		if err != nil {
			return fmt.Errorf("participation sweep: enqueue request %s: %w", p.ID, err)
		}
		if state == 0 {
			requeued++
		}
	}
	if requeued > 0 {
		h.Logger.InfoContext(ctx, "participation sweep re-enqueued requests", slog.Int("requests", requeued))
	}
	return nil
}
