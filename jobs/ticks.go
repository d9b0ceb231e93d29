package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
)

// Tick is one entry of the scheduler's catalogue: a named periodic task. The
// scheduler enqueues Build(slot) once per slot of Spec with the task id
// Name@slot, so any number of schedulers agree on what each slot is.
type Tick struct {
	// Name identifies the tick in config overrides, logs, metrics and task
	// ids; it is never renamed in place.
	Name string
	// Spec is the default cron spec: five fields (minute first), six with a
	// leading seconds field, or a descriptor such as @hourly or @every 30m.
	Spec string
	// Queue is where the tick's tasks go ("" means QueueDefault).
	Queue string
	// Build returns the task for one slot, the exact scheduled time.
	Build func(slot time.Time) (Task, error)
}

// EffectiveSpec returns the spec the tick runs on: the override named after
// the tick when there is one, else Spec.
func (t Tick) EffectiveSpec(overrides map[string]string) string {
	if s, ok := overrides[t.Name]; ok {
		return strings.TrimSpace(s)
	}
	return t.Spec
}

// TickPayload is the payload of every tick task: the slot it stands for, in
// UTC RFC 3339, so a handler can tell which run it is.
type TickPayload struct {
	Slot string `json:"slot"`
}

// newTickTask builds the task of a tick for slot, in QueueTicks.
func newTickTask(typ string, slot time.Time, maxRetry int) (Task, error) {
	return newTask(typ, TickPayload{Slot: slot.UTC().Format(time.RFC3339)}, QueueTicks, maxRetry)
}

// decodeTickPayload parses a tick payload; a bad one can never succeed, so it
// is wrapped in asynq.SkipRetry.
func decodeTickPayload(typ string, payload []byte) (time.Time, error) {
	var p TickPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return time.Time{}, fmt.Errorf("decode %s payload: %v: %w", typ, err, asynq.SkipRetry)
	}
	slot, err := time.Parse(time.RFC3339, p.Slot)
	if err != nil {
		return time.Time{}, fmt.Errorf("decode %s payload: slot: %v: %w", typ, err, asynq.SkipRetry)
	}
	return slot, nil
}

// TypeOutboxPrune is the tick that deletes outbox rows sent long ago.
const TypeOutboxPrune = "tick:outbox-prune"

// TickOutboxPrune is the catalogue name of the outbox prune tick.
const TickOutboxPrune = "outbox-prune"

// TypeRetention is the tick that deletes old notifications, finished
// deliveries and ended sessions.
const TypeRetention = "tick:retention"

// TickRetention is its catalogue name.
const TickRetention = "retention"

// Ticks returns the tick catalogue that every scheduler runs. It is a
// function, not a variable, so nobody can change it at run time.
func Ticks() []Tick {
	return []Tick{
		{
			Name:  TickOutboxPrune,
			Spec:  "*/10 * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// A lost prune is harmless: the next slot deletes the same rows.
				return newTickTask(TypeOutboxPrune, slot, 2)
			},
		},
		{
			Name:  TickRetention,
			Spec:  "*/15 * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// A lost run is harmless: the next slot deletes the same rows.
				return newTickTask(TypeRetention, slot, 2)
			},
		},
		{
			Name: TickDeliverySweep,
			// Every minute: a delivery whose task Redis lost waits at most
			// this plus worker.sweep_after.
			Spec:  "* * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// The next slot finds whatever this one missed.
				return newTickTask(TypeDeliverySweep, slot, 1)
			},
		},
		{
			Name:  TickNotificationSweep,
			Spec:  "* * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// The next slot finds whatever this one missed.
				return newTickTask(TypeNotificationSweep, slot, 1)
			},
		},
		{
			Name: TickMatchSweep,
			// Every 30 seconds: the seconds field keeps slots on the
			// wall clock, so every scheduler names the same slots.
			Spec:  "*/30 * * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// A lost sweep is caught by the next one.
				return newTickTask(TypeMatchSweep, slot, 1)
			},
		},
		{
			Name:  TickParticipationSweep,
			Spec:  "* * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// The next slot finds whatever this one missed.
				return newTickTask(TypeParticipationSweep, slot, 1)
			},
		},
		{
			Name:  TickUploadCleanup,
			Spec:  "*/5 * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// A lost run is harmless: the next slot deletes the same uploads.
				return newTickTask(TypeUploadCleanup, slot, 2)
			},
		},
		{
			Name:  TickRoomReminders,
			Spec:  "* * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// Reminders are sent against the time the tick runs, with
				// a grace window, so a retry or the next slot catches up.
				return newTickTask(TypeRoomReminders, slot, 3)
			},
		},
		{
			// Every minute, so a mission starts and closes on time (Octopus
			// ran once at midnight: a start up to a day late).
			Name:  TickMissionTransitions,
			Spec:  "* * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// The next slot finds every mission this one missed.
				return newTickTask(TypeMissionTransitions, slot, 1)
			},
		},
		{
			Name:  TickMissionReminders,
			Spec:  "* * * * *",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// Due until the window closes, so the next slot catches up.
				return newTickTask(TypeMissionReminders, slot, 3)
			},
		},
		{
			Name: TickTaskInvitations,
			// easytask's 15 seconds; tasks.round_interval overrides it.
			// "@every" slots are aligned to the epoch, so every
			// scheduler names the same ones.
			Spec:  "@every 15s",
			Queue: QueueTicks,
			Build: func(slot time.Time) (Task, error) {
				// The next slot does whatever this one missed.
				return newTickTask(TypeTaskInvitations, slot, 1)
			},
		},
	}
}

