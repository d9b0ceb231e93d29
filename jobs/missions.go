package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// The mission task types and ticks.
const (
	// TypeMissionTransitions is the tick that enqueues a transition task
	// for every mission due to start or to close.
	TypeMissionTransitions = "tick:mission-transitions"
	// TickMissionTransitions is its catalogue name.
	TickMissionTransitions = "mission-transitions"
	// TypeMissionTransition starts, cancels or closes one mission.
	TypeMissionTransition = "mission:transition"
	// TypeMissionReminders is the tick that sends the verify reminders.
	TypeMissionReminders = "tick:mission-reminders"
	// TickMissionReminders is its catalogue name.
	TickMissionReminders = "mission-reminders"
)

// MissionPayload names a mission by row id.
type MissionPayload struct {
	Mission int64 `json:"mission"`
}

// NewMissionTransitionTask returns the transition task of mission key.
func NewMissionTransitionTask(key int64) (Task, error) {
	// Payouts wait on it: retries ride out a database that is down.
	return newTask(TypeMissionTransition, MissionPayload{Mission: key}, QueueDefault, 10)
}

// missionTransitionID names the task of one due transition: the mission
// and the status it leaves, so a repeated tick or a second scheduler
// enqueues it once, and the close after the start has an id of its own.
func missionTransitionID(d missiondb.DueMission) string {
	return "mission:transition:" + strconv.FormatInt(d.Key, 10) + ":" + strconv.Itoa(int(d.Status))
}

// missionDueBatch bounds one read of due missions; the tick reads on until
// none is left, so a backlog of any size is enqueued by one tick.
const missionDueBatch = 500

// MissionTransitionsHandler processes TypeMissionTransitions: every OPEN
// mission whose start has come and every ONGOING one whose end has passed,
// however long ago (a scheduler down for hours is caught up by the next
// tick), gets a TypeMissionTransition task under an id per mission and
// status.
type MissionTransitionsHandler struct {
	DB        *bun.DB
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Logger    *slog.Logger
	NowFunc   func() time.Time
}

// ProcessTask enqueues the due transitions.
func (h *MissionTransitionsHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if _, err := decodeTickPayload(TypeMissionTransitions, t.Payload()); err != nil {
		return err
	}
	_, err := h.Run(ctx)
	return err
}

// Run enqueues a task for each mission due now and returns how many it
// enqueued (tasks already queued under their id are not counted).
func (h *MissionTransitionsHandler) Run(ctx context.Context) (int, error) {
	now := h.NowFunc().UTC()
	enqueued := 0
	for _, status := range []domain.MissionStatus{domain.MissionOpen, domain.MissionOngoing} {
		var after missiondb.DueMission
		for {
			due, err := (missiondb.Missions{}).DueMissions(ctx, h.DB, status, now, after, missionDueBatch)
			if err != nil {
				return enqueued, fmt.Errorf("mission transitions: %w", err)
			}
			for _, d := range due {
				task, err := NewMissionTransitionTask(d.Key)
				if err != nil {
					return enqueued, err
				}
				state, err := enqueueOnce(ctx, h.Client, h.Inspector, asynq.NewTask(task.Type, task.Payload), task.Queue,
					missionTransitionID(d), asynq.MaxRetry(task.MaxRetry))
				if err != nil {
					return enqueued, fmt.Errorf("mission transitions: enqueue mission %d: %w", d.Key, err)
				}
				if state == 0 {
					enqueued++
				}
			}
			if len(due) < missionDueBatch {
				break
			}
			after = due[len(due)-1]
		}
	}
	if enqueued > 0 {
		h.Logger.InfoContext(ctx, "mission transitions enqueued", slog.Int("missions", enqueued))
	}
	return enqueued, nil
}

// missionStaleRetries bounds the rereads of a mission that moved between
// the read and the version-checked update (a host's edit, another worker's
// transition); the reread finds it done or due for something else.
const missionStaleRetries = 5

// MissionTransitionHandler processes TypeMissionTransition: it moves the
// mission on with missiondb.Missions.Transition and notifies its members, all in
// one transaction, so a transition and its notifications commit together
// and a rerun (a retry, a second worker, a repeated tick) finds nothing due.
type MissionTransitionHandler struct {
	DB      *bun.DB
	Relay   *Relay
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// ProcessTask moves the payload's mission on.
func (h *MissionTransitionHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p MissionPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Mission <= 0 {
		return fmt.Errorf("decode %s payload: %v: %w", TypeMissionTransition, err, asynq.SkipRetry)
	}
	_, err := h.Transition(ctx, p.Mission)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return fmt.Errorf("mission %d: %w: %w", p.Mission, err, asynq.SkipRetry)
	}
	return err
}

// Transition moves mission key on as far as it is due now, one
// transaction per step: a mission whose start and end have both passed (a
// long outage) is started and then closed. It returns the transitions made.
func (h *MissionTransitionHandler) Transition(ctx context.Context, key int64) ([]missiondb.MissionTransition, error) {
	var done []missiondb.MissionTransition
	for stale := 0; ; {
		now := h.NowFunc().UTC()
		var tr *missiondb.MissionTransition
		err := runMissionTx(ctx, h.Relay, h.DB, func(ctx context.Context, tx bun.Tx) error {
			var err error
			if tr, err = (missiondb.Missions{}).Transition(ctx, tx, key, now); err != nil {
				return err
			}
			return notifyTransition(ctx, tx, tr, now)
		})
		switch {
		case errors.Is(err, db.ErrStale) && stale < missionStaleRetries:
			stale++
			continue
		case err != nil:
			return done, fmt.Errorf("mission %d: %w", key, err)
		case tr.To == 0:
			return done, nil
		}
		done = append(done, *tr)
		h.Logger.DebugContext(ctx, "mission moved on", slog.String("mission", tr.Mission.ID),
			slog.String("from", tr.Mission.Status.String()), slog.String("to", tr.To.String()))
		// Only a start can leave something due: the end, when it passed too.
		if tr.To != domain.MissionOngoing || tr.Mission.EndsAt.After(now) {
			return done, nil
		}
	}
}

