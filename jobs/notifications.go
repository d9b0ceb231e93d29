package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/templates"
)

// The notification task types.
const (
	// TypeNotifyFanout turns new notifications into their deliveries and
	// announces them to connected clients.
	TypeNotifyFanout = "notify:fanout"
	// TypeNotifyDeliver sends one delivery (one notification on one channel).
	TypeNotifyDeliver = "notify:deliver"
)

// NotifyFanoutPayload names the notifications one producer call created.
// Group marks the members of one event (a match): group channels (Slack)
// then get one message for all of them instead of one each.
type NotifyFanoutPayload struct {
	NotificationIDs []string `json:"notification_ids"`
	Group           bool     `json:"group,omitempty"`
}

// NotifyDeliverPayload names the delivery to send.
type NotifyDeliverPayload struct {
	DeliveryID int64 `json:"delivery_id"`
}

// deliverMaxRetry bounds the attempts of one delivery: with the worker's
// backoff that spans about a day of provider outage.
const deliverMaxRetry = 12

// Notify is the producer every feature calls inside its own transaction:
// it records a notification of type t with args for each member, and the
// fan-out task through the outbox, so nothing is sent unless tx commits.
// Several members make a group (one Slack message for all). Deleted or
// unknown members are passed over. It returns what it recorded.
func Notify(ctx context.Context, tx bun.IDB, t domain.NotificationType, args domain.NotificationArgs, now time.Time, memberIDs ...string) ([]domain.Notification, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("notify: invalid type %d", int(t))
	}
	var ns []domain.Notification
	seen := make(map[string]bool, len(memberIDs))
	for _, id := range memberIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		ns = append(ns, domain.Notification{MemberID: id, Type: t, Args: args, CreatedAt: now})
	}
	out, err := (db.Notifications{}).CreateMany(ctx, tx, ns)
	if err != nil {
		return nil, fmt.Errorf("notify %s: %w", t, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	p := NotifyFanoutPayload{Group: len(out) > 1}
	for _, n := range out {
		p.NotificationIDs = append(p.NotificationIDs, n.ID)
	}
	task, err := newTask(TypeNotifyFanout, p, QueueCritical, 8)
	if err != nil {
		return nil, err
	}
	if err := Enqueue(ctx, tx, task); err != nil {
		return nil, fmt.Errorf("notify %s: %w", t, err)
	}
	return out, nil
}

// NotifyFanoutHandler processes TypeNotifyFanout: it announces the
// notifications to connected clients and then, in one transaction, marks
// each fanned out and creates a delivery per channel its member can be
// reached on (one shared delivery for a group channel), with their tasks.
// The marker makes the fan-out happen once however often, and however
// concurrently, it runs; a repeated run only announces again.
type NotifyFanoutHandler struct {
	DB        *bun.DB
	Relay     *Relay     // kicks the relay after the commit; nil waits for its poll
	Publisher *Publisher // nil announces nothing (no API to tell)
	Logger    *slog.Logger
	NowFunc   func() time.Time
}

// slackGroupMax is the most people Slack puts in one group DM
// (conversations.open).
const slackGroupMax = 8

// deliverTaskID names a delivery's task after the delivery, so the
// delivery sweep can tell whether Redis still has it.
func deliverTaskID(id int64) string { return "notify:deliver:" + strconv.FormatInt(id, 10) }

// ProcessTask fans the notifications of the payload out.
func (h *NotifyFanoutHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p NotifyFanoutPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || len(p.NotificationIDs) == 0 {
		return fmt.Errorf("decode %s payload: %v: %w", TypeNotifyFanout, err, asynq.SkipRetry)
	}
	return h.fanOut(ctx, p.NotificationIDs, p.Group)
}

// fanOut fans out the notifications of one producer call.
func (h *NotifyFanoutHandler) fanOut(ctx context.Context, ids []string, group bool) error {
	type target struct {
		n domain.Notification
		m *domain.Member
	}
	var (
		found   []string
		targets []target
	)
	// A group's shared Slack message hangs on the first notification of
	// its part, whatever became of that member, so a second run finds it
	// on the same row. Slack opens a group DM for at most slackGroupMax
	// people, so a larger group (a room of up to 20) gets one message per
	// part of the list.
	anchors := make(map[int]*domain.Notification)
	part := make(map[string]int, len(ids))
	for i, id := range ids {
		n, err := (db.Notifications{}).FindByID(ctx, h.DB, id)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			continue // written in the task's own transaction: gone for good
		}
		if err != nil {
			return fmt.Errorf("fan out: %w", err)
		}
		found = append(found, n.ID)
		part[n.ID] = i / slackGroupMax
		if anchors[i/slackGroupMax] == nil {
			anchors[i/slackGroupMax] = n
		}
		m, err := (db.Members{}).FindByID(ctx, h.DB, n.MemberID)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			continue // deleted since: nobody to send to
		}
		if err != nil {
			return fmt.Errorf("fan out: %w", err)
		}
		targets = append(targets, target{*n, m})
	}
	if len(found) == 0 {
		return nil
	}
	// Announced before anything is marked done: a failed announcement
	// (Redis down) fails the run, and the retry, or the notification sweep
	// if Redis lost the task, announces again. Clients drop an id they have
	// seen.
	if h.Publisher != nil {
		for _, tg := range targets {
			if err := h.Publisher.Publish(ctx, tg.n); err != nil {
				return fmt.Errorf("fan out: %w", err)
			}
		}
	}
	now := h.NowFunc().UTC()
	run := func(ctx context.Context, tx bun.Tx) error {
		mine := make(map[string]bool, len(found))
		for _, id := range found {
			ok, err := (db.Notifications{}).MarkFannedOut(ctx, tx, id, now)
			if err != nil {
				return err
			}
			mine[id] = ok
		}
		var tasks []Task
		add := func(n domain.Notification, c domain.Channel, recipients []string) error {
			id, created, err := (db.Deliveries{}).Create(ctx, tx, n.ID, c, recipients, now)
			if err != nil || !created {
				return err
			}
			task, err := newTask(TypeNotifyDeliver, NotifyDeliverPayload{DeliveryID: id}, QueueDefault, deliverMaxRetry)
			task.ID = deliverTaskID(id)
			tasks = append(tasks, task)
			return err
		}
		slackGroups := make(map[int][]string)
		for _, tg := range targets {
			if !mine[tg.n.ID] {
				continue // fanned out by an earlier or a concurrent run
			}
			for _, c := range domain.ChannelsFor(tg.n.Type, tg.m) {
				if group && c == domain.ChannelSlack {
					k := part[tg.n.ID]
					slackGroups[k] = append(slackGroups[k], tg.m.ID)
					continue
				}
				if err := add(tg.n, c, nil); err != nil {
					return err
				}
			}
		}
		for k := 0; k*slackGroupMax < len(ids); k++ {
			if members := slackGroups[k]; len(members) > 0 {
				if err := add(*anchors[k], domain.ChannelSlack, members); err != nil {
					return err
				}
			}
		}
		return Enqueue(ctx, tx, tasks...)
	}
	var err error
	if h.Relay != nil {
		err = h.Relay.RunInTx(ctx, run)
	} else {
		err = db.RunInTx(ctx, h.DB, run)
	}
	if err != nil {
		return fmt.Errorf("fan out: %w", err)
	}
	return nil
}

