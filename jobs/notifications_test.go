package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/memredis"
	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/jobs/notify/slack"
	"github.com/moim/moim/jobs/notify/sms"
	"github.com/moim/moim/templates"
)

// newMember stores a member; adjust edits it before it is stored.
func newMember(t *testing.T, bdb *bun.DB, nickname string, adjust func(*domain.Member)) *domain.Member {
	t.Helper()
	now := clocktest.Now().UTC().Truncate(time.Second)
	m := &domain.Member{
		Email: nickname + "@example.com", PasswordHash: "x", Nickname: nickname,
		Prefs: domain.DefaultNotificationPrefs(), Role: domain.RoleMember, CreatedAt: now, UpdatedAt: now,
	}
	if adjust != nil {
		adjust(m)
	}
	if err := (db.Members{}).Create(context.Background(), bdb, m); err != nil {
		t.Fatalf("create member %s: %v", nickname, err)
	}
	return m
}

// smsReady gives m a verified number and SMS consent: SMS goes only to a
// verified number.
func smsReady(m *domain.Member) {
	at := clocktest.Now().UTC().Truncate(time.Second)
	m.Phone, m.SMSConsent, m.PhoneVerifiedAt = "+821012345678", true, &at
}

// outboxTasks returns the payloads of the outbox rows of type typ.
func outboxTasks(t *testing.T, bdb *bun.DB, typ string) [][]byte {
	t.Helper()
	var rows []db.OutboxRow
	if err := bdb.NewSelect().Model(&rows).Where("type = ?", typ).Order("id").Scan(context.Background()); err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	out := make([][]byte, len(rows))
	for i, r := range rows {
		out[i] = r.Payload
	}
	return out
}

func notifyTask(t *testing.T, typ string, payload []byte) *asynq.Task {
	t.Helper()
	return asynq.NewTask(typ, payload)
}

func TestNotifyIsPartOfTheCallersTransaction(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		a := newMember(t, bdb, "mina", nil)
		b := newMember(t, bdb, "joon", nil)
		now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		args := domain.NotificationArgs{MatchID: "m1", Category: "MEAL", Members: []string{"mina", "joon"}}

		rollback := errors.New("the feature failed")
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			if _, err := jobs.Notify(ctx, tx, domain.NotifyMatchConfirmed, args, now, a.ID, b.ID); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatalf("RunInTx = %v", err)
		}
		if n, _ := bdb.NewSelect().Table("notifications").Count(ctx); n != 0 {
			t.Errorf("%d notifications after a rollback, want 0", n)
		}
		if got := outboxTasks(t, bdb, jobs.TypeNotifyFanout); len(got) != 0 {
			t.Errorf("%d fan-out tasks after a rollback, want 0", len(got))
		}

		var created []domain.Notification
		err = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			created, err = jobs.Notify(ctx, tx, domain.NotifyMatchConfirmed, args, now, a.ID, b.ID, a.ID, "no-such-member")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(created) != 2 {
			t.Fatalf("created %d notifications, want one each for the two members", len(created))
		}
		tasks := outboxTasks(t, bdb, jobs.TypeNotifyFanout)
		if len(tasks) != 1 {
			t.Fatalf("%d fan-out tasks, want 1", len(tasks))
		}
		var p jobs.NotifyFanoutPayload
		if err := json.Unmarshal(tasks[0], &p); err != nil {
			t.Fatal(err)
		}
		if !p.Group || !slices.Equal(p.NotificationIDs, []string{created[0].ID, created[1].ID}) {
			t.Errorf("fan-out payload = %+v", p)
		}
	})
}

// subscribe listens on the events channel of a test Redis.
func subscribe(t *testing.T, rdb *redis.Client) <-chan *redis.Message {
	t.Helper()
	ps := rdb.Subscribe(context.Background(), jobs.EventsChannel)
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	return ps.Channel()
}

