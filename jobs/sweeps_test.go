package jobs_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

// tickTask is the task of one slot of a tick.
func tickTask(t *testing.T, typ string, slot time.Time) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(jobs.TickPayload{Slot: slot.UTC().Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(typ, b)
}

// twiceAtOnce runs fn twice concurrently and then once more, as
// overlapping and repeated sweeps would.
func twiceAtOnce(t *testing.T, fn func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() { errs <- fn() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent sweep: %v", err)
		}
	}
	if err := fn(); err != nil {
		t.Fatalf("repeated sweep: %v", err)
	}
}

// TestNotificationSweepRebuildsLostFanout: notifications whose fan-out task
// Redis lost (the outbox row marked sent, no task anywhere) get their
// deliveries and their announcement from the sweep, once, and a group keeps
// its one Slack message.
func TestNotificationSweepRebuildsLostFanout(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		rdb := testRedis(t)
		events := subscribe(t, rdb)
		mina, joon, hana := fanoutMembers(t, bdb)
		created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		var match, single []domain.Notification
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) (err error) {
			if match, err = jobs.Notify(ctx, tx, domain.NotifyMatchConfirmed, domain.NotificationArgs{MatchID: "m1"}, created, mina.ID, joon.ID, hana.ID); err != nil {
				return err
			}
			single, err = jobs.Notify(ctx, tx, domain.NotifyJoinAccepted, domain.NotificationArgs{RoomID: "r1", Title: "점심"}, created, hana.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// Relayed, then lost with Redis: the rows say sent, no task exists.
		if _, err := bdb.NewUpdate().Table("outbox").Set("sent_at = ?", created).Where("sent_at IS NULL").Exec(ctx); err != nil {
			t.Fatal(err)
		}

		now := created.Add(30 * time.Second)
		fanout := &jobs.NotifyFanoutHandler{DB: bdb, Publisher: jobs.NewPublisher(rdb), Logger: slog.New(slog.DiscardHandler),
			NowFunc: func() time.Time { return now }}
		sweep := &jobs.NotificationSweepHandler{Fanout: fanout, Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
		run := func() error { return sweep.ProcessTask(ctx, tickTask(t, jobs.TypeNotificationSweep, now)) }
		if err := run(); err != nil {
			t.Fatal(err)
		}
		if got := outboxTasks(t, bdb, jobs.TypeNotifyDeliver); len(got) != 0 {
			t.Fatalf("a sweep half a minute after the notifications made %d deliveries; their task may still run", len(got))
		}

		now = created.Add(3 * time.Minute)
		twiceAtOnce(t, run)
		// Mail for mina and hana (twice: the match and the room), one Slack
		// message for the group of mina and joon.
		if got := outboxTasks(t, bdb, jobs.TypeNotifyDeliver); len(got) != 4 {
			t.Fatalf("%d delivery tasks after the sweeps, want 4", len(got))
		}
		for _, n := range append(slices.Clone(match), single...) {
			ds, err := (db.Deliveries{}).ListByNotification(ctx, bdb, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.Channel == domain.ChannelSlack && !slices.Equal(d.Recipients, []string{mina.ID, joon.ID}) {
					t.Errorf("slack recipients = %v, want the group of mina and joon", d.Recipients)
				}
			}
		}
		var rows []db.OutboxRow
		if err := bdb.NewSelect().Model(&rows).Where("type = ?", jobs.TypeNotifyDeliver).Scan(ctx); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			var p jobs.NotifyDeliverPayload
			if err := json.Unmarshal(r.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if want := "notify:deliver:" + strconv.FormatInt(p.DeliveryID, 10); r.TaskID != want {
				t.Errorf("delivery task id %q, want %q: the delivery sweep looks tasks up by it", r.TaskID, want)
			}
		}

		// The lost task turning up after all changes nothing.
		task := notifyTask(t, jobs.TypeNotifyFanout, outboxTasks(t, bdb, jobs.TypeNotifyFanout)[0])
		if err := fanout.ProcessTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		if got := outboxTasks(t, bdb, jobs.TypeNotifyDeliver); len(got) != 4 {
			t.Errorf("%d delivery tasks after the old task ran, want 4", len(got))
		}

		// The sweep announced each notification (hana's room one too);
		// announcements may repeat, clients drop ids they have seen.
		ours := map[string]bool{mina.ID: true, joon.ID: true, hana.ID: true}
		announced := map[string]bool{}
		for len(announced) < 4 {
			select {
			case msg := <-events:
				var e jobs.Event
				if err := json.Unmarshal([]byte(msg.Payload), &e); err != nil {
					t.Fatal(err)
				}
				if ours[e.MemberID] {
					announced[e.Notification.ID] = true
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("announced %v, want the four notifications", announced)
			}
		}
	})
}

// TestNotificationSweepRetriesAFailedAnnouncement: a fan-out whose
// announcement failed (Redis down) leaves the notification not fanned
// out, so the sweep announces it and creates its deliveries later.
func TestNotificationSweepRetriesAFailedAnnouncement(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	ctx := context.Background()
	rdb := testRedis(t)
	mina := newMember(t, bdb, "mina", nil)
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		_, err := jobs.Notify(ctx, tx, domain.NotifyJoinAccepted, domain.NotificationArgs{RoomID: "r1"}, created, mina.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	now := created.Add(3 * time.Minute)
	down := testRedis(t)
	_ = down.Close() // a publisher whose Redis is gone
	broken := &jobs.NotifyFanoutHandler{DB: bdb, Publisher: jobs.NewPublisher(down), Logger: slog.New(slog.DiscardHandler),
		NowFunc: func() time.Time { return now }}
	task := notifyTask(t, jobs.TypeNotifyFanout, outboxTasks(t, bdb, jobs.TypeNotifyFanout)[0])
	if err := broken.ProcessTask(ctx, task); err == nil {
		t.Fatal("fan-out with a failing publisher succeeded")
	}
	if got := outboxTasks(t, bdb, jobs.TypeNotifyDeliver); len(got) != 0 {
		t.Fatalf("%d delivery tasks after a failed announcement, want none yet", len(got))
	}
	events := subscribe(t, rdb)
	fanout := &jobs.NotifyFanoutHandler{DB: bdb, Publisher: jobs.NewPublisher(rdb), Logger: slog.New(slog.DiscardHandler),
		NowFunc: func() time.Time { return now }}
	sweep := &jobs.NotificationSweepHandler{Fanout: fanout, Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
	if err := sweep.ProcessTask(ctx, tickTask(t, jobs.TypeNotificationSweep, now)); err != nil {
		t.Fatal(err)
	}
	if got := outboxTasks(t, bdb, jobs.TypeNotifyDeliver); len(got) != 1 {
		t.Errorf("%d delivery tasks after the sweep, want the mail", len(got))
	}
	for {
		select {
		case msg := <-events:
			var e jobs.Event
			if json.Unmarshal([]byte(msg.Payload), &e) == nil && e.MemberID == mina.ID {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the sweep did not announce the notification")
		}
	}
}

// TestDeliverySweepRebuildsLostTasks: a PENDING delivery that was never
// tried (0 attempts) and whose task Redis lost gets one task again; one
// whose task is still there (waiting for its retry) and finished ones are
// left alone.
func TestDeliverySweepRebuildsLostTasks(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		opt := jobstest.RedisOpt(t)
		client := asynq.NewClient(opt)
		insp := asynq.NewInspector(opt)
		t.Cleanup(func() { _ = client.Close(); _ = insp.Close() })
		mina := newMember(t, bdb, "mina", smsReady)
		created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		n := &domain.Notification{MemberID: mina.ID, Type: domain.NotifyJoinAccepted, CreatedAt: created}
		if err := (db.Notifications{}).Create(ctx, bdb, n); err != nil {
			t.Fatal(err)
		}
		delivery := func(c domain.Channel) int64 {
			id, _, err := (db.Deliveries{}).Create(ctx, bdb, n.ID, c, nil, created)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		lost, waiting, sent := delivery(domain.ChannelMail), delivery(domain.ChannelSMS), delivery(domain.ChannelSlack)
		if err := (db.Deliveries{}).Fail(ctx, bdb, sent, "done with", created); err != nil {
			t.Fatal(err)
		}
		// waiting's task is in Redis, due for its retry later.
		payload, _ := json.Marshal(jobs.NotifyDeliverPayload{DeliveryID: waiting})
		if _, err := client.Enqueue(asynq.NewTask(jobs.TypeNotifyDeliver, payload), asynq.Queue(jobs.QueueDefault),
			asynq.TaskID("notify:deliver:"+strconv.FormatInt(waiting, 10)), asynq.ProcessIn(time.Hour)); err != nil {
			t.Fatal(err)
		}

		now := created.Add(30 * time.Second)
		sweep := &jobs.DeliverySweepHandler{DB: bdb, Client: client, Inspector: insp, ClaimTimeout: jobs.DefaultClaimTimeout,
			Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
		run := func() error { return sweep.ProcessTask(ctx, tickTask(t, jobs.TypeDeliverySweep, now)) }
		if err := run(); err != nil {
			t.Fatal(err)
		}
		if q, err := insp.GetQueueInfo(jobs.QueueDefault); err != nil || q.Pending != 0 {
			t.Fatalf("queue after a sweep half a minute in: %+v, %v; want nothing pending yet", q, err)
		}

		now = created.Add(3 * time.Minute)
		twiceAtOnce(t, run)
		q, err := insp.GetQueueInfo(jobs.QueueDefault)
		if err != nil || q.Pending != 1 || q.Scheduled != 1 {
			t.Fatalf("queue after the sweeps: %+v, %v; want the lost delivery pending once and the waiting one still scheduled", q, err)
		}
		info, err := insp.GetTaskInfo(jobs.QueueDefault, "notify:deliver:"+strconv.FormatInt(lost, 10))
		if err != nil || info.State != asynq.TaskStatePending || info.MaxRetry != 12 {
			t.Fatalf("rebuilt task: %+v, %v", info, err)
		}
		var p jobs.NotifyDeliverPayload
		if err := json.Unmarshal(info.Payload, &p); err != nil || p.DeliveryID != lost {
			t.Errorf("rebuilt payload %s", info.Payload)
		}
	})
}
