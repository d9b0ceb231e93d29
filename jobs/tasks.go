package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/domain"
)

// The helper-request task types.
const (
	// TypeTaskInvitations is the tick: expire old invitations, then ask
	// for a round of every task in MATCHING.
	TypeTaskInvitations = "tick:task-invitations"
	// TickTaskInvitations is its catalogue name.
	TickTaskInvitations = "task-invitations"
	// TypeTaskRound invites the next page of helpers to one task.
	TypeTaskRound = "task:invite-round"
)

// Defaults of TaskRoundParams: easytask's chunk of 20; a day to answer.
const (
	DefaultTaskRoundSize = 20
	DefaultInvitationTTL = 24 * time.Hour
)

// TaskRoundParams tune the invitation rounds; zero fields take the
// defaults.
type TaskRoundParams struct {
	// Size is the most helpers one round invites.
	Size int
	// TTL is how long an invitation waits for an answer.
	TTL time.Duration
}

func (p TaskRoundParams) withDefaults() TaskRoundParams {
	if p.Size <= 0 {
		p.Size = DefaultTaskRoundSize
	}
	if p.TTL <= 0 {
		p.TTL = DefaultInvitationTTL
	}
	return p
}

// TaskRoundPayload names the task of a round.
type TaskRoundPayload struct {
	TaskID string `json:"task_id"`
}

// TaskArgs are the notification arguments of a task: its id, title, a
// short excerpt of its details and its page in the app.
func TaskArgs(t *domain.Task) domain.NotificationArgs {
	return domain.NotificationArgs{TaskID: t.ID, Title: t.Title, Excerpt: excerpt(t.Details, taskExcerptRunes),
		Link: "/tasks/" + t.ID}
}

// taskExcerptRunes bounds the details an invitation mail quotes.
const taskExcerptRunes = 200