func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(jobstest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// fanoutMembers stores three members a match notifies: mina on Slack,
// mail and SMS, joon on Slack only (mail off), hana by mail (no Slack).
func fanoutMembers(t *testing.T, bdb *bun.DB) (mina, joon, hana *domain.Member) {
	t.Helper()
	mina = newMember(t, bdb, "mina", func(m *domain.Member) {
		m.SlackEmail = "mina@slack.example"
		smsReady(m)
	})
	joon = newMember(t, bdb, "joon", func(m *domain.Member) {
		m.SlackEmail, m.Prefs.Mail = "joon@slack.example", false
	})
	return mina, joon, newMember(t, bdb, "hana", nil)
}

func TestFanout(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		rdb := testRedis(t)
		events := subscribe(t, rdb)
		mina, joon, hana := fanoutMembers(t, bdb)
		now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		var created []domain.Notification
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) (err error) {
			created, err = jobs.Notify(ctx, tx, domain.NotifyMatchConfirmed, domain.NotificationArgs{MatchID: "m1"}, now, mina.ID, joon.ID, hana.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		h := &jobs.NotifyFanoutHandler{DB: bdb, Publisher: jobs.NewPublisher(rdb), Logger: slog.New(slog.DiscardHandler), NowFunc: clocktest.Now}
		task := notifyTask(t, jobs.TypeNotifyFanout, outboxTasks(t, bdb, jobs.TypeNotifyFanout)[0])
		for run := 1; run <= 2; run++ {
			if err := h.ProcessTask(ctx, task); err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			// Mail for mina and hana (joon switched mail off), one Slack
			// message for the group of mina and joon: three sends, however
			// often the fan-out runs.
			if got := outboxTasks(t, bdb, jobs.TypeNotifyDeliver); len(got) != 3 {
				t.Fatalf("run %d: %d delivery tasks, want 3", run, len(got))
			}
		}
		want := map[string][]string{
			created[0].ID: {"MAIL", "SLACK"},
			created[1].ID: nil,
			created[2].ID: {"MAIL"},
		}
		for id, channels := range want {
			ds, err := (db.Deliveries{}).ListByNotification(ctx, bdb, id)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.Channel.String())
				if d.Channel == domain.ChannelSlack && !slices.Equal(d.Recipients, []string{mina.ID, joon.ID}) {
					t.Errorf("slack recipients = %v, want mina and joon", d.Recipients)
				}
			}
			if !slices.Equal(got, channels) {
				t.Errorf("notification %s: channels %v, want %v", id, got, channels)
			}
		}
		// Each run announced the three notifications to the API instances.
		// Pub/sub channels span every Redis database, so parallel tests'
		// events pass by too: count only this test's members.
		ours := map[string]bool{mina.ID: true, joon.ID: true, hana.ID: true}
		seen := map[string]int{}
		for total := 0; total < 6; {
			select {
			case msg := <-events:
				var e jobs.Event
				if err := json.Unmarshal([]byte(msg.Payload), &e); err != nil {
					t.Fatalf("event %s: %v", msg.Payload, err)
				}
				if !ours[e.MemberID] {
					continue
				}
				if e.Notification.Type != domain.NotifyMatchConfirmed {
					t.Errorf("event type %v", e.Notification.Type)
				}
				seen[e.MemberID]++
				total++
			case <-time.After(5 * time.Second):
				t.Fatalf("events so far %v, want 2 for each member", seen)
			}
		}
		select {
		case msg := <-events:
			var e jobs.Event
			if json.Unmarshal([]byte(msg.Payload), &e) == nil && ours[e.MemberID] {
				t.Errorf("a seventh event for our members: %s", msg.Payload)
			}
		case <-time.After(200 * time.Millisecond):
		}
		for _, m := range []*domain.Member{mina, joon, hana} {
			if seen[m.ID] != 2 {
				t.Errorf("member %s: %d events, want 2", m.Nickname, seen[m.ID])
			}
		}
	})
}

// sensPeer is a SENS endpoint answering each request with the next status
// of a script (202 once the script is used up), after an optional delay.
type sensPeer struct {
	mu      sync.Mutex
	script  []int
	delay   time.Duration
	calls   atomic.Int32
	srv     *httptest.Server
	lastReq map[string]any
}

