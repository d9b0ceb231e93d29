package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/notify"
)

// workQueues are the queues the outbox tasks and the runs they start use.
var workQueues = []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow}

// workPending runs every pending task of workQueues through mux, as a
// worker would, until none is left, and deletes each once it ran, as
// asynq does when its retention has passed. It returns how many ran.
func workPending(t *testing.T, insp *asynq.Inspector, mux *asynq.ServeMux) int {
	t.Helper()
	ran := 0
	for {
		found := 0
		for _, q := range workQueues {
			infos, err := insp.ListPendingTasks(q, asynq.PageSize(1000))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("list pending tasks of %s: %v", q, err)
			}
			for _, ti := range infos {
				found++
				err := mux.ProcessTask(context.Background(), asynq.NewTask(ti.Type, ti.Payload))
				if err != nil && !errors.Is(err, asynq.SkipRetry) {
					t.Fatalf("task %s (%s): %v", ti.ID, ti.Type, err)
				}
				if err := insp.DeleteTask(q, ti.ID); err != nil {
					t.Fatalf("delete task %s: %v", ti.ID, err)
				}
			}
		}
		if found == 0 {
			return ran
		}
		ran += found
	}
}

// TestResentRowsDoNoDoubleWork: a relay hands every kind of outbox task to
// asynq and dies before marking the rows; the tasks run, complete and are
// dropped from Redis once their retention has passed; only then does the
// lease end and another relay send the same rows again. Nothing meets its
// task id any more, so every task runs a second time, with the real
// handlers on the real database: still one ping processing, one admission,
// one set of deliveries, one mail per notification, one match.
func TestResentRowsDoNoDoubleWork(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		opt := jobstest.RedisOpt(t)
		insp := inspector(t, opt)
		client := asynq.NewClient(opt)
		t.Cleanup(func() { _ = client.Close() })

		host := newMember(t, bdb, "host", nil)
		guest := newMember(t, bdb, "guest", nil)
		reader := newMember(t, bdb, "reader", nil)
		recipient := newMember(t, bdb, "recipient", nil)
		applicants := []*domain.Member{newMember(t, bdb, "applicant1", nil), newMember(t, bdb, "applicant2", nil)}

		// One row of each outbox task type.
		pingID := createPing(t, bdb, "req-resend")
		room := openRoom(t, bdb, host.ID, 4)
		if _, err := request(ctx, bdb, room, guest.ID, domain.ParticipationJoin); err != nil {
			t.Fatalf("join request: %v", err)
		}
		for _, a := range applicants {
			if err := apply(ctx, bdb, a.ID, domain.Conditions{Places: 1, Second: 1}); err != nil {
				t.Fatalf("apply: %v", err)
			}
		}
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			ping, err := jobs.NewPingTask(pingID, jobs.QueueDefault)
			if err != nil {
				return err
			}
			trigger, err := jobs.NewMatchTriggerTask(domain.CategoryMeal)
			if err != nil {
				return err
			}
			if err := jobs.Enqueue(ctx, tx, ping, trigger); err != nil {
				return err
			}
			// A notification that goes by mail, so a second fan-out would
			// show as a second delivery task and a second mail.
			_, err = jobs.Notify(ctx, tx, domain.NotifyJoinAccepted, domain.NotificationArgs{Title: "fan-out"},
				clocktest.Now().UTC(), reader.ID)
			if err != nil {
				return err
			}
			// A delivery whose fan-out has run already: its own task.
			n := &domain.Notification{MemberID: recipient.ID, Type: domain.NotifyJoinAccepted,
				Args: domain.NotificationArgs{Title: "deliver"}, CreatedAt: clocktest.Now().UTC()}
			if err := (db.Notifications{}).Create(ctx, tx, n); err != nil {
				return err
			}
			id, _, err := (db.Deliveries{}).Create(ctx, tx, n.ID, domain.ChannelMail, nil, n.CreatedAt)
			if err != nil {
				return err
			}
			payload, err := json.Marshal(jobs.NotifyDeliverPayload{DeliveryID: id})
			if err != nil {
				return err
			}
			return jobs.Enqueue(ctx, tx, jobs.Task{Type: jobs.TypeNotifyDeliver, Payload: payload, Queue: jobs.QueueDefault, MaxRetry: 12})
		})
		if err != nil {
			t.Fatalf("commit the outbox rows: %v", err)
		}
		firstRows := len(outboxRows(t, bdb))

		// Whole seconds, so every dialect stores the ping's time exactly; a
		// second ahead, so every row above was created before it.
		first := clocktest.Now().UTC().Truncate(time.Second).Add(time.Second)
		now := first
		mailbox := newMailbox(t, 100)
		mux, err := jobs.NewMux(jobs.Deps{
			DB: bdb, Client: client, Inspector: insp,
			Mail:      &notify.LogMail{Logger: slog.New(slog.DiscardHandler), Mailbox: mailbox, NowFunc: func() time.Time { return now }},
			NowFunc:   func() time.Time { return now },
			Matching:  jobs.MatchingParams{GroupSize: map[domain.Category]int{domain.CategoryMeal: 2}, Parallel: 1},
			Admission: jobs.AdmissionParams{Retries: 3, RetryWait: time.Millisecond},
		})
		if err != nil {
			t.Fatalf("NewMux: %v", err)
		}

		// The crash, the first run of every task, and their retention.
		rows := crashAfterEnqueue(t, bdb, jobs.RelayParams{Redis: opt, Lease: time.Minute})
		if len(rows) != firstRows {
			t.Fatalf("the crashed relay claimed %d rows, want %d", len(rows), firstRows)
		}
		if n := workPending(t, insp, mux); n < firstRows {
			t.Fatalf("first pass ran %d tasks, want at least %d", n, firstRows)
		}

		// The lease has passed: another relay sends the rows again, and the
		// follow-up rows of the first run too, then everything runs to the end.
		now = first.Add(2 * time.Minute)
		b := newRelay(t, bdb, jobs.RelayParams{Redis: opt})
		// The crashed relay's lease is on the wall clock, as the rows'
		// times are; the handlers run at the test's instant.
		jobs.SetClock(b.relay, func() time.Time { return time.Now().Add(2 * time.Minute) })
		for range 10 {
			n, err := b.relay.Drain(ctx)
			if err != nil {
				t.Fatalf("Drain: %v", err)
			}
			if n == 0 && workPending(t, insp, mux) == 0 {
				break
			}
		}
		if left, err := unsent(bdb)(); err != nil || left != 0 {
			t.Fatalf("unsent rows = %d, %v, want 0", left, err)
		}
		if got := b.metric(t, "moim_outbox_relay_conflicts_total"); got != 0 {
			t.Fatalf("conflicts = %v, want 0: the first tasks were gone, so every row ran again", got)
		}

		if p := findPing(t, bdb, pingID); p.ProcessedAt == nil || !p.ProcessedAt.Equal(first) {
			t.Errorf("ping processed at %v, want the first run's %v", p.ProcessedAt, first)
		}
		// The host and the guest.
		if count, participants, err := roomCounts(ctx, bdb, room.Key); err != nil || count != 2 || participants != 2 {
			t.Errorf("room: count %d, participants %d, %v; want 2 and 2", count, participants, err)
		}
		for typ, want := range map[domain.NotificationType]int{
			domain.NotifyJoinAccepted:           3, // the guest's, the fan-out's and the delivery's own
			domain.NotifyParticipationOnMyRoom:  1,
			domain.NotifyMatchConfirmed:         2,
			domain.NotifyParticipationCancelled: 0,
		} {
			if got := countNotifications(t, bdb, typ); got != want {
				t.Errorf("%v notifications = %d, want %d", typ, got, want)
			}
		}
		matches, err := bdb.NewSelect().Table("matches").Count(ctx)
		if err != nil || matches != 1 {
			t.Errorf("matches = %d, %v; want 1", matches, err)
		}
		// The notifications that go by mail (the join's, the fan-out's, the
		// delivery's own and the match's two) have one delivery each,
		// enqueued once, and one mail each.
		deliveries, err := bdb.NewSelect().Table("deliveries").Count(ctx)
		if err != nil || deliveries != 5 {
			t.Errorf("deliveries = %d, %v; want 5", deliveries, err)
		}
		if tasks := len(outboxTasks(t, bdb, jobs.TypeNotifyDeliver)); tasks != 5 {
			t.Errorf("deliver tasks written = %d, want one per delivery (5)", tasks)
		}
		mails := map[string]int{}
		for _, e := range listMailbox(t, mailbox) {
			mails[e.To]++
		}
		want := map[string]int{guest.Email: 1, reader.Email: 1, recipient.Email: 1, applicants[0].Email: 1, applicants[1].Email: 1}
		if !maps.Equal(mails, want) {
			t.Errorf("mails by recipient = %v, want %v", mails, want)
		}
	})
}