// DefaultOutboxKeepSent is how long sent outbox rows are kept when
// OutboxPruneHandler.KeepSent is zero, as config's outbox.keep_sent: a day
// to investigate a task, while at 150 requests/s the table holds about
// ten million rows.
const DefaultOutboxKeepSent = 24 * time.Hour

// defaultPruneBatch bounds one DELETE so a large backlog never holds a long
// lock or a huge transaction.
const defaultPruneBatch = 1000

// OutboxPruneHandler processes TypeOutboxPrune: it deletes outbox rows that
// were sent more than KeepSent ago. Running it twice is harmless: the second
// run finds nothing left to delete.
type OutboxPruneHandler struct {
	DB *bun.DB
	// KeepSent is how long sent rows stay; zero means DefaultOutboxKeepSent.
	KeepSent time.Duration
	// BatchSize is the most rows one statement deletes; zero means 1000.
	BatchSize int
	NowFunc   func() time.Time
	Logger    *slog.Logger
}

// ProcessTask deletes sent outbox rows older than KeepSent, batch by batch,
// until a batch comes back short or ctx is done.
func (h *OutboxPruneHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	slot, err := decodeTickPayload(TypeOutboxPrune, t.Payload())
	if err != nil {
		return err
	}
	keep := h.KeepSent
	if keep <= 0 {
		keep = DefaultOutboxKeepSent
	}
	// One cut-off for the whole run, so the loop ends: rows sent meanwhile
	// are newer than it.
	before := nowOf(h.NowFunc).Add(-keep)

	total, err := deleteInBatches(ctx, h.BatchSize, func(limit int) (int, error) {
		return db.Outbox{}.DeleteSentBefore(ctx, h.DB, before, limit)
	})
	if err != nil {
		return fmt.Errorf("prune outbox: %w", err)
	}
	logDeleted(ctx, h.Logger, "outbox pruned", total, slog.Time("sent_before", before), slog.Time("slot", slot))
	return nil
}

// nowOf returns the time by f, or by the wall clock when f is nil.
func nowOf(f func() time.Time) time.Time {
	if f == nil {
		return time.Now()
	}
	return f()
}

// logDeleted logs a delete tick's count: most runs find nothing, and only
// a run that deleted rows is news (Info rather than Debug). A nil logger
// logs nothing.
func logDeleted(ctx context.Context, logger *slog.Logger, msg string, n int, attrs ...slog.Attr) {
	if logger == nil {
		return
	}
	level := slog.LevelDebug
	if n > 0 {
		level = slog.LevelInfo
	}
	logger.LogAttrs(ctx, level, msg, append([]slog.Attr{slog.Int("deleted", n)}, attrs...)...)
}