func newSENSPeer(t *testing.T, delay time.Duration, script ...int) *sensPeer {
	t.Helper()
	p := &sensPeer{script: script, delay: delay}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.calls.Add(1)
		time.Sleep(p.delay)
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		p.mu.Lock()
		p.lastReq = body
		status := http.StatusAccepted
		if len(p.script) > 0 {
			status, p.script = p.script[0], p.script[1:]
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(status)
		if status == http.StatusAccepted {
			fmt.Fprintf(w, `{"requestId":"req-%d","statusCode":"202","statusName":"success"}`, n)
			return
		}
		fmt.Fprintf(w, `{"error":{"errorCode":"%d","message":"scripted failure"}}`, status)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *sensPeer) client(t *testing.T) *sms.Client {
	t.Helper()
	c, err := sms.New(sms.Config{BaseURL: p.srv.URL, ServiceID: "ncp:sms:kr:1:moim", AccessKey: "AK",
		SecretKey: "secret", From: "0212345678", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deliverBundle is a deliver handler over a fresh database with one runner
// who has a phone, a notification for them and its deliveries.
type deliverBundle struct {
	db      *bun.DB
	h       *jobs.NotifyDeliverHandler
	mailbox *notify.Mailbox
	member  *domain.Member
	metrics *jobs.Metrics
}

// newMailbox returns a mailbox of size in a Redis of the test's own.
func newMailbox(t *testing.T, size int) *notify.Mailbox {
	t.Helper()
	rdb := jobstest.RedisOpt(t).MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { _ = rdb.Close() })
	return notify.NewMailbox(rdb, size)
}

// listMailbox returns what box keeps, failing t when it cannot.
func listMailbox(t *testing.T, box *notify.Mailbox) []notify.MailboxEntry {
	t.Helper()
	out, err := box.List(context.Background())
	if err != nil {
		t.Fatalf("mailbox: %v", err)
	}
	return out
}

func newDeliverBundle(t *testing.T, bdb *bun.DB, smsSender notify.SMSSender) *deliverBundle {
	t.Helper()
	r, err := templates.New(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	box := newMailbox(t, 10)
	m := jobs.NewMetrics(nil)
	b := &deliverBundle{db: bdb, mailbox: box, metrics: m}
	b.h = &jobs.NotifyDeliverHandler{
		DB: bdb, Renderer: r,
		Mail:          &notify.LogMail{Logger: slog.New(slog.DiscardHandler), Mailbox: box, NowFunc: clocktest.Now},
		SMS:           smsSender,
		MessageIDHost: "moim.test", LinkBase: "https://app.moim.test",
		ClaimTimeout: 5 * time.Minute, Metrics: m, Logger: slog.New(slog.DiscardHandler), NowFunc: clocktest.Now,
	}
	b.member = newMember(t, bdb, "runner", smsReady)
	return b
}

// delivery creates a notification of type typ for the member with a
// delivery on channel c and returns the delivery's task.
func (b *deliverBundle) delivery(t *testing.T, typ domain.NotificationType, c domain.Channel) (int64, *asynq.Task) {
	t.Helper()
	ctx := context.Background()
	n := domain.Notification{MemberID: b.member.ID, Type: typ, CreatedAt: clocktest.Now(),
		Args: domain.NotificationArgs{Title: "한강 러닝", Link: "/rooms/r1", StartsAt: clocktest.Now().Add(30 * time.Minute)}}
	if err := (db.Notifications{}).Create(ctx, b.db, &n); err != nil {
		t.Fatal(err)
	}
	id, _, err := (db.Deliveries{}).Create(ctx, b.db, n.ID, c, nil, clocktest.Now())
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(jobs.NotifyDeliverPayload{DeliveryID: id})
	return id, asynq.NewTask(jobs.TypeNotifyDeliver, payload)
}

func (b *deliverBundle) status(t *testing.T, id int64) *domain.Delivery {
	t.Helper()
	d, err := (db.Deliveries{}).FindByID(context.Background(), b.db, id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDeliverSMSRetriesAndClassifies(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		peer := newSENSPeer(t, 0, 500, 429)
		b := newDeliverBundle(t, bdb, peer.client(t))
		id, task := b.delivery(t, domain.NotifyRunStartsSoon, domain.ChannelSMS)

		// 500: released for a retry with the usual backoff.
		err := b.h.ProcessTask(ctx, task)
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("after a 500: err = %v, want a retryable error", err)
		}
		if d := b.status(t, id); d.Status != domain.DeliveryPending || d.Attempts != 1 || d.LastError == "" {
			t.Errorf("after a 500: %+v", d)
		}
		// 429 with Retry-After: the next try waits what the provider asked.
		err = b.h.ProcessTask(ctx, task)
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("after a 429: err = %v", err)
		}
		if d := jobs.RetryDelay(0, err, task); d < 7*time.Second || d > 8*time.Second {
			t.Errorf("retry delay after Retry-After: 7 = %v", d)
		}
		// 202: sent with the provider's id, recording SMS (1) or LMS (2) as
		// it went out.
		if err := b.h.ProcessTask(ctx, task); err != nil {
			t.Fatalf("after a 202: %v", err)
		}
		d := b.status(t, id)
		if d.Status != domain.DeliverySent || d.ProviderID != "req-3" || d.SentAt == nil || d.Attempts != 3 {
			t.Errorf("after a 202: %+v", d)
		}
		peer.mu.Lock()
		sentAs := peer.lastReq["type"]
		peer.mu.Unlock()
		if want := map[any]int{"SMS": 1, "LMS": 2}[sentAs]; d.SMSType != want || want == 0 {
			t.Errorf("sms_type = %d, but it went out as %v", d.SMSType, sentAs)
		}
		// Done is done: a redelivered task calls nobody.
		if err := b.h.ProcessTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		if n := peer.calls.Load(); n != 3 {
			t.Errorf("provider called %d times, want 3", n)
		}
		if got := testutil.ToFloat64(b.metrics.Deliveries.WithLabelValues("sms", "sent")); got != 1 {
			t.Errorf("sent metric = %v", got)
		}
		if got := testutil.ToFloat64(b.metrics.Deliveries.WithLabelValues("sms", "retry")); got != 2 {
			t.Errorf("retry metric = %v", got)
		}
	})
}

func TestDeliverPermanentFailures(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		peer := newSENSPeer(t, 0, 400)
		b := newDeliverBundle(t, bdb, peer.client(t))

		// A 4xx is final: failed, no retry.
		id, task := b.delivery(t, domain.NotifyRunDDay, domain.ChannelSMS)
		if err := b.h.ProcessTask(ctx, task); !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("after a 400: err = %v, want SkipRetry", err)
		}
		if d := b.status(t, id); d.Status != domain.DeliveryFailed || d.LastError == "" {
			t.Errorf("after a 400: %+v", d)
		}

		// A number whose holder has not confirmed it (changed after the
		// fan-out) gets no SMS: failed without a call.
		if _, err := bdb.NewUpdate().Table("members").Set("phone_verified_at = NULL").Where("public_id = ?", b.member.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		unverifiedID, unverifiedTask := b.delivery(t, domain.NotifyRunDDay, domain.ChannelSMS)
		before := peer.calls.Load()
		if err := b.h.ProcessTask(ctx, unverifiedTask); !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("unverified number: err = %v, want SkipRetry", err)
		}
		if d := b.status(t, unverifiedID); peer.calls.Load() != before || d.Status != domain.DeliveryFailed {
			t.Errorf("unverified number: %d provider calls, delivery %+v", peer.calls.Load()-before, d)
		}
		if _, err := bdb.NewUpdate().Table("members").Set("phone_verified_at = ?", clocktest.Now().UTC()).Where("public_id = ?", b.member.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}

		// An invalid number fails its SMS without a call; the mail of the
		// same notification still goes.
		if _, err := bdb.NewUpdate().Table("members").Set("phone = ?", "+8212").Where("public_id = ?", b.member.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		smsID, smsTask := b.delivery(t, domain.NotifyRoomCancelled, domain.ChannelSMS)
		d := b.status(t, smsID)
		mailID, _, err := (db.Deliveries{}).Create(ctx, bdb, d.NotificationID, domain.ChannelMail, nil, clocktest.Now())
		if err != nil {
			t.Fatal(err)
		}
		calls := peer.calls.Load()
		if err := b.h.ProcessTask(ctx, smsTask); !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("invalid number: err = %v, want SkipRetry", err)
		}
		if peer.calls.Load() != calls {
			t.Error("the provider was called for an invalid number")
		}
		if d := b.status(t, smsID); d.Status != domain.DeliveryFailed {
			t.Errorf("invalid number: %+v", d)
		}
		payload, _ := json.Marshal(jobs.NotifyDeliverPayload{DeliveryID: mailID})
		if err := b.h.ProcessTask(ctx, asynq.NewTask(jobs.TypeNotifyDeliver, payload)); err != nil {
			t.Fatalf("mail: %v", err)
		}
		md := b.status(t, mailID)
		wantMsgID := fmt.Sprintf("<delivery-%d.%s@moim.test>", mailID, md.NotificationID)
		if md.Status != domain.DeliverySent || md.ProviderID != wantMsgID {
			t.Errorf("mail delivery %+v, want sent with Message-ID %s", md, wantMsgID)
		}
		box := listMailbox(t, b.mailbox)
		if len(box) != 1 || box[0].To != "runner@example.com" || box[0].Subject == "" || box[0].HTML == "" {
			t.Errorf("mailbox = %+v", box)
		}
	})
}