// runMissionTx runs fn in a transaction, through the relay when there is one
// so the tasks fn enqueued are relayed at once.
func runMissionTx(ctx context.Context, relay *Relay, bdb *bun.DB, fn func(ctx context.Context, tx bun.Tx) error) error {
	if relay != nil {
		return relay.RunInTx(ctx, fn)
	}
	return db.RunInTx(ctx, bdb, fn)
}

// transitionArgs are the notification arguments naming mission m.
func transitionArgs(m *domain.Mission) domain.NotificationArgs {
	return domain.NotificationArgs{MissionID: m.ID, Title: m.Title, Link: "/missions/" + m.ID}
}

// notifyTransition tells the members what tr did: MISSION_STARTED to
// every member; MISSION_CANCELLED with the refund; MISSION_CLOSED with
// each ACTIVE member's rate and amount (a member who left after the start
// is not told). Members with the same arguments share one producer call.
func notifyTransition(ctx context.Context, tx bun.IDB, tr *missiondb.MissionTransition, now time.Time) error {
	var typ domain.NotificationType
	switch tr.To {
	case domain.MissionOngoing:
		typ = domain.NotifyMissionStarted
	case domain.MissionCancelled:
		typ = domain.NotifyMissionCancelled
	case domain.MissionClose:
		typ = domain.NotifyMissionClosed
	default:
		return nil
	}
	type group struct {
		args domain.NotificationArgs
		to   []string
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, mm := range tr.Members {
		if mm.Status != domain.MissionMemberActive {
			continue
		}
		args := transitionArgs(tr.Mission)
		k := ""
		switch tr.To {
		case domain.MissionCancelled:
			args.Amount = mm.Amount()
			k = strconv.FormatInt(args.Amount, 10)
		case domain.MissionClose:
			rate := mm.Payout.RateBP
			args.Amount, args.RateBP = mm.Amount(), &rate
			k = strconv.Itoa(rate) + "/" + strconv.FormatInt(args.Amount, 10)
		}
		g, ok := byKey[k]
		if !ok {
			g = &group{args: args}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.to = append(g.to, mm.MemberID)
	}
	for _, g := range groups {
		if _, err := Notify(ctx, tx, typ, g.args, now, g.to...); err != nil {
			return err
		}
	}
	return nil
}

// MissionRemindersHandler processes TypeMissionReminders: for each window
// of an ONGOING mission that is open and closes within Before, every
// ACTIVE member who has not verified that mission day gets one
// MISSION_VERIFY_REMINDER, marked sent in the transaction that creates it
// (one per mission and window), so a repeated or concurrent tick sends
// nothing twice and a late one still sends until the window closes.
type MissionRemindersHandler struct {
	DB    *bun.DB
	Relay *Relay
	// Location is the zone of mission days and windows
	// (scheduler.timezone).
	Location *time.Location
	// Before is how long before a window closes the reminder goes out
	// (missions.reminder_before); zero means DefaultMissionReminderBefore.
	Before  time.Duration
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// DefaultMissionReminderBefore is config's missions.reminder_before.
const DefaultMissionReminderBefore = 30 * time.Minute

// ProcessTask sends the due reminders.
func (h *MissionRemindersHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if _, err := decodeTickPayload(TypeMissionReminders, t.Payload()); err != nil {
		return err
	}
	_, err := h.Run(ctx)
	return err
}

// Run sends the reminders due now and returns how many notifications it
// created.
func (h *MissionRemindersHandler) Run(ctx context.Context) (int, error) {
	now := h.NowFunc().UTC()
	loc := h.Location
	if loc == nil {
		loc = time.UTC
	}
	before := h.Before
	if before <= 0 {
		before = DefaultMissionReminderBefore
	}
	due, err := (missiondb.Missions{}).VerifyRemindersDue(ctx, h.DB, now, loc, before)
	if err != nil {
		return 0, fmt.Errorf("mission reminders: %w", err)
	}
	sent := 0
	var errs []error
	for i := range due {
		r := &due[i]
		n := 0
		err := runMissionTx(ctx, h.Relay, h.DB, func(ctx context.Context, tx bun.Tx) error {
			n = 0
			to, err := (missiondb.Missions{}).MarkVerifyReminder(ctx, tx, r, now)
			if err != nil || len(to) == 0 {
				return err
			}
			args := transitionArgs(&r.Mission)
			args.StartsAt = r.ClosesAt
			ns, err := Notify(ctx, tx, domain.NotifyMissionVerifyReminder, args, now, to...)
			n = len(ns)
			return err
		})
		switch {
		case domain.ErrorCode(err) == domain.ECONFLICT:
			// Another tick is sending this window's reminders.
			h.Logger.DebugContext(ctx, "verify reminder taken by another worker", slog.String("mission", r.Mission.ID))
		case err != nil:
			errs = append(errs, fmt.Errorf("verify reminder of mission %s: %w", r.Mission.ID, err))
		default:
			sent += n
		}
	}
	if sent > 0 {
		h.Logger.InfoContext(ctx, "mission verify reminders sent", slog.Int("notifications", sent))
	}
	return sent, errors.Join(errs...)
}