// NotifyDeliverHandler processes TypeNotifyDeliver, sending each delivery at
// most once: it claims the row before calling the provider and marks it
// sent after. A temporary failure releases it for a retry with backoff
// (honouring the provider's Retry-After); a permanent one marks it failed;
// a claim left by a worker that died mid-send is reported as UNKNOWN and
// never sent again.
type NotifyDeliverHandler struct {
	DB       *bun.DB
	Renderer *templates.Renderer
	Mail     notify.MailSender
	SMS      notify.SMSSender
	Slack    notify.SlackSender // nil: Slack is not configured
	// MessageIDHost is the right-hand side of mail Message-IDs.
	MessageIDHost string
	// LinkBase makes the notifications' app links absolute for mail, SMS
	// and Slack; "" leaves them as paths.
	LinkBase string
	// ClaimTimeout is how long a claim may stay unfinished before it counts
	// as abandoned by a dead worker. It must exceed the longest send.
	ClaimTimeout time.Duration
	Metrics      *Metrics
	Logger       *slog.Logger
	NowFunc      func() time.Time
}

// ErrDeliveryBusy makes asynq try again later when another worker holds a
// fresh claim: by then it is finished, or abandoned and reported.
var ErrDeliveryBusy = fmt.Errorf("delivery is being sent by another worker: %w", ErrDeferred)