// TestDeliverRaceSendsOnce races ten workers on one delivery against a slow
// provider: one calls it, the rest find it claimed.
func TestDeliverRaceSendsOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		peer := newSENSPeer(t, 200*time.Millisecond)
		b := newDeliverBundle(t, bdb, peer.client(t))
		id, task := b.delivery(t, domain.NotifyRunStartsSoon, domain.ChannelSMS)
		var wg sync.WaitGroup
		errs := make([]error, 10)
		for i := range errs {
			wg.Go(func() { errs[i] = b.h.ProcessTask(context.Background(), task) })
		}
		wg.Wait()
		if n := peer.calls.Load(); n != 1 {
			t.Errorf("provider called %d times by 10 racing workers, want 1", n)
		}
		for _, err := range errs {
			if err != nil && !db.IsRetryable(err) && !errors.Is(err, jobs.ErrDeliveryBusy) {
				t.Errorf("unexpected error: %v", err)
			}
		}
		if d := b.status(t, id); d.Status != domain.DeliverySent || d.Attempts != 1 {
			t.Errorf("after the race: %+v", d)
		}
	})
}

// TestDeliverAbandonedClaimIsReported: a claim left by a worker that died
// mid-send is never sent again; it becomes UNKNOWN and is counted.
func TestDeliverAbandonedClaimIsReported(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		peer := newSENSPeer(t, 0)
		b := newDeliverBundle(t, bdb, peer.client(t))
		id, task := b.delivery(t, domain.NotifyRunStartsSoon, domain.ChannelSMS)
		// The dead worker's claim, ten minutes ago.
		then := clocktest.Now().Add(-10 * time.Minute)
		if res, err := (db.Deliveries{}).Claim(ctx, bdb, id, then, then.Add(-time.Minute)); err != nil || res != db.Claimed {
			t.Fatalf("claim = %v, %v", res, err)
		}
		if err := b.h.ProcessTask(ctx, task); err != nil {
			t.Fatalf("ProcessTask: %v", err)
		}
		if d := b.status(t, id); d.Status != domain.DeliveryUnknown {
			t.Errorf("status = %v, want UNKNOWN", d.Status)
		}
		if n := peer.calls.Load(); n != 0 {
			t.Errorf("provider called %d times, want 0", n)
		}
		if got := testutil.ToFloat64(b.metrics.Deliveries.WithLabelValues("sms", "unknown")); got != 1 {
			t.Errorf("unknown metric = %v, want 1", got)
		}
		// A fresh claim (a worker sending right now) is left alone: retry later.
		id2, task2 := b.delivery(t, domain.NotifyRunEnded, domain.ChannelSMS)
		if _, err := (db.Deliveries{}).Claim(ctx, bdb, id2, clocktest.Now(), clocktest.Now().Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := b.h.ProcessTask(ctx, task2); !errors.Is(err, jobs.ErrDeliveryBusy) {
			t.Errorf("fresh claim: err = %v, want ErrDeliveryBusy", err)
		}
		if d := b.status(t, id2); d.Status != domain.DeliverySending {
			t.Errorf("fresh claim: status = %v, want still SENDING", d.Status)
		}
	})
}

