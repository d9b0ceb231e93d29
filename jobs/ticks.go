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

// newTickTask builds the task of a tick for slot.
func newTickTask(typ string, slot time.Time, queue string, maxRetry int) (Task, error) {
	return newTask(typ, TickPayload{Slot: slot.UTC().Format(time.RFC3339)}, queue, maxRetry)
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

// Ticks returns the tick catalogue that every scheduler runs. It is a
// function, not a variable, so nobody can change it at run time.
func Ticks() []Tick {
	return []Tick{
		{
			Name:  TickOutboxPrune,
			Spec:  "*/10 * * * *",
			Queue: QueueLow,
			Build: func(slot time.Time) (Task, error) {
				// A lost prune is harmless: the next slot deletes the same rows.
				return newTickTask(TypeOutboxPrune, slot, QueueLow, 2)
			},
		},
		{
			Name:  TickDeliverySweep,
			Spec:  "*/5 * * * *",
			Queue: QueueLow,
			Build: func(slot time.Time) (Task, error) {
				// The next slot finds whatever this one missed.
				return newTickTask(TypeDeliverySweep, slot, QueueLow, 1)
			},
		},
		{
			Name: TickMatchSweep,
			// Every 30 seconds: the seconds field keeps slots on the
			// wall clock, so every scheduler names the same slots.
			Spec:  "*/30 * * * * *",
			Queue: QueueCritical,
			Build: func(slot time.Time) (Task, error) {
				// A lost sweep is caught by the next one.
				return newTickTask(TypeMatchSweep, slot, QueueCritical, 1)
			},
		},
		{
			Name:  TickParticipationSweep,
			Spec:  "* * * * *",
			Queue: QueueCritical,
			Build: func(slot time.Time) (Task, error) {
				// The next slot finds whatever this one missed.
				return newTickTask(TypeParticipationSweep, slot, QueueCritical, 1)
			},
		},
		{
			Name:  TickRoomReminders,
			Spec:  "* * * * *",
			Queue: QueueDefault,
			Build: func(slot time.Time) (Task, error) {
				// Reminders are sent against the time the tick runs, with
				// a grace window, so a retry or the next slot catches up.
				return newTickTask(TypeRoomReminders, slot, QueueDefault, 3)
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
	batch := h.BatchSize
	if batch <= 0 {
		batch = defaultPruneBatch
	}
	now := time.Now
	if h.NowFunc != nil {
		now = h.NowFunc
	}
	// One cut-off for the whole run, so the loop ends: rows sent meanwhile
	// are newer than it.
	before := now().Add(-keep)

	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("prune outbox: %w", err)
		}
		n, err := db.Outbox{}.DeleteSentBefore(ctx, h.DB, before, batch)
		if err != nil {
			return fmt.Errorf("prune outbox: %w", err)
		}
		total += n
		if n < batch {
			break
		}
	}
	if h.Logger != nil {
		// Most runs find nothing; only a run that deleted rows is news.
		level := slog.LevelDebug
		if total > 0 {
			level = slog.LevelInfo
		}
		h.Logger.Log(ctx, level, "outbox pruned",
			slog.Int("deleted", total),
			slog.Time("sent_before", before),
			slog.Time("slot", slot))
	}
	return nil
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