// ProcessTask sends the delivery of the payload.
func (h *NotifyDeliverHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p NotifyDeliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.DeliveryID <= 0 {
		return fmt.Errorf("decode %s payload: %v: %w", TypeNotifyDeliver, err, asynq.SkipRetry)
	}
	deliveries := db.Deliveries{}
	d, err := deliveries.FindByID(ctx, h.DB, p.DeliveryID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return fmt.Errorf("deliver: %w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	switch d.Status {
	case domain.DeliverySent, domain.DeliveryFailed, domain.DeliveryUnknown:
		return nil
	}
	now := h.NowFunc().UTC()
	// Everything that can fail without sending is done before the claim,
	// so a claim is only ever left behind by a send.
	send, err := h.prepare(ctx, d)
	if err != nil {
		if notify.IsPermanent(err) || lastAttempt(ctx) {
			return h.failPending(ctx, d, err, now)
		}
		return fmt.Errorf("deliver %d: %w", d.ID, err)
	}
	res, err := deliveries.Claim(ctx, h.DB, d.ID, now, now.Add(-h.ClaimTimeout))
	if err != nil {
		return fmt.Errorf("deliver %d: %w", d.ID, err)
	}
	switch res {
	case db.Finished:
		return nil
	case db.Busy:
		if lastAttempt(ctx) {
			// The stale-delivery sweep reports the claim if it never
			// finishes; this task has nothing more to do.
			return fmt.Errorf("deliver %d: claimed elsewhere on the last attempt: %w", d.ID, asynq.SkipRetry)
		}
		return fmt.Errorf("deliver %d: %w", d.ID, ErrDeliveryBusy)
	case db.Abandoned:
		h.count(d.Channel, "unknown")
		h.Logger.WarnContext(ctx, "delivery found claimed and unfinished; marked UNKNOWN, not resent",
			slog.Int64("delivery_id", d.ID), slog.String("channel", d.Channel.String()))
		return nil
	}

	providerID, smsType, sendErr := send(ctx)
	done := h.NowFunc().UTC()
	// The settling writes must happen even if the task's context ended
	// while the provider was being called: the send has happened.
	sctx := context.WithoutCancel(ctx)
	switch {
	case sendErr == nil:
		if err := deliveries.MarkSent(sctx, h.DB, d.ID, providerID, int(smsType), done); err != nil {
			// Left SENDING: the stale-delivery sweep reports it UNKNOWN
			// after the claim timeout; it is never sent again.
			h.Logger.ErrorContext(ctx, "delivery sent but not recorded", slog.Int64("delivery_id", d.ID),
				slog.String("provider_id", providerID), slog.Any("err", err))
			return fmt.Errorf("deliver %d: sent (provider id %s) but not recorded: %w: %w", d.ID, providerID, err, asynq.SkipRetry)
		}
		h.count(d.Channel, "sent")
		h.Logger.InfoContext(ctx, "delivery sent", slog.Int64("delivery_id", d.ID),
			slog.String("channel", d.Channel.String()), slog.String("provider_id", providerID))
		writeResult(ctx, h.Logger, t, DeliverResult{DeliveryID: d.ID, Channel: d.Channel.String(),
			Status: domain.DeliverySent.String(), ProviderID: providerID})
		return nil
	case notify.IsPermanent(sendErr):
		return h.fail(sctx, d, sendErr, done)
	case lastAttempt(ctx):
		return h.fail(sctx, d, fmt.Errorf("no retries left: %w", sendErr), done)
	default:
		if err := deliveries.Release(sctx, h.DB, d.ID, sendErr.Error(), done); err != nil {
			return fmt.Errorf("deliver %d: release after %v: %w", d.ID, sendErr, err)
		}
		h.count(d.Channel, "retry")
		return fmt.Errorf("deliver %d on %s: %w", d.ID, d.Channel, sendErr)
	}
}

// failPending records a failure found before the claim; a delivery that
// another worker claimed meanwhile is left to that worker.
func (h *NotifyDeliverHandler) failPending(ctx context.Context, d *domain.Delivery, cause error, now time.Time) error {
	return h.recordFailure(ctx, d, cause, (db.Deliveries{}).FailPending(ctx, h.DB, d.ID, cause.Error(), now))
}

// fail records a permanent failure and ends the task without a retry.
func (h *NotifyDeliverHandler) fail(ctx context.Context, d *domain.Delivery, cause error, now time.Time) error {
	return h.recordFailure(ctx, d, cause, (db.Deliveries{}).Fail(ctx, h.DB, d.ID, cause.Error(), now))
}

// recordFailure finishes a failed delivery's task given how storing the
// failure went (stored is the store's error): counted and logged once,
// not retried; a row settled by someone else meanwhile is theirs.
func (h *NotifyDeliverHandler) recordFailure(ctx context.Context, d *domain.Delivery, cause, stored error) error {
	switch {
	case domain.ErrorCode(stored) == domain.ECONFLICT:
		return nil
	case stored != nil:
		return fmt.Errorf("deliver %d: record failure %v: %w", d.ID, cause, stored)
	}
	h.count(d.Channel, "failed")
	h.Logger.WarnContext(ctx, "delivery failed", slog.Int64("delivery_id", d.ID),
		slog.String("channel", d.Channel.String()), slog.Any("err", cause))
	return fmt.Errorf("deliver %d on %s: %w: %w", d.ID, d.Channel, cause, asynq.SkipRetry)
}

func (h *NotifyDeliverHandler) count(c domain.Channel, result string) {
	if h.Metrics != nil {
		h.Metrics.Deliveries.WithLabelValues(strings.ToLower(c.String()), result).Inc()
	}
}

// lastAttempt reports whether this run is the task's last try.
func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= max
}