// TestDeliverOutOfRetriesFails runs the handler on a real worker: the last
// allowed attempt failing temporarily gives the delivery up as FAILED
// rather than leaving it PENDING with no task behind it.
func TestDeliverOutOfRetriesFails(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	peer := newSENSPeer(t, 0, 500, 500, 500)
	b := newDeliverBundle(t, bdb, peer.client(t))
	id, task := b.delivery(t, domain.NotifyRunStartsSoon, domain.ChannelSMS)
	mux := asynq.NewServeMux()
	mux.Handle(jobs.TypeNotifyDeliver, b.h)
	logger, _ := newTestLogger()
	cl := startServer(t, jobstest.RedisOpt(t), mux, 1, logger)
	if _, err := cl.Enqueue(task, asynq.MaxRetry(0), asynq.Queue(jobs.QueueDefault)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "delivery failed", func() bool { return b.status(t, id).Status == domain.DeliveryFailed })
	if d := b.status(t, id); d.Attempts != 1 || !strings.Contains(d.LastError, "no retries left") {
		t.Errorf("delivery %+v", d)
	}
	if n := peer.calls.Load(); n != 1 {
		t.Errorf("provider called %d times, want 1", n)
	}
}

// TestDeliverySweepReportsOrphanedClaims: a claim whose task is gone (the
// worker died on its last attempt) is reported by the sweep tick; a fresh
// claim is left alone.
func TestDeliverySweepReportsOrphanedClaims(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		b := newDeliverBundle(t, bdb, newSENSPeer(t, 0).client(t))
		old, _ := b.delivery(t, domain.NotifyRunStartsSoon, domain.ChannelSMS)
		fresh, _ := b.delivery(t, domain.NotifyRunEnded, domain.ChannelSMS)
		pending, _ := b.delivery(t, domain.NotifyRunDDay, domain.ChannelSMS)
		now := clocktest.Now()
		for _, c := range []struct {
			id int64
			at time.Time
		}{{old, now.Add(-time.Hour)}, {fresh, now}} {
			if res, err := (db.Deliveries{}).Claim(ctx, bdb, c.id, c.at, c.at.Add(-time.Minute)); err != nil || res != db.Claimed {
				t.Fatalf("claim %d: %v %v", c.id, res, err)
			}
		}
		h := &jobs.DeliverySweepHandler{DB: bdb, ClaimTimeout: 5 * time.Minute, Metrics: b.metrics,
			Logger: slog.New(slog.DiscardHandler), NowFunc: clocktest.Now}
		tick := asynq.NewTask(jobs.TypeDeliverySweep, []byte(`{"slot":"2026-11-26T00:00:00Z"}`))
		for range 2 {
			if err := h.ProcessTask(ctx, tick); err != nil {
				t.Fatal(err)
			}
		}
		want := map[int64]domain.DeliveryStatus{old: domain.DeliveryUnknown, fresh: domain.DeliverySending, pending: domain.DeliveryPending}
		for id, st := range want {
			if got := b.status(t, id).Status; got != st {
				t.Errorf("delivery %d: %v, want %v", id, got, st)
			}
		}
		if got := testutil.ToFloat64(b.metrics.Deliveries.WithLabelValues("sms", "unknown")); got != 1 {
			t.Errorf("unknown metric = %v, want 1 (counted once over two sweeps)", got)
		}
	})
}