// excerpt is s cut to at most n runes, with an ellipsis when cut.
func excerpt(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// taskRoundID is the asynq task id of a task's round: while one is
// pending or running, the tick does not add another.
func taskRoundID(taskID string) string { return "task:round:" + taskID }

// taskRoundTimeout bounds one round, well inside the tick interval's
// order of magnitude, so a hung round frees its task id.
const taskRoundTimeout = time.Minute

// TaskInvitationsHandler processes TypeTaskInvitations: it expires the
// invitations whose time ran out, then enqueues a round for every task in
// MATCHING, each under its task's id, so a round still queued or running
// is not doubled. Two schedulers' ticks, or a retried one, add nothing
// twice.
type TaskInvitationsHandler struct {
	DB        *bun.DB
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Logger    *slog.Logger
	NowFunc   func() time.Time
}

// taskTickBatch bounds one read of the tick.
const taskTickBatch = 500

// ProcessTask runs the tick once.
func (h *TaskInvitationsHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	slot, err := decodeTickPayload(TypeTaskInvitations, t.Payload())
	if err != nil {
		return err
	}
	now := nowOf(h.NowFunc)
	expired, err := deleteInBatches(ctx, taskTickBatch, func(limit int) (int, error) {
		return (taskdb.Tasks{}).ExpireInvitations(ctx, h.DB, now, limit)
	})
	if err != nil {
		return fmt.Errorf("task invitations: expire: %w", err)
	}
	var errs []error
	enqueued := 0
	for after := int64(0); ; {
		refs, err := (taskdb.Tasks{}).Matching(ctx, h.DB, after, taskTickBatch)
		if err != nil {
			return fmt.Errorf("task invitations: %w", err)
		}
		for _, ref := range refs {
			payload, err := json.Marshal(TaskRoundPayload{TaskID: ref.ID})
			if err != nil {
				return err
			}
			// One task's failure does not keep the others from their round.
			state, err := enqueueOnce(ctx, h.Client, h.Inspector, asynq.NewTask(TypeTaskRound, payload), QueueDefault,
				taskRoundID(ref.ID), asynq.MaxRetry(3), asynq.Timeout(taskRoundTimeout))
			if err != nil {
				errs = append(errs, fmt.Errorf("task invitations: enqueue round of %s: %w", ref.ID, err))
			} else if state == 0 {
				enqueued++
			}
		}
		if len(refs) < taskTickBatch {
			break
		}
		after = refs[len(refs)-1].Key
	}
	if h.Logger != nil && (expired > 0 || enqueued > 0) {
		h.Logger.DebugContext(ctx, "task invitation rounds enqueued", slog.Int("rounds", enqueued),
			slog.Int("expired", expired), slog.Time("slot", slot))
	}
	return errors.Join(errs...)
}

// TaskRoundHandler processes TypeTaskRound: in one transaction it invites
// the next page of qualified helpers not invited before and gives each a
// TASK_INVITATION, or, when nobody is left to invite and no invitation is
// open while the task is still short, tells the customer once
// (TASK_SHORT_OF_HELPERS). A round that dies before its commit leaves
// nothing, so the next one starts from the same place; two at once cannot
// invite a helper twice (the invitation's unique key).
type TaskRoundHandler struct {
	DB      *bun.DB
	Relay   *Relay
	Params  TaskRoundParams
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// ProcessTask runs one round.
func (h *TaskRoundHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p TaskRoundPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.TaskID == "" {
		return fmt.Errorf("decode %s payload: %v: %w", TypeTaskRound, err, asynq.SkipRetry)
	}
	_, err := h.Round(ctx, p.TaskID)
	return err
}

// Round invites the next page of helpers to task id and returns how many
// it invited. A task gone or no longer MATCHING gets nothing.
func (h *TaskRoundHandler) Round(ctx context.Context, id string) (int, error) {
	params := h.Params.withDefaults()
	now := nowOf(h.NowFunc).UTC()
	invited := 0
	run := func(ctx context.Context, tx bun.Tx) error {
		invited = 0
		task, err := (taskdb.Tasks{}).FindByID(ctx, tx, id)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return nil
		}
		if err != nil {
			return err
		}
		if task.Status != domain.TaskMatching {
			return nil
		}
		cands, err := (taskdb.Tasks{}).Candidates(ctx, tx, task, params.Size)
		if err != nil {
			return err
		}
		if len(cands) == 0 {
			return h.tellShort(ctx, tx, task, now)
		}
		got, err := (taskdb.Tasks{}).Invite(ctx, tx, task, cands, now, now.Add(params.TTL))
		if err != nil || len(got) == 0 {
			return err
		}
		ids := make([]string, len(got))
		for i, c := range got {
			ids[i] = c.ID
		}
		if _, err := Notify(ctx, tx, domain.NotifyTaskInvitation, TaskArgs(task), now, ids...); err != nil {
			return err
		}
		invited = len(got)
		return nil
	}
	var err error
	if h.Relay != nil {
		err = h.Relay.RunInTx(ctx, run)
	} else {
		err = db.RunInTx(ctx, h.DB, run)
	}
	if err != nil {
		return 0, fmt.Errorf("invitation round of task %s: %w", id, err)
	}
	if invited > 0 && h.Logger != nil {
		h.Logger.InfoContext(ctx, "helpers invited", slog.String("task_id", id), slog.Int("invited", invited))
	}
	return invited, nil
}

// tellShort tells the customer of task, once per matching, that every
// qualified helper was invited and it is still short: nobody is left to
// invite and no invitation is still open.
func (h *TaskRoundHandler) tellShort(ctx context.Context, tx bun.Tx, task *domain.Task, now time.Time) error {
	if task.HelperCount >= task.HelpersWanted {
		return nil
	}
	open, err := (taskdb.Tasks{}).OpenInvitations(ctx, tx, task, now)
	if err != nil || open > 0 {
		return err
	}
	first, err := (taskdb.Tasks{}).MarkShortNotified(ctx, tx, task, now)
	if err != nil || !first {
		return err
	}
	_, err = Notify(ctx, tx, domain.NotifyTaskShortOfHelpers, TaskArgs(task), now, task.CustomerID)
	return err
}