// sendFunc calls the provider once.
type sendFunc func(ctx context.Context) (providerID string, smsType notify.SMSType, err error)

// prepare renders the delivery's message and returns the call that sends
// it. A recipient who can no longer be reached is a permanent failure.
func (h *NotifyDeliverHandler) prepare(ctx context.Context, d *domain.Delivery) (sendFunc, error) {
	n, err := (db.Notifications{}).FindByID(ctx, h.DB, d.NotificationID)
	if err != nil {
		return nil, err
	}
	// A group's Slack message hangs on one member's notification but goes
	// to the whole group: that member may be gone, and it greets nobody.
	group := d.Channel == domain.ChannelSlack && len(d.Recipients) > 0
	m, err := (db.Members{}).FindByID(ctx, h.DB, n.MemberID)
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND && group:
		m = &domain.Member{}
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		return nil, notify.Permanent(errors.New("the member was deleted"))
	case err != nil:
		return nil, err
	}
	data := h.templateData(n, m)
	if group {
		data.Nickname = ""
	}
	typ := n.Type.String()
	switch d.Channel {
	case domain.ChannelMail:
		msg, err := h.Renderer.Render(templates.Mail, typ, data)
		if err != nil {
			return nil, notify.Permanent(fmt.Errorf("render mail: %w", err))
		}
		mail := notify.Mail{To: m.Email, ToName: m.Nickname, Subject: msg.Subject, HTML: msg.HTML, Text: msg.Text,
			MessageID: fmt.Sprintf("<delivery-%d.%s@%s>", d.ID, n.ID, h.MessageIDHost)}
		if mail.To == "" {
			return nil, notify.Permanent(errors.New("the member has no e-mail address"))
		}
		return func(ctx context.Context) (string, notify.SMSType, error) {
			id, err := h.Mail.SendMail(ctx, mail)
			return id, notify.SMSNone, err
		}, nil
	case domain.ChannelSMS:
		msg, err := h.Renderer.Render(templates.SMS, typ, data)
		if err != nil {
			return nil, notify.Permanent(fmt.Errorf("render sms: %w", err))
		}
		if m.Phone == "" {
			return nil, notify.Permanent(errors.New("the member has no phone number"))
		}
		if m.PhoneVerifiedAt == nil {
			// The number changed after the fan-out; SMS goes only to a
			// number its holder confirmed.
			return nil, notify.Permanent(errors.New("the member's phone number is not verified"))
		}
		sms := notify.SMS{To: m.Phone, Subject: msg.Subject, Text: msg.Text}
		return func(ctx context.Context) (string, notify.SMSType, error) {
			r, err := h.SMS.SendSMS(ctx, sms)
			return r.ProviderID, r.Type, err
		}, nil
	case domain.ChannelSlack:
		if h.Slack == nil {
			return nil, notify.Permanent(errors.New("slack is not configured"))
		}
		msg, err := h.Renderer.Render(templates.Slack, typ, data)
		if err != nil {
			return nil, notify.Permanent(fmt.Errorf("render slack: %w", err))
		}
		recipients := d.Recipients
		if len(recipients) == 0 {
			recipients = []string{m.ID}
		}
		var emails []string
		for _, id := range recipients {
			rm, err := (db.Members{}).FindByID(ctx, h.DB, id)
			if domain.ErrorCode(err) == domain.ENOTFOUND {
				continue
			}
			if err != nil {
				return nil, err
			}
			if rm.SlackEmail != "" {
				emails = append(emails, rm.SlackEmail)
			}
		}
		if len(emails) == 0 {
			return nil, notify.Permanent(notify.ErrNoRecipients)
		}
		group := notify.SlackGroupMessage{Emails: emails, Text: msg.Text}
		return func(ctx context.Context) (string, notify.SMSType, error) {
			id, err := h.Slack.PostGroup(ctx, group)
			return id, notify.SMSNone, err
		}, nil
	}
	return nil, notify.Permanent(fmt.Errorf("unknown channel %d", int(d.Channel)))
}