// TestDeliverPermanentFailureLeavesAClaimAlone: a failure found before the
// claim (the member was deleted) does not overwrite another worker's claim.
func TestDeliverPermanentFailureLeavesAClaimAlone(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		peer := newSENSPeer(t, 0)
		b := newDeliverBundle(t, bdb, peer.client(t))
		id, task := b.delivery(t, domain.NotifyRunStartsSoon, domain.ChannelSMS)
		if res, err := (db.Deliveries{}).Claim(ctx, bdb, id, clocktest.Now(), clocktest.Now().Add(-time.Minute)); err != nil || res != db.Claimed {
			t.Fatalf("claim: %v %v", res, err)
		}
		if err := (db.Members{}).Delete(ctx, bdb, b.member.ID, clocktest.Now()); err != nil {
			t.Fatal(err)
		}
		if err := b.h.ProcessTask(ctx, task); err != nil {
			t.Fatalf("ProcessTask: %v", err)
		}
		if got := b.status(t, id).Status; got != domain.DeliverySending {
			t.Errorf("status = %v, want SENDING: the claimer decides", got)
		}
		if got := testutil.ToFloat64(b.metrics.Deliveries.WithLabelValues("sms", "failed")); got != 0 {
			t.Errorf("failed metric = %v, want 0", got)
		}
	})
}

