package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// The notification sweep tick.
const (
	// TypeNotificationSweep redoes the fan-out of notifications whose
	// fan-out task never finished (lost with Redis, or archived).
	TypeNotificationSweep = "tick:notification-sweep"
	// TickNotificationSweep is its catalogue name.
	TickNotificationSweep = "notification-sweep"
)

// notificationSweepBatch bounds one read of notifications not fanned out.
const notificationSweepBatch = 500

// NotificationSweepHandler processes TypeNotificationSweep: every
// notification older than After that is not fanned out is
// fanned out here, announcement included, through Fanout. The
// notifications of one producer call (same type, arguments and time) are
// fanned out together, so a group keeps its one Slack message.
type NotificationSweepHandler struct {
	Fanout *NotifyFanoutHandler
	// After is how old a notification must be before the sweep fans it
	// out (its own task has had time to run); zero means DefaultSweepAfter.
	After   time.Duration
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// ProcessTask sweeps once. A second or concurrent sweep creates nothing
// twice: each fan-out marks its notifications in its own transaction.
func (h *NotificationSweepHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if _, err := decodeTickPayload(TypeNotificationSweep, t.Payload()); err != nil {
		return err
	}
	before := h.NowFunc().UTC().Add(-sweepAfter(h.After))
	redone := 0
	var errs []error
	for after := int64(0); ; {
		rows, err := (db.Notifications{}).Unfanned(ctx, h.Fanout.DB, before, after, notificationSweepBatch)
		if err != nil {
			return fmt.Errorf("notification sweep: %w", err)
		}
		full := len(rows) == notificationSweepBatch
		groups, next := producerCalls(rows, full, after)
		for _, ids := range groups {
			if err := h.Fanout.fanOut(ctx, ids, len(ids) > 1); err != nil {
				errs = append(errs, fmt.Errorf("notification sweep: %w", err))
				continue
			}
			redone += len(ids)
		}
		if !full {
			break
		}
		after = next
	}
	if redone > 0 {
		h.Logger.WarnContext(ctx, "notifications had no fan-out; fanned out by the sweep", slog.Int("notifications", redone))
	}
	return errors.Join(errs...)
}

// producerCalls groups rows, in id order, by the producer call that wrote
// them: one Notify call writes one type, argument set and time for all its
// members. When the read was full (more rows may follow), the call of the
// last row may go on past it and is left for the next read, unless that
// would make no progress. It returns the groups and the cursor to read on
// from.
func producerCalls(rows []db.Unfanned, full bool, after int64) ([][]string, int64) {
	type key struct {
		typ  domain.NotificationType
		args string
		at   time.Time
	}
	keyOf := func(r db.Unfanned) key { return key{r.Type, r.Args, r.CreatedAt} }
	var (
		order []key
		ids   = map[key][]string{}
		first = map[key]int64{}
	)
	for _, r := range rows {
		k := keyOf(r)
		if _, ok := ids[k]; !ok {
			order = append(order, k)
			first[k] = r.Key
		}
		ids[k] = append(ids[k], r.ID)
	}
	next := after
	if len(rows) > 0 {
		next = rows[len(rows)-1].Key
	}
	if full && len(order) > 1 {
		last := keyOf(rows[len(rows)-1])
		if cut := first[last] - 1; cut > after {
			delete(ids, last)
			next = cut
		}
	}
	var out [][]string
	for _, k := range order {
		if g, ok := ids[k]; ok {
			out = append(out, g)
		}
	}
	return out, next
}