// templateData is what the texts of n may show to m.
func (h *NotifyDeliverHandler) templateData(n *domain.Notification, m *domain.Member) templates.Data {
	a := n.Args
	link := a.Link
	if link != "" && h.LinkBase != "" {
		link = strings.TrimRight(h.LinkBase, "/") + "/" + strings.TrimLeft(link, "/")
	}
	return templates.Data{
		Nickname: m.Nickname, Actor: a.Actor, Title: a.Title, Category: a.Category, Place: a.Place,
		StartsAt: a.StartsAt, Members: a.Members, Link: link, Amount: a.Amount, Excerpt: a.Excerpt, Reason: a.Reason,
		RateBP: a.RateBP,
	}
}

// TypeDeliverySweep is the tick that settles deliveries whose task will
// not come back: claims left unfinished long ago, and PENDING deliveries
// whose task Redis lost.
const TypeDeliverySweep = "tick:delivery-sweep"

// TickDeliverySweep is its catalogue name.
const TickDeliverySweep = "delivery-sweep"

// deliverySweepBatch bounds one read of PENDING deliveries.
const deliverySweepBatch = 500

// DeliverySweepHandler processes TypeDeliverySweep. Every delivery still
// SENDING past the claim timeout becomes UNKNOWN and is counted, so a
// worker that died mid-send on its task's last attempt (or could not
// record a send) is reported even though no retry will look at it again.
// Every delivery PENDING for After whose task (named after the
// delivery) is not in Redis gets it again: a task lost with Redis, or
// never relayed, would otherwise leave it PENDING for good. Without
// Client and Inspector only the first part runs.
type DeliverySweepHandler struct {
	DB           *bun.DB
	Client       *asynq.Client
	Inspector    *asynq.Inspector
	ClaimTimeout time.Duration
	// After is how long a delivery stays PENDING since it was created or
	// released before the sweep checks on its task (the relay and the
	// worker have had time to run it); zero means DefaultSweepAfter.
	After   time.Duration
	Metrics *Metrics
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// ProcessTask sweeps once; running it twice, or two at once, enqueues each
// lost task once: the task id is the delivery's.
func (h *DeliverySweepHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if _, err := decodeTickPayload(TypeDeliverySweep, t.Payload()); err != nil {
		return err
	}
	now := h.NowFunc().UTC()
	counts, err := (db.Deliveries{}).AbandonStale(ctx, h.DB, now.Add(-h.ClaimTimeout), now)
	for c, n := range counts {
		if h.Metrics != nil {
			h.Metrics.Deliveries.WithLabelValues(strings.ToLower(c.String()), "unknown").Add(float64(n))
		}
		h.Logger.WarnContext(ctx, "deliveries found claimed and unfinished; marked UNKNOWN, not resent",
			slog.String("channel", c.String()), slog.Int("count", n))
	}
	if err != nil {
		return fmt.Errorf("sweep deliveries: %w", err)
	}
	if h.Client == nil || h.Inspector == nil {
		return nil
	}
	requeued := 0
	for after := int64(0); ; {
		ids, err := (db.Deliveries{}).PendingBefore(ctx, h.DB, now.Add(-sweepAfter(h.After)), after, deliverySweepBatch)
		if err != nil {
			return fmt.Errorf("sweep deliveries: %w", err)
		}
		for _, id := range ids {
			task, err := newTask(TypeNotifyDeliver, NotifyDeliverPayload{DeliveryID: id}, QueueDefault, deliverMaxRetry)
			if err != nil {
				return err
			}
			state, err := enqueueOnce(ctx, h.Client, h.Inspector, asynq.NewTask(task.Type, task.Payload), task.Queue,
				deliverTaskID(id), asynq.MaxRetry(task.MaxRetry))
			if err != nil {
				return fmt.Errorf("sweep deliveries: enqueue delivery %d: %w", id, err)
			}
			if state == 0 {
				requeued++
			}
		}
		if len(ids) < deliverySweepBatch {
			break
		}
		after = ids[len(ids)-1]
	}
	if requeued > 0 {
		h.Logger.WarnContext(ctx, "pending deliveries had no task; enqueued again", slog.Int("deliveries", requeued))
	}
	return nil
}