// TestFanoutGroupAnchorIsStable: a fan-out retried after the first member
// deleted their account must not create a second Slack group delivery.
func TestFanoutGroupAnchorIsStable(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		slackOn := func(m *domain.Member) { m.SlackEmail = m.Nickname + "@slack.example" }
		a := newMember(t, bdb, "anna", slackOn)
		bm := newMember(t, bdb, "bora", slackOn)
		c := newMember(t, bdb, "cora", slackOn)
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			_, err := jobs.Notify(ctx, tx, domain.NotifyMatchConfirmed, domain.NotificationArgs{}, clocktest.Now(), a.ID, bm.ID, c.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		h := &jobs.NotifyFanoutHandler{DB: bdb, Logger: slog.New(slog.DiscardHandler), NowFunc: clocktest.Now}
		task := notifyTask(t, jobs.TypeNotifyFanout, outboxTasks(t, bdb, jobs.TypeNotifyFanout)[0])
		if err := h.ProcessTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		if err := (db.Members{}).Delete(ctx, bdb, a.ID, clocktest.Now()); err != nil {
			t.Fatal(err)
		}
		if err := h.ProcessTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		n, err := bdb.NewSelect().Table("deliveries").Where("channel = ?", int(domain.ChannelSlack)).Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d Slack deliveries, want the one group message", n)
		}
	})
}

// TestDeliverBusyOnLastAttemptEnds: a delivery still claimed elsewhere when
// its task has no retries left ends the task (archived, no endless wait);
// the claim is left for its owner or the stale-delivery sweep.
func TestDeliverBusyOnLastAttemptEnds(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	peer := newSENSPeer(t, 0)
	b := newDeliverBundle(t, bdb, peer.client(t))
	id, task := b.delivery(t, domain.NotifyRunStartsSoon, domain.ChannelSMS)
	if res, err := (db.Deliveries{}).Claim(context.Background(), bdb, id, clocktest.Now(), clocktest.Now().Add(-time.Minute)); err != nil || res != db.Claimed {
		t.Fatalf("claim: %v %v", res, err)
	}
	mux := asynq.NewServeMux()
	mux.Handle(jobs.TypeNotifyDeliver, b.h)
	logger, _ := newTestLogger()
	opt := jobstest.RedisOpt(t)
	cl := startServer(t, opt, mux, 1, logger)
	info, err := cl.Enqueue(task, asynq.MaxRetry(0), asynq.Queue(jobs.QueueDefault))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	eventually(t, 10*time.Second, "task archived", func() bool {
		ti, err := insp.GetTaskInfo(jobs.QueueDefault, info.ID)
		return err == nil && ti.State == asynq.TaskStateArchived
	})
	if d := b.status(t, id); d.Status != domain.DeliverySending {
		t.Errorf("status = %v, want SENDING (left to its claimer)", d.Status)
	}
	if n := peer.calls.Load(); n != 0 {
		t.Errorf("provider called %d times, want 0", n)
	}
}

