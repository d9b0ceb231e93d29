package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
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
	}
}

// DefaultOutboxKeepSent is how long sent outbox rows are kept when
// OutboxPruneHandler.KeepSent is zero: long enough to investigate a task.
const DefaultOutboxKeepSent = 7 * 24 * time.Hour

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
// names present, unique and well formed, a Build function, every spec (after
// overrides) well formed, and no override for a tick that does not exist. It
// reports every problem, one line each.
//
// Specs are checked for the syntax and ranges robfig/cron accepts with an
// optional seconds field and descriptors; jobs does not import the cron
// library itself (only the scheduler does), which also rejects a spec that
// can never fire, such as "0 0 30 2 *".
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
		if err := CheckSpec(t.EffectiveSpec(overrides)); err != nil {
			if _, ok := overrides[t.Name]; ok {
				errs = append(errs, fmt.Errorf("tick %q: override spec: %w", t.Name, err))
			} else {
				errs = append(errs, fmt.Errorf("tick %q: spec: %w", t.Name, err))
			}
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

// cronField is one field of a cron spec: its bounds and, for months and
// days of the week, the names accepted in place of numbers.
type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

// cronFields returns the six fields in spec order (seconds first). It is a
// function so the tables cannot be changed by anyone.
func cronFields() [6]cronField {
	return [6]cronField{
		{name: "second", min: 0, max: 59},
		{name: "minute", min: 0, max: 59},
		{name: "hour", min: 0, max: 23},
		{name: "day of month", min: 1, max: 31},
		{name: "month", min: 1, max: 12, names: map[string]int{
			"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
			"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
		}},
		{name: "day of week", min: 0, max: 6, names: map[string]int{
			"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
		}},
	}
}

// CheckSpec reports whether spec is a cron spec the scheduler accepts: five
// fields (minute, hour, day of month, month, day of week), six with a leading
// seconds field, or a descriptor (@yearly, @annually, @monthly, @weekly,
// @daily, @midnight, @hourly, @every <duration of at least 1s>), optionally
// prefixed by CRON_TZ=<zone>.
func CheckSpec(spec string) error {
	if spec == "" {
		return errors.New("empty spec")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		i := strings.Index(spec, " ")
		if i < 0 {
			return fmt.Errorf("%q: time zone without a schedule", spec)
		}
		zone := spec[strings.Index(spec, "=")+1 : i]
		if _, err := time.LoadLocation(zone); err != nil {
			return fmt.Errorf("%q: time zone: %w", spec, err)
		}
		spec = strings.TrimSpace(spec[i:])
	}
	if strings.HasPrefix(spec, "@") {
		return checkDescriptor(spec)
	}
	fields := strings.Fields(spec)
	switch len(fields) {
	case 5:
		fields = append([]string{"0"}, fields...)
	case 6:
	default:
		return fmt.Errorf("%q: want 5 or 6 fields, found %d", spec, len(fields))
	}
	cf := cronFields()
	for i, f := range fields {
		if err := checkCronField(f, cf[i]); err != nil {
			return fmt.Errorf("%q: %s: %w", spec, cf[i].name, err)
		}
	}
	return nil
}

func checkDescriptor(spec string) error {
	switch spec {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return nil
	}
	const every = "@every "
	if !strings.HasPrefix(spec, every) {
		return fmt.Errorf("%q: unknown descriptor", spec)
	}
	d, err := time.ParseDuration(spec[len(every):])
	if err != nil {
		return fmt.Errorf("%q: %w", spec, err)
	}
	if d < time.Second {
		return fmt.Errorf("%q: interval must be at least 1s", spec)
	}
	return nil
}

// checkCronField checks a comma-separated list of ranges, each "*", "?", a
// value, "a-b", with an optional "/step". Empty list items are ignored, as
// the cron library does; a field with no items at all is refused because it
// would never match.
func checkCronField(field string, f cronField) error {
	items := strings.FieldsFunc(field, func(r rune) bool { return r == ',' })
	if len(items) == 0 {
		return fmt.Errorf("%q: no values", field)
	}
	for _, item := range items {
		if err := checkCronRange(item, f); err != nil {
			return err
		}
	}
	return nil
}

func checkCronRange(item string, f cronField) error {
	rangeAndStep := strings.Split(item, "/")
	lowHigh := strings.Split(rangeAndStep[0], "-")
	var start, end int
	if lowHigh[0] == "*" || lowHigh[0] == "?" {
		start, end = f.min, f.max
	} else {
		var err error
		if start, err = cronValue(lowHigh[0], f); err != nil {
			return err
		}
		switch len(lowHigh) {
		case 1:
			end = start
		case 2:
			if end, err = cronValue(lowHigh[1], f); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%q: too many hyphens", item)
		}
	}
	switch len(rangeAndStep) {
	case 1:
	case 2:
		step, err := cronNumber(rangeAndStep[1])
		if err != nil {
			return err
		}
		if step == 0 {
			return fmt.Errorf("%q: step must be positive", item)
		}
		if len(lowHigh) == 1 {
			end = f.max // "N/step" means "N-max/step"
		}
	default:
		return fmt.Errorf("%q: too many slashes", item)
	}
	switch {
	case start < f.min:
		return fmt.Errorf("%q: %d is below %d", item, start, f.min)
	case end > f.max:
		return fmt.Errorf("%q: %d is above %d", item, end, f.max)
	case start > end:
		return fmt.Errorf("%q: range starts after it ends", item)
	}
	return nil
}

func cronValue(s string, f cronField) (int, error) {
	if n, ok := f.names[strings.ToLower(s)]; ok {
		return n, nil
	}
	return cronNumber(s)
}

func cronNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return n, nil
}