// deleteInBatches calls del with limit batch (zero means
// defaultPruneBatch) until it deletes fewer rows than that or ctx is done,
// and returns how many rows it deleted.
func deleteInBatches(ctx context.Context, batch int, del func(limit int) (int, error)) (int, error) {
	if batch <= 0 {
		batch = defaultPruneBatch
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := del(batch)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// RetentionPolicy says how long rows stay that nobody needs for ever; a
// zero field takes its default.
type RetentionPolicy struct {
	// NotificationsRead: a notification is deleted this long after it was
	// read (default DefaultRetentionNotificationsRead).
	NotificationsRead time.Duration
	// NotificationsUnread: one never read is deleted this long after it
	// was created (default DefaultRetentionNotificationsUnread).
	NotificationsUnread time.Duration
	// Deliveries: a sent, failed or unknown delivery is deleted this long
	// after it last changed (default DefaultRetentionDeliveries).
	Deliveries time.Duration
	// Sessions: a session is deleted this long after it expired, revoked
	// or not (default DefaultRetentionSessions).
	Sessions time.Duration
}

// The retention defaults: a member's list keeps three months of what they
// have read and a year of what they have not; a delivery's record serves
// support questions for a month; an ended session is kept a week to
// answer "where was I signed in".
const (
	DefaultRetentionNotificationsRead   = 90 * 24 * time.Hour
	DefaultRetentionNotificationsUnread = 365 * 24 * time.Hour
	DefaultRetentionDeliveries          = 30 * 24 * time.Hour
	DefaultRetentionSessions            = 7 * 24 * time.Hour
)

func (p RetentionPolicy) withDefaults() RetentionPolicy {
	or := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	return RetentionPolicy{
		NotificationsRead:   or(p.NotificationsRead, DefaultRetentionNotificationsRead),
		NotificationsUnread: or(p.NotificationsUnread, DefaultRetentionNotificationsUnread),
		Deliveries:          or(p.Deliveries, DefaultRetentionDeliveries),
		Sessions:            or(p.Sessions, DefaultRetentionSessions),
	}
}

// RetentionHandler processes TypeRetention: it deletes, batch by batch,
// the deliveries, notifications (with their deliveries) and sessions that
// Policy no longer keeps. Running it twice is harmless.
// AccountCodeKeep is how long an expired account code is kept: the daily
// send limits count a member's and an address's codes of the last 24
// hours, and every code expires within an hour of being made.
const AccountCodeKeep = 24 * time.Hour

type RetentionHandler struct {
	DB     *bun.DB
	Policy RetentionPolicy
	// BatchSize is the most rows one statement deletes; zero means 1000.
	BatchSize int
	NowFunc   func() time.Time
	Logger    *slog.Logger
}

// ProcessTask deletes what has outlived the policy. One table's failure
// does not keep the others from their turn.
func (h *RetentionHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	slot, err := decodeTickPayload(TypeRetention, t.Payload())
	if err != nil {
		return err
	}
	p := h.Policy.withDefaults()
	// One cut-off per table for the whole run, so each loop ends.
	at := nowOf(h.NowFunc)
	steps := []struct {
		table string
		del   func(limit int) (int, error)
	}{
		{"deliveries", func(limit int) (int, error) {
			return db.Deliveries{}.DeleteFinishedBefore(ctx, h.DB, at.Add(-p.Deliveries), limit)
		}},
		{"notifications", func(limit int) (int, error) {
			return db.Notifications{}.DeleteOld(ctx, h.DB, at.Add(-p.NotificationsRead), at.Add(-p.NotificationsUnread), limit)
		}},
		{"sessions", func(limit int) (int, error) {
			return db.SessionStore{DB: h.DB}.DeleteEndedSessions(ctx, at.Add(-p.Sessions), limit)
		}},
		{"account_codes", func(limit int) (int, error) {
			return db.AccountCodes{}.DeleteExpired(ctx, h.DB, at.Add(-AccountCodeKeep), limit)
		}},
	}
	var errs []error
	for _, s := range steps {
		n, err := deleteInBatches(ctx, h.BatchSize, s.del)
		if err != nil {
			errs = append(errs, fmt.Errorf("retention of %s: %w", s.table, err))
		}
		logDeleted(ctx, h.Logger, "retention deleted rows", n, slog.String("table", s.table), slog.Time("slot", slot))
	}
	return errors.Join(errs...)
}

// validTickName keeps names safe inside task ids, metric labels and config
// keys: lowercase letters, digits and dashes, not starting with a dash.
func validTickName(name string) bool {
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r == '-' && i > 0:
		default:
			return false
		}
	}
	return name != ""
}

// ValidateTicks checks a catalogue and the spec overrides from configuration:
// names present, unique and well formed, a Build function, and no override
// for a tick that does not exist. It reports every problem, one line each.
// The specs themselves are parsed by the scheduler, which owns the cron
// library.
func ValidateTicks(ticks []Tick, overrides map[string]string) error {
	var errs []error
	seen := make(map[string]bool, len(ticks))
	for i, t := range ticks {
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("tick %d: name is empty", i))
			continue
		case !validTickName(t.Name):
			errs = append(errs, fmt.Errorf("tick %q: name must be lowercase letters, digits and dashes", t.Name))
		case seen[t.Name]:
			errs = append(errs, fmt.Errorf("tick %q: name is used twice", t.Name))
		}
		seen[t.Name] = true
		if t.Build == nil {
			errs = append(errs, fmt.Errorf("tick %q: no build function", t.Name))
		}
	}
	// Sorted so the report reads the same on every run.
	var unknown []string
	for name := range overrides {
		if !seen[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		errs = append(errs, fmt.Errorf("tick %q: no such tick to override", name))
	}
	return errors.Join(errs...)
}