// TestFanoutLargeGroupSplitsSlack: Slack takes at most 8 people in a group
// DM, so a room of 20 gets three group messages (8, 8 and 4 members), each
// on the first notification of its part, and a second run adds none.
func TestFanoutLargeGroupSplitsSlack(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	ctx := context.Background()
	var ids []string
	for i := range 20 {
		ids = append(ids, newMember(t, bdb, fmt.Sprintf("m%02d", i), func(m *domain.Member) {
			m.SlackEmail = m.Nickname + "@slack.example"
		}).ID)
	}
	var ns []domain.Notification
	err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		var err error
		ns, err = jobs.Notify(ctx, tx, domain.NotifyMatchConfirmed, domain.NotificationArgs{}, clocktest.Now(), ids...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &jobs.NotifyFanoutHandler{DB: bdb, Logger: slog.New(slog.DiscardHandler), NowFunc: clocktest.Now}
	task := notifyTask(t, jobs.TypeNotifyFanout, outboxTasks(t, bdb, jobs.TypeNotifyFanout)[0])
	for range 2 {
		if err := h.ProcessTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	for i, n := range ns {
		ds, err := (db.Deliveries{}).ListByNotification(ctx, bdb, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Channel != domain.ChannelSlack {
				continue
			}
			if i%8 != 0 {
				t.Errorf("a Slack message on notification %d", i)
			}
			if d.Recipients[0] != ids[i] {
				t.Errorf("part %d starts with %s, want %s", i/8, d.Recipients[0], ids[i])
			}
			sizes = append(sizes, len(d.Recipients))
		}
	}
	if fmt.Sprint(sizes) != "[8 8 4]" {
		t.Errorf("Slack group messages of %v members, want [8 8 4]", sizes)
	}
}

// slackPeer is an httptest server speaking the three Slack Web API methods
// the client uses; every address has an account, and the users of each
// conversation opened are recorded.
type slackPeer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	opened [][]string
	texts  []string
}

func newSlackPeer(t *testing.T) *slackPeer {
	t.Helper()
	p := &slackPeer{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		p.mu.Lock()
		defer p.mu.Unlock()
		switch r.URL.Path {
		case "/api/users.lookupByEmail":
			_ = r.ParseForm()
			fmt.Fprintf(w, `{"ok":true,"user":{"id":"U-%s"}}`, r.PostForm.Get("email"))
		case "/api/conversations.open":
			var body struct{ Users string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			p.opened = append(p.opened, strings.Split(body.Users, ","))
			fmt.Fprintf(w, `{"ok":true,"channel":{"id":"G%d"}}`, len(p.opened))
		case "/api/chat.postMessage":
			var body struct{ Channel, Text string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			p.texts = append(p.texts, body.Text)
			fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":"1.%d"}`, body.Channel, len(p.texts))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *slackPeer) client(t *testing.T) *slack.Client {
	t.Helper()
	mr, err := memredis.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := slack.New(slack.Config{Token: "xoxb-1-2-test", BaseURL: p.srv.URL + "/api/", Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGroupSlackWhenTheAnchorLeft: the member whose notification carries
// the group's Slack message deleted their account before it went out; the
// others still get it, and it greets nobody by name.
func TestGroupSlackWhenTheAnchorLeft(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	ctx := context.Background()
	slackOn := func(m *domain.Member) { m.SlackEmail = m.Nickname + "@slack.example" }
	a := newMember(t, bdb, "anna", slackOn)
	bm := newMember(t, bdb, "bora", slackOn)
	c := newMember(t, bdb, "cora", slackOn)
	err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		_, err := jobs.Notify(ctx, tx, domain.NotifyMatchConfirmed, domain.NotificationArgs{Members: []string{"anna", "bora", "cora"}},
			clocktest.Now(), a.ID, bm.ID, c.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fan := &jobs.NotifyFanoutHandler{DB: bdb, Logger: slog.New(slog.DiscardHandler), NowFunc: clocktest.Now}
	if err := fan.ProcessTask(ctx, notifyTask(t, jobs.TypeNotifyFanout, outboxTasks(t, bdb, jobs.TypeNotifyFanout)[0])); err != nil {
		t.Fatal(err)
	}
	if err := (db.Members{}).Delete(ctx, bdb, a.ID, clocktest.Now()); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := bdb.NewSelect().Table("deliveries").Column("id").Where("channel = ?", int(domain.ChannelSlack)).Scan(ctx, &id); err != nil {
		t.Fatal(err)
	}
	peer := newSlackPeer(t)
	b := newDeliverBundle(t, bdb, nil)
	b.h.Slack = peer.client(t)
	payload, _ := json.Marshal(jobs.NotifyDeliverPayload{DeliveryID: id})
	if err := b.h.ProcessTask(ctx, asynq.NewTask(jobs.TypeNotifyDeliver, payload)); err != nil {
		t.Fatal(err)
	}
	if d := b.status(t, id); d.Status != domain.DeliverySent {
		t.Errorf("delivery %v (%s), want SENT", d.Status, d.LastError)
	}
	if len(peer.opened) != 1 || strings.Join(peer.opened[0], ",") != "U-bora@slack.example,U-cora@slack.example" {
		t.Errorf("conversations opened: %v", peer.opened)
	}
	if len(peer.texts) != 1 || strings.Contains(peer.texts[0], "anna님") {
		t.Errorf("texts %q", peer.texts)
	}
}
