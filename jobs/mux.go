package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/image"
	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/jobs/storage"
	"github.com/moim/moim/templates"
)

// Deps are what the task handlers need. NewMux hands each handler its part.
type Deps struct {
	// DB is the source of truth every handler re-reads and writes. Required.
	DB *bun.DB
	// Logger receives the task log lines; nil discards them.
	Logger *slog.Logger
	// Metrics receives task outcomes; nil keeps them in unregistered
	// collectors nobody reads.
	Metrics *Metrics
	// KeepSent is how long the outbox prune tick keeps sent rows; zero means
	// DefaultOutboxKeepSent.
	KeepSent time.Duration
	// Retention is how long the retention tick keeps notifications,
	// deliveries and sessions.
	Retention RetentionPolicy
	// NowFunc is the clock handed to handlers; nil means time.Now.
	NowFunc func() time.Time

	// Relay is kicked after a handler's transaction wrote outbox rows; nil
	// leaves them to the relay's poll.
	Relay *Relay
	// Publisher announces new notifications to the API instances; nil
	// announces nothing.
	Publisher *Publisher
	// Renderer renders the notification texts; nil means templates.New with
	// UTC times.
	Renderer *templates.Renderer
	// Mail, SMS and Slack send deliveries; a nil one fails its deliveries
	// permanently as "not configured".
	Mail  notify.MailSender
	SMS   notify.SMSSender
	Slack notify.SlackSender
	// MessageIDHost is the domain of mail Message-IDs; "" means
	// "moim.localhost".
	MessageIDHost string
	// LinkBase makes app links absolute in mail, SMS and Slack texts.
	LinkBase string
	// ClaimTimeout is how long a delivery claim may stay unfinished before
	// it counts as abandoned; zero means DefaultClaimTimeout.
	ClaimTimeout time.Duration
	// SweepAfter is how long pending work (a room request, a notification,
	// a delivery) may wait for its task before a sweep redoes it; zero
	// means DefaultSweepAfter.
	SweepAfter time.Duration

	// Client and Inspector let the matching handlers enqueue deduplicated
	// runs straight to Redis; without both, random matching is not served.
	Client    *asynq.Client
	Inspector *asynq.Inspector
	// Matching tunes the matcher.
	Matching MatchingParams
	// MatchMetrics receives matcher counts; nil keeps them unregistered.
	MatchMetrics *MatchMetrics
	// Admission bounds the optimistic retries of room requests.
	Admission AdmissionParams
	// RoomMetrics receives room counts; nil keeps them unregistered.
	RoomMetrics *RoomMetrics
	// Reminders say when group-run reminders go out.
	Reminders domain.ReminderRules
	// MissionLocation is the zone of mission days and windows; nil means UTC.
	MissionLocation *time.Location
	// MissionReminderBefore is how long before a window closes a member who
	// has not verified that day is reminded; zero means
	// DefaultMissionReminderBefore.
	MissionReminderBefore time.Duration

	// Storage holds the images; without it image variants are not served.
	Storage storage.Store
	// Images tunes the variants (quality, pixel limit, the decode gate).
	Images image.Options
	// Tasks tune the invitation rounds of helper requests.
	Tasks TaskRoundParams

	// AccountCodeKey derives account codes and reset tokens; the API holds
	// the same key to check them. Empty fails every code task.
	AccountCodeKey []byte

	// UploadExpiry is how long a pre-signed upload URL works; the
	// upload-cleanup tick deletes uploads left past it (zero means
	// DefaultUploadExpiry).
	UploadExpiry time.Duration
}

// DefaultClaimTimeout is well beyond any provider's timeout: a claim older
// than this was left by a worker that died mid-send.
const DefaultClaimTimeout = 5 * time.Minute

