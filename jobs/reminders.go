package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// The group-run reminder tick.
const (
	TypeRoomReminders = "tick:room-reminders"
	TickRoomReminders = "room-reminders"
)

// RoomRemindersHandler processes TypeRoomReminders: every reminder that is
// due (domain.ReminderRules.Sendable at the time the tick runs) goes to
// each member who has not had it, with its sent marker and notification
// in one transaction per room. A late tick still sends what is due within
// the grace window; a repeated or concurrent tick finds the markers and
// sends nothing twice.
type RoomRemindersHandler struct {
	DB      *bun.DB
	Relay   *Relay
	Rules   domain.ReminderRules
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// ProcessTask sends the due reminders.
func (h *RoomRemindersHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if _, err := decodeTickPayload(TypeRoomReminders, t.Payload()); err != nil {
		return err
	}
	_, err := h.Run(ctx)
	return err
}

// Run sends the reminders due now and returns how many notifications it
// created.
func (h *RoomRemindersHandler) Run(ctx context.Context) (int, error) {
	now := h.NowFunc().UTC()
	sent := 0
	var errs []error
	for _, kind := range domain.ReminderKinds() {
		from, to := h.Rules.StartWindow(kind, now)
		rooms, err := (db.Reminders{}).RoomsStarting(ctx, h.DB, h.Rules.Categories[kind], from, to)
		if err != nil {
			return sent, fmt.Errorf("reminders %v: %w", kind, err)
		}
		for i := range rooms {
			if !h.Rules.Sendable(kind, rooms[i].StartsAt, now) {
				continue
			}
			r, err := (db.Rooms{}).FindByKey(ctx, h.DB, rooms[i].Key)
			if err != nil {
				errs = append(errs, fmt.Errorf("reminder %v: %w", kind, err))
				continue
			}
			n, err := h.remind(ctx, r, kind, now)
			switch {
			case domain.ErrorCode(err) == domain.ECONFLICT:
				// Another tick is sending this room's reminders.
				h.Logger.DebugContext(ctx, "reminder taken by another worker", slog.String("room", r.ID), slog.String("kind", kind.String()))
			case err != nil:
				errs = append(errs, fmt.Errorf("reminder %v of room %s: %w", kind, r.ID, err))
			default:
				sent += n
			}
		}
	}
	if sent > 0 {
		h.Logger.InfoContext(ctx, "room reminders sent", slog.Int("notifications", sent))
	}
	return sent, errors.Join(errs...)
}

// remind marks and notifies one room's members of one reminder.
func (h *RoomRemindersHandler) remind(ctx context.Context, r *domain.Room, kind domain.ReminderKind, now time.Time) (int, error) {
	var to []string
	for _, p := range r.Participants {
		// The ended reminder asks guests to evaluate the host.
		if kind == domain.ReminderEnded && p.Host {
			continue
		}
		to = append(to, p.MemberID)
	}
	sent := 0
	run := func(ctx context.Context, tx bun.Tx) error {
		sent = 0
		marked, err := (db.Reminders{}).Mark(ctx, tx, r, kind, to, now)
		if err != nil {
			return err
		}
		args := RoomArgs(r)
		switch kind {
		case domain.ReminderStartsSoon:
			// Attendance opens now; the host's message links to it.
			var guests []string
			for _, id := range marked {
				if id == r.HostID {
					hostArgs := args
					hostArgs.Link = "/rooms/" + r.ID + "/attendance"
					if _, err := Notify(ctx, tx, kind.Notification(), hostArgs, now, id); err != nil {
						return err
					}
					sent++
					continue
				}
				guests = append(guests, id)
			}
			marked = guests
		case domain.ReminderEnded:
			args.Link = "/rooms/" + r.ID + "/evaluation"
		}
		if len(marked) == 0 {
			return nil
		}
		// Reminders go by SMS, mail and in-app only, so one call for all
		// shares a fan-out task and nothing else.
		if _, err := Notify(ctx, tx, kind.Notification(), args, now, marked...); err != nil {
			return err
		}
		sent += len(marked)
		return nil
	}
	var err error
	if h.Relay != nil {
		err = h.Relay.RunInTx(ctx, run)
	} else {
		err = db.RunInTx(ctx, h.DB, run)
	}
	if err != nil {
		return 0, err
	}
	return sent, nil
}