// NewMux returns the worker's task router: every handler registered under
// its task type, wrapped in logging (outermost, so it sees the request id
// and the final outcome), metrics, and panic recovery (innermost, so a panic
// is counted and logged as a failure). A type registered twice is a wiring
// mistake and an error, never a silent override.
func NewMux(deps Deps) (*asynq.ServeMux, error) {
	if deps.DB == nil {
		return nil, errors.New("new task mux: deps.DB is nil")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	if deps.NowFunc == nil {
		deps.NowFunc = time.Now
	}
	if deps.Renderer == nil {
		r, err := templates.New(time.UTC)
		if err != nil {
			return nil, fmt.Errorf("new task mux: %w", err)
		}
		deps.Renderer = r
	}
	if deps.MessageIDHost == "" {
		deps.MessageIDHost = "moim.localhost"
	}
	if deps.ClaimTimeout <= 0 {
		deps.ClaimTimeout = DefaultClaimTimeout
	}
	if deps.Mail == nil {
		deps.Mail = unconfigured{"mail"}
	}
	if deps.SMS == nil {
		deps.SMS = unconfigured{"sms"}
	}
	if deps.MatchMetrics == nil {
		deps.MatchMetrics = NewMatchMetrics(nil)
	}
	if deps.RoomMetrics == nil {
		deps.RoomMetrics = NewRoomMetrics(nil)
	}

	mux := asynq.NewServeMux()
	mux.Use(Logging(deps.Logger), Instrument(deps.Metrics), Recover(deps.Logger))
	r := newRegistry(mux)
	if err := registerHandlers(r, deps); err != nil {
		return nil, fmt.Errorf("new task mux: %w", err)
	}
	for typ := range r.types {
		deps.Metrics.touch(typ)
	}
	return mux, nil
}

// registerHandlers is the one list of task types the worker serves. Add a
// handler here when you add a task type (ticks included); register rejects
// a type that is already taken.
func registerHandlers(r *registry, deps Deps) error {
	fanout := &NotifyFanoutHandler{DB: deps.DB, Relay: deps.Relay, Publisher: deps.Publisher,
		Logger: deps.Logger, NowFunc: deps.NowFunc}
	handlers := []struct {
		typ string
		h   asynq.Handler
	}{
		{TypePing, &PingHandler{DB: deps.DB, Logger: deps.Logger, NowFunc: deps.NowFunc}},
		{TypeNotifyFanout, fanout},
		{TypeNotifyDeliver, &NotifyDeliverHandler{DB: deps.DB, Renderer: deps.Renderer,
			Mail: deps.Mail, SMS: deps.SMS, Slack: deps.Slack, MessageIDHost: deps.MessageIDHost,
			LinkBase: deps.LinkBase, ClaimTimeout: deps.ClaimTimeout, Metrics: deps.Metrics,
			Logger: deps.Logger, NowFunc: deps.NowFunc}},

		{TypeDeliverySweep, &DeliverySweepHandler{DB: deps.DB, Client: deps.Client, Inspector: deps.Inspector,
			ClaimTimeout: deps.ClaimTimeout, After: deps.SweepAfter, Metrics: deps.Metrics, Logger: deps.Logger, NowFunc: deps.NowFunc}},
		{TypeNotificationSweep, &NotificationSweepHandler{Fanout: fanout, After: deps.SweepAfter, Logger: deps.Logger, NowFunc: deps.NowFunc}},

		{TypeAccountSendCode, &AccountCodeHandler{DB: deps.DB, Key: deps.AccountCodeKey, Renderer: deps.Renderer,
			Mail: deps.Mail, SMS: deps.SMS, MessageIDHost: deps.MessageIDHost, LinkBase: deps.LinkBase,
			Logger: deps.Logger, NowFunc: deps.NowFunc}},

		{TypeRoomParticipation, &RoomParticipationHandler{DB: deps.DB, Relay: deps.Relay, Params: deps.Admission,
			Metrics: deps.RoomMetrics, Logger: deps.Logger, NowFunc: deps.NowFunc}},

		// Ticks from the catalogue in ticks.go.
		{TypeRoomReminders, &RoomRemindersHandler{DB: deps.DB, Relay: deps.Relay, Rules: deps.Reminders,
			Logger: deps.Logger, NowFunc: deps.NowFunc}},
		{TypeMissionTransition, &MissionTransitionHandler{DB: deps.DB, Relay: deps.Relay, Logger: deps.Logger, NowFunc: deps.NowFunc}},
		{TypeMissionReminders, &MissionRemindersHandler{DB: deps.DB, Relay: deps.Relay, Location: deps.MissionLocation,
			Before: deps.MissionReminderBefore, Logger: deps.Logger, NowFunc: deps.NowFunc}},
		{TypeTaskRound, &TaskRoundHandler{DB: deps.DB, Relay: deps.Relay, Params: deps.Tasks,
			Logger: deps.Logger, NowFunc: deps.NowFunc}},
		{TypeOutboxPrune, &OutboxPruneHandler{DB: deps.DB, KeepSent: deps.KeepSent, NowFunc: deps.NowFunc, Logger: deps.Logger}},
		{TypeRetention, &RetentionHandler{DB: deps.DB, Policy: deps.Retention, NowFunc: deps.NowFunc, Logger: deps.Logger}},
	}
	if deps.Storage != nil {
		handlers = append(handlers, []struct {
			typ string
			h   asynq.Handler
		}{
			{TypeImageVariants, &ImageVariantsHandler{DB: deps.DB, Store: deps.Storage, Options: deps.Images,
				Logger: deps.Logger, NowFunc: deps.NowFunc}},
			{TypeImageDelete, &ImageDeleteHandler{DB: deps.DB, Store: deps.Storage, Logger: deps.Logger}},
			{TypeUploadCleanup, &UploadCleanupHandler{DB: deps.DB, Store: deps.Storage, Expiry: deps.UploadExpiry,
				Logger: deps.Logger, NowFunc: deps.NowFunc}},
		}...)
	}
	if deps.Client != nil && deps.Inspector != nil {
		handlers = append(handlers, []struct {
			typ string
			h   asynq.Handler
		}{
			{TypeMatchTrigger, &MatchTriggerHandler{Client: deps.Client, Inspector: deps.Inspector}},
			{TypeMatchRun, &MatchRunHandler{DB: deps.DB, Relay: deps.Relay, Params: deps.Matching,
				Metrics: deps.MatchMetrics, Logger: deps.Logger, NowFunc: deps.NowFunc}},
			{TypeMatchSweep, &MatchSweepHandler{DB: deps.DB, Relay: deps.Relay, Client: deps.Client,
				Inspector: deps.Inspector, Metrics: deps.MatchMetrics, Logger: deps.Logger, NowFunc: deps.NowFunc}},
			{TypeParticipationSweep, &ParticipationSweepHandler{DB: deps.DB, Client: deps.Client,
				Inspector: deps.Inspector, After: deps.SweepAfter, Logger: deps.Logger, NowFunc: deps.NowFunc}},
			{TypeMissionTransitions, &MissionTransitionsHandler{DB: deps.DB, Client: deps.Client,
				Inspector: deps.Inspector, Logger: deps.Logger, NowFunc: deps.NowFunc}},
			{TypeTaskInvitations, &TaskInvitationsHandler{DB: deps.DB, Client: deps.Client,
				Inspector: deps.Inspector, Logger: deps.Logger, NowFunc: deps.NowFunc}},
		}...)
	}
	for _, e := range handlers {
		if err := r.register(e.typ, e.h); err != nil {
			return err
		}
	}
	return nil
}

// registry registers handlers on a ServeMux and remembers the types taken:
// ServeMux panics on a duplicate, and we want an error at startup instead.
type registry struct {
	mux   *asynq.ServeMux
	types map[string]bool
}

func newRegistry(mux *asynq.ServeMux) *registry {
	return &registry{mux: mux, types: make(map[string]bool)}
}

// register serves typ with h. An empty type, a nil handler or a type already
// registered is an error.
func (r *registry) register(typ string, h asynq.Handler) error {
	switch {
	case typ == "":
		return errors.New("register handler: empty task type")
	case h == nil:
		return fmt.Errorf("register handler for %q: nil handler", typ)
	case r.types[typ]:
		return fmt.Errorf("register handler for %q: task type already registered", typ)
	}
	r.types[typ] = true
	r.mux.Handle(typ, h)
	return nil
}

// unconfigured stands in for a channel with no sender: its deliveries fail
// at once instead of waiting on retries that cannot succeed.
type unconfigured struct{ channel string }

func (u unconfigured) err() error {
	return notify.Permanent(errors.New(u.channel + " is not configured"))
}

func (u unconfigured) SendMail(context.Context, notify.Mail) (string, error) { return "", u.err() }

func (u unconfigured) SendSMS(context.Context, notify.SMS) (notify.SMSResult, error) {
	return notify.SMSResult{}, u.err()
}
