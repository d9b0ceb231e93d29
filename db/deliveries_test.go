package db_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// deliveryEpoch is a whole-microsecond time, which every dialect keeps
// exactly.
var deliveryEpoch = time.Date(2026, 11, 26, 12, 0, 0, 654321000, time.UTC)

// deliveryBundle is what a delivery test starts from: a member and a
// notification for them.
type deliveryBundle struct {
	member       *domain.Member
	notification *domain.Notification
}

// setupDelivery creates a member and one notification for them.
func setupDelivery(t *testing.T, bdb *bun.DB) deliveryBundle {
	t.Helper()
	m := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
	return deliveryBundle{
		member:       m,
		notification: mustNotify(t, bdb, newNotification(m.ID, domain.NotifyMatchConfirmed, "match", notificationEpoch)),
	}
}

// mustDeliver creates the PENDING delivery of n on ch and returns its id.
func mustDeliver(t *testing.T, bdb *bun.DB, n *domain.Notification, ch domain.Channel) int64 {
	t.Helper()
	id, created, err := db.Deliveries{}.Create(context.Background(), bdb, n.ID, ch, nil, deliveryEpoch)
	if err != nil || !created {
		t.Fatalf("Create delivery of %s on %v = %d, %v, %v; want a new one", n.ID, ch, id, created, err)
	}
	return id
}

func mustFindDelivery(t *testing.T, bdb *bun.DB, id int64) *domain.Delivery {
	t.Helper()
	d, err := db.Deliveries{}.FindByID(context.Background(), bdb, id)
	if err != nil {
		t.Fatalf("FindByID delivery %d: %v", id, err)
	}
	return d
}

// deliveryAt returns a pointer to t, for the times a Delivery may lack.
func deliveryAt(t time.Time) *time.Time { return &t }

func TestDeliveriesCreate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		deliveries := db.Deliveries{}
		b := setupDelivery(t, bdb)
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		other := mustNotify(t, bdb, newNotification(bob.ID, domain.NotifyMatchConfirmed, "match", notificationEpoch))
		group := []string{b.member.ID, bob.ID}
		// Written in another zone with nanoseconds: stored in UTC
		// microseconds.
		now := deliveryEpoch.Add(789 * time.Nanosecond).In(time.FixedZone("KST", 9*60*60))

		mail, created, err := deliveries.Create(ctx, bdb, b.notification.ID, domain.ChannelMail, nil, now)
		if err != nil || !created || mail <= 0 {
			t.Fatalf("first Create = %d, %v, %v; want a new id", mail, created, err)
		}
		// A fan-out that runs again, alone or in a transaction, creates
		// nothing and finds the same row, whatever recipients it names.
		again := []struct {
			name string
			run  func() (int64, bool, error)
		}{
			{"again", func() (int64, bool, error) {
				return deliveries.Create(ctx, bdb, b.notification.ID, domain.ChannelMail, nil, now.Add(time.Hour))
			}},
			{"again with recipients", func() (int64, bool, error) {
				return deliveries.Create(ctx, bdb, b.notification.ID, domain.ChannelMail, group, now)
			}},
			{"again in a transaction", func() (id int64, created bool, err error) {
				err = bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					id, created, err = deliveries.Create(ctx, tx, b.notification.ID, domain.ChannelMail, nil, now)
					if err != nil {
						return err
					}
					// The transaction is still usable after the conflict
					// (PostgreSQL aborts it on an unhandled one).
					_, err = deliveries.FindByID(ctx, tx, id)
					return err
				})
				return id, created, err
			}},
		}
		for _, tt := range again {
			id, created, err := tt.run()
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if id != mail || created {
				t.Errorf("%s: Create = %d, %v; want %d, false", tt.name, id, created, mail)
			}
		}

		sms := mustDeliver(t, bdb, b.notification, domain.ChannelSMS)
		slack, created, err := deliveries.Create(ctx, bdb, b.notification.ID, domain.ChannelSlack, group, now)
		if err != nil || !created {
			t.Fatalf("Create on Slack = %d, %v, %v; want a new one", slack, created, err)
		}
		otherMail := mustDeliver(t, bdb, other, domain.ChannelMail)
		seen := map[int64]bool{}
		for _, id := range []int64{mail, sms, slack, otherMail} {
			if seen[id] {
				t.Errorf("id %d given twice among %d, %d, %d, %d", id, mail, sms, slack, otherMail)
			}
			seen[id] = true
		}

		pending := func(id int64, ch domain.Channel, recipients []string, at time.Time) domain.Delivery {
			return domain.Delivery{ID: id, NotificationID: b.notification.ID, Channel: ch,
				Status: domain.DeliveryPending, Recipients: recipients, CreatedAt: at}
		}
		// now in UTC microseconds is deliveryEpoch, which mustDeliver uses.
		want := []domain.Delivery{
			pending(mail, domain.ChannelMail, nil, deliveryEpoch),
			pending(sms, domain.ChannelSMS, nil, deliveryEpoch),
			pending(slack, domain.ChannelSlack, group, deliveryEpoch),
		}
		for _, w := range want {
			got := mustFindDelivery(t, bdb, w.ID)
			if diff := cmp.Diff(&w, got); diff != "" {
				t.Errorf("FindByID(%d) (-want +got):\n%s", w.ID, diff)
			}
			if got.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
			}
		}
		list, err := deliveries.ListByNotification(ctx, bdb, b.notification.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, list); diff != "" {
			t.Errorf("ListByNotification (-want +got):\n%s", diff)
		}
		if list, err := deliveries.ListByNotification(ctx, bdb, "nosuchnotification"); err != nil || len(list) != 0 {
			t.Errorf("ListByNotification(unknown) = %v, %v; want none", list, err)
		}

		before := countRowsIn(t, bdb, "deliveries")
		for _, id := range []string{"nosuchnotification", "", b.member.ID} {
			_, _, err := deliveries.Create(ctx, bdb, id, domain.ChannelMail, nil, now)
			checkCode(t, err, domain.ENOTFOUND, "")
		}
		if n := countRowsIn(t, bdb, "deliveries"); n != before {
			t.Errorf("%d deliveries after rejected Creates, want %d", n, before)
		}
		_, err = deliveries.FindByID(ctx, bdb, slack+1000)
		checkCode(t, err, domain.ENOTFOUND, "")
	})
}

func TestDeliveriesClaimAndSend(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		deliveries := db.Deliveries{}
		b := setupDelivery(t, bdb)
		id := mustDeliver(t, bdb, b.notification, domain.ChannelSMS)
		claimedAt := deliveryEpoch.Add(time.Minute + 999*time.Nanosecond)
		stale := claimedAt.Add(-10 * time.Minute)

		claim := func(now, staleBefore time.Time, want db.ClaimResult) {
			t.Helper()
			got, err := deliveries.Claim(ctx, bdb, id, now, staleBefore)
			if err != nil {
				t.Fatalf("Claim: %v", err)
			}
			if got != want {
				t.Errorf("Claim = %v, want %v", got, want)
			}
		}
		claim(claimedAt, stale, db.Claimed)
		want := &domain.Delivery{ID: id, NotificationID: b.notification.ID, Channel: domain.ChannelSMS,
			Status: domain.DeliverySending, Attempts: 1, ClaimedAt: deliveryAt(claimedAt.Truncate(time.Microsecond)),
			CreatedAt: deliveryEpoch}
		if diff := cmp.Diff(want, mustFindDelivery(t, bdb, id)); diff != "" {
			t.Errorf("claimed (-want +got):\n%s", diff)
		}

		// A second worker a moment later finds it held.
		claim(claimedAt.Add(time.Second), stale.Add(time.Second), db.Busy)
		if diff := cmp.Diff(want, mustFindDelivery(t, bdb, id)); diff != "" {
			t.Errorf("after a busy Claim (-want +got):\n%s", diff)
		}

		sentAt := claimedAt.Add(3 * time.Second)
		if err := deliveries.MarkSent(ctx, bdb, id, "msg-123", 2, sentAt); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
		want.Status, want.ProviderID, want.SMSType = domain.DeliverySent, "msg-123", 2
		want.SentAt = deliveryAt(sentAt.Truncate(time.Microsecond))
		got := mustFindDelivery(t, bdb, id)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("sent (-want +got):\n%s", diff)
		}
		if got.SentAt.Location() != time.UTC || got.ClaimedAt.Location() != time.UTC {
			t.Errorf("times in %v and %v, want UTC", got.SentAt.Location(), got.ClaimedAt.Location())
		}

		// Sent is final: nothing claims or settles it again, however stale.
		later := sentAt.Add(time.Hour)
		claim(later, later, db.Finished)
		checkCode(t, deliveries.MarkSent(ctx, bdb, id, "msg-456", 1, later), domain.ECONFLICT, "")
		checkCode(t, deliveries.Release(ctx, bdb, id, "timeout", later), domain.ECONFLICT, "")
		checkCode(t, deliveries.Fail(ctx, bdb, id, "rejected", later), domain.ECONFLICT, "")
		if diff := cmp.Diff(want, mustFindDelivery(t, bdb, id)); diff != "" {
			t.Errorf("changed after it was sent (-want +got):\n%s", diff)
		}

		// An unknown id is not found by any of them.
		unknown := id + 1000
		if _, err := deliveries.Claim(ctx, bdb, unknown, later, later); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("Claim(unknown) err = %v, want not_found", err)
		}
		checkCode(t, deliveries.MarkSent(ctx, bdb, unknown, "x", 0, later), domain.ENOTFOUND, "")
		checkCode(t, deliveries.Release(ctx, bdb, unknown, "x", later), domain.ENOTFOUND, "")
		checkCode(t, deliveries.Fail(ctx, bdb, unknown, "x", later), domain.ENOTFOUND, "")
	})
}

func TestDeliveriesReleaseAndRetry(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		deliveries := db.Deliveries{}
		b := setupDelivery(t, bdb)
		id := mustDeliver(t, bdb, b.notification, domain.ChannelMail)
		first := deliveryEpoch.Add(time.Minute)
		second := first.Add(5 * time.Minute)

		if res, err := deliveries.Claim(ctx, bdb, id, first, first.Add(-time.Hour)); err != nil || res != db.Claimed {
			t.Fatalf("Claim = %v, %v; want Claimed", res, err)
		}
		if err := deliveries.Release(ctx, bdb, id, "421 try again later", first.Add(time.Second)); err != nil {
			t.Fatalf("Release: %v", err)
		}
		want := &domain.Delivery{ID: id, NotificationID: b.notification.ID, Channel: domain.ChannelMail,
			Status: domain.DeliveryPending, Attempts: 1, LastError: "421 try again later",
			ClaimedAt: deliveryAt(first), CreatedAt: deliveryEpoch}
		if diff := cmp.Diff(want, mustFindDelivery(t, bdb, id)); diff != "" {
			t.Errorf("released (-want +got):\n%s", diff)
		}
		// Releasing again with the same values changes nothing and is no
		// conflict (MySQL reports no affected row for it).
		if err := deliveries.Release(ctx, bdb, id, "421 try again later", first.Add(time.Second)); err != nil {
			t.Errorf("Release repeated: %v", err)
		}

		if res, err := deliveries.Claim(ctx, bdb, id, second, second.Add(-time.Hour)); err != nil || res != db.Claimed {
			t.Fatalf("second Claim = %v, %v; want Claimed", res, err)
		}
		want.Status, want.Attempts, want.ClaimedAt = domain.DeliverySending, 2, deliveryAt(second)
		if diff := cmp.Diff(want, mustFindDelivery(t, bdb, id)); diff != "" {
			t.Errorf("claimed again (-want +got):\n%s", diff)
		}

		// Sending clears the error of the earlier attempt.
		if err := deliveries.MarkSent(ctx, bdb, id, "<abc@mail.example.com>", 0, second.Add(time.Second)); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
		want.Status, want.LastError, want.ProviderID = domain.DeliverySent, "", "<abc@mail.example.com>"
		want.SentAt = deliveryAt(second.Add(time.Second))
		if diff := cmp.Diff(want, mustFindDelivery(t, bdb, id)); diff != "" {
			t.Errorf("sent on the second attempt (-want +got):\n%s", diff)
		}
	})
}

func TestDeliveriesFail(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		deliveries := db.Deliveries{}
		b := setupDelivery(t, bdb)
		failAt := deliveryEpoch.Add(time.Hour)

		tests := []struct {
			name      string
			ch        domain.Channel
			claim     bool
			wantTries int
		}{
			{"claimed", domain.ChannelMail, true, 1},
			{"pending", domain.ChannelSMS, false, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := mustDeliver(t, bdb, b.notification, tt.ch)
				want := &domain.Delivery{ID: id, NotificationID: b.notification.ID, Channel: tt.ch,
					Status: domain.DeliveryFailed, Attempts: tt.wantTries, LastError: "550 no such user",
					CreatedAt: deliveryEpoch}
				if tt.claim {
					if res, err := deliveries.Claim(ctx, bdb, id, deliveryEpoch, deliveryEpoch.Add(-time.Hour)); err != nil || res != db.Claimed {
						t.Fatalf("Claim = %v, %v; want Claimed", res, err)
					}
					want.ClaimedAt = deliveryAt(deliveryEpoch)
				}
				if err := deliveries.Fail(ctx, bdb, id, "550 no such user", failAt); err != nil {
					t.Fatalf("Fail: %v", err)
				}
				if diff := cmp.Diff(want, mustFindDelivery(t, bdb, id)); diff != "" {
					t.Errorf("failed (-want +got):\n%s", diff)
				}
				if res, err := deliveries.Claim(ctx, bdb, id, failAt, failAt); err != nil || res != db.Finished {
					t.Errorf("Claim after Fail = %v, %v; want Finished", res, err)
				}
				checkCode(t, deliveries.MarkSent(ctx, bdb, id, "late", 1, failAt), domain.ECONFLICT, "")
				checkCode(t, deliveries.Release(ctx, bdb, id, "late", failAt), domain.ECONFLICT, "")
				checkCode(t, deliveries.Fail(ctx, bdb, id, "again", failAt), domain.ECONFLICT, "")
				if diff := cmp.Diff(want, mustFindDelivery(t, bdb, id)); diff != "" {
					t.Errorf("changed after it failed (-want +got):\n%s", diff)
				}
			})
		}
	})
}

func TestDeliveriesAbandoned(t *testing.T) {
	t.Parallel()
	whole := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	// SQLite compares these as text, which bun writes without trailing
	// fractional zeros: the cases straddle such boundaries.
	tests := []struct {
		name         string
		claimedAt    time.Time
		staleBefore  time.Time
		want         db.ClaimResult
		wantFinalize bool
	}{
		{"long ago", whole, whole.Add(time.Hour), db.Abandoned, true},
		{"exactly at the limit", whole.Add(123456 * time.Microsecond), whole.Add(123456 * time.Microsecond), db.Abandoned, true},
		{"a microsecond before", whole.Add(-time.Microsecond), whole, db.Abandoned, true},
		{"whole second before a fraction", whole, whole.Add(100 * time.Millisecond), db.Abandoned, true},
		{"fraction before the next whole second", whole.Add(999999 * time.Microsecond), whole.Add(time.Second), db.Abandoned, true},
		{"a microsecond after", whole.Add(time.Microsecond), whole, db.Busy, false},
		{"a fraction after a whole second", whole.Add(500 * time.Millisecond), whole, db.Busy, false},
		{"recently", whole, whole.Add(-time.Minute), db.Busy, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
				ctx := context.Background()
				deliveries := db.Deliveries{}
				b := setupDelivery(t, bdb)
				id := mustDeliver(t, bdb, b.notification, domain.ChannelSlack)
				if res, err := deliveries.Claim(ctx, bdb, id, tt.claimedAt, tt.claimedAt.Add(-time.Hour)); err != nil || res != db.Claimed {
					t.Fatalf("Claim = %v, %v; want Claimed", res, err)
				}
				now := tt.claimedAt.Add(2 * time.Hour)
				res, err := deliveries.Claim(ctx, bdb, id, now, tt.staleBefore)
				if err != nil {
					t.Fatal(err)
				}
				if res != tt.want {
					t.Fatalf("Claim with staleBefore %v of a claim at %v = %v, want %v",
						tt.staleBefore, tt.claimedAt, res, tt.want)
				}
				got := mustFindDelivery(t, bdb, id)
				if got.Attempts != 1 || !got.ClaimedAt.Equal(tt.claimedAt) {
					t.Errorf("attempts %d, claimed at %v; want 1 and %v, untouched", got.Attempts, got.ClaimedAt, tt.claimedAt)
				}
				if !tt.wantFinalize {
					if got.Status != domain.DeliverySending || got.LastError != "" {
						t.Errorf("status %v, last error %q; want SENDING with none", got.Status, got.LastError)
					}
					return
				}
				if got.Status != domain.DeliveryUnknown {
					t.Errorf("status = %v, want UNKNOWN", got.Status)
				}
				if !strings.Contains(got.LastError, "never finished") {
					t.Errorf("last error = %q, want it to say the claim never finished", got.LastError)
				}
				// Never sent again, and the worker that held it cannot
				// record a late outcome over the report.
				if res, err := deliveries.Claim(ctx, bdb, id, now.Add(time.Hour), now.Add(time.Hour)); err != nil || res != db.Finished {
					t.Errorf("Claim after abandonment = %v, %v; want Finished", res, err)
				}
				checkCode(t, deliveries.MarkSent(ctx, bdb, id, "late", 0, now), domain.ECONFLICT, "")
				checkCode(t, deliveries.Release(ctx, bdb, id, "late", now), domain.ECONFLICT, "")
				checkCode(t, deliveries.Fail(ctx, bdb, id, "late", now), domain.ECONFLICT, "")
				if after := mustFindDelivery(t, bdb, id); after.Status != domain.DeliveryUnknown {
					t.Errorf("status = %v after late outcomes, want UNKNOWN", after.Status)
				}
			})
		})
	}
}

// releaseAfterClaimMiss is a query hook that, once armed, puts a delivery
// back to PENDING right after a Claim's UPDATE has missed it: what a holder
// releasing it at that moment does.
type releaseAfterClaimMiss struct {
	bdb   *bun.DB
	id    int64
	armed atomic.Bool
	err   error
}

func (h *releaseAfterClaimMiss) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (h *releaseAfterClaimMiss) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	if !strings.Contains(e.Query, "attempts = attempts + 1") || !h.armed.CompareAndSwap(true, false) {
		return
	}
	h.err = db.Deliveries{}.Release(ctx, h.bdb, h.id, "timeout", deliveryEpoch.Add(time.Second))
}

func TestDeliveriesClaimRacesRelease(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		deliveries := db.Deliveries{}
		b := setupDelivery(t, bdb)
		id := mustDeliver(t, bdb, b.notification, domain.ChannelMail)
		hook := &releaseAfterClaimMiss{bdb: bdb, id: id}
		bdb.AddQueryHook(hook)

		if res, err := deliveries.Claim(ctx, bdb, id, deliveryEpoch, deliveryEpoch.Add(-time.Hour)); err != nil || res != db.Claimed {
			t.Fatalf("Claim = %v, %v; want Claimed", res, err)
		}
		hook.armed.Store(true)
		// This Claim's UPDATE misses the held delivery, which is then
		// released before Claim reads it: it is still to be sent, so the
		// caller must come back rather than drop it.
		res, err := deliveries.Claim(ctx, bdb, id, deliveryEpoch, deliveryEpoch.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if hook.armed.Load() || hook.err != nil {
			t.Fatalf("the hook did not release the delivery (armed %v, err %v)", hook.armed.Load(), hook.err)
		}
		if res != db.Busy {
			t.Errorf("Claim = %v, want Busy", res)
		}
		if res, err := deliveries.Claim(ctx, bdb, id, deliveryEpoch, deliveryEpoch.Add(-time.Hour)); err != nil || res != db.Claimed {
			t.Errorf("Claim once released = %v, %v; want Claimed", res, err)
		}
	})
}

func TestDeliveriesLastErrorCut(t *testing.T) {
	t.Parallel()
	korean := strings.Repeat("전송 실패", 400) // 2,000 runes, 5,200 bytes
	tests := []struct {
		name  string
		cause string
		want  string // "" for a cut prefix of cause
	}{
		{"short", "connection refused", "connection refused"},
		{"exactly the limit", strings.Repeat("x", 1000), strings.Repeat("x", 1000)},
		{"long ASCII", strings.Repeat("x", 5000), strings.Repeat("x", 1000)},
		{"long Korean", korean, ""},
		// Each offset puts the limit at a different byte of a rune.
		{"Korean after one byte", "a" + korean, ""},
		{"Korean after two bytes", "ab" + korean, ""},
		{"emoji", strings.Repeat("🚀", 600), strings.Repeat("🚀", 250)},
	}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		deliveries := db.Deliveries{}
		b := setupDelivery(t, bdb)
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// Channels run out per notification, so one each.
				n := mustNotify(t, bdb, newNotification(b.member.ID, domain.NotifyRunDDay, tt.name, notificationEpoch.Add(time.Duration(i)*time.Second)))
				for _, settle := range []struct {
					name string
					ch   domain.Channel
					run  func(id int64) error
				}{
					{"Release", domain.ChannelMail, func(id int64) error { return deliveries.Release(ctx, bdb, id, tt.cause, deliveryEpoch) }},
					{"Fail", domain.ChannelSMS, func(id int64) error { return deliveries.Fail(ctx, bdb, id, tt.cause, deliveryEpoch) }},
				} {
					id := mustDeliver(t, bdb, n, settle.ch)
					if _, err := deliveries.Claim(ctx, bdb, id, deliveryEpoch, deliveryEpoch.Add(-time.Hour)); err != nil {
						t.Fatal(err)
					}
					if err := settle.run(id); err != nil {
						t.Fatalf("%s: %v", settle.name, err)
					}
					got := mustFindDelivery(t, bdb, id).LastError
					if !utf8.ValidString(got) {
						t.Errorf("%s: last error is not valid UTF-8, ending %q", settle.name, got[max(0, len(got)-4):])
					}
					if len(got) > 1000 {
						t.Errorf("%s: last error is %d bytes, want at most 1000", settle.name, len(got))
					}
					if tt.want != "" {
						if got != tt.want {
							t.Errorf("%s: last error is %d bytes, want %d", settle.name, len(got), len(tt.want))
						}
						continue
					}
					// As much as fits: a rune is at most 4 bytes.
					if !strings.HasPrefix(tt.cause, got) || len(got) < 997 {
						t.Errorf("%s: last error is %d bytes, want a prefix of the cause of 997 to 1000", settle.name, len(got))
					}
				}
			})
		}
	})
}

func TestDeliveriesConcurrentClaim(t *testing.T) {
	t.Parallel()
	const (
		workers = 10
		rounds  = 5
	)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		deliveries := db.Deliveries{}
		b := setupDelivery(t, bdb)
		for round := range rounds {
			n := mustNotify(t, bdb, newNotification(b.member.ID, domain.NotifyRunStartsSoon, "race", notificationEpoch.Add(time.Duration(round)*time.Second)))
			id := mustDeliver(t, bdb, n, domain.ChannelSMS)
			now := deliveryEpoch.Add(time.Duration(round) * time.Hour)

			results := make([]db.ClaimResult, workers)
			errs := make([]error, workers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range workers {
				wg.Go(func() {
					<-start
					results[i], errs[i] = deliveries.Claim(ctx, bdb, id, now, now.Add(-time.Minute))
				})
			}
			close(start)
			wg.Wait()

			count := map[db.ClaimResult]int{}
			for i, err := range errs {
				if err != nil {
					t.Errorf("round %d, worker %d: %v", round, i, err)
					continue
				}
				count[results[i]]++
			}
			if diff := cmp.Diff(map[db.ClaimResult]int{db.Claimed: 1, db.Busy: workers - 1}, count); diff != "" {
				t.Errorf("round %d: outcomes by ClaimResult (-want +got):\n%s", round, diff)
			}
			if d := mustFindDelivery(t, bdb, id); d.Status != domain.DeliverySending || d.Attempts != 1 {
				t.Errorf("round %d: status %v, attempts %d; want SENDING, 1", round, d.Status, d.Attempts)
			}

			// Workers that find the claim stale race to report it: one
			// marks it UNKNOWN, the rest see it finished.
			later := now.Add(time.Hour)
			start = make(chan struct{})
			for i := range workers {
				wg.Go(func() {
					<-start
					results[i], errs[i] = deliveries.Claim(ctx, bdb, id, later, later.Add(-time.Minute))
				})
			}
			close(start)
			wg.Wait()
			count = map[db.ClaimResult]int{}
			for i, err := range errs {
				if err != nil {
					t.Errorf("round %d, stale worker %d: %v", round, i, err)
					continue
				}
				count[results[i]]++
			}
			if diff := cmp.Diff(map[db.ClaimResult]int{db.Abandoned: 1, db.Finished: workers - 1}, count); diff != "" {
				t.Errorf("round %d: stale outcomes by ClaimResult (-want +got):\n%s", round, diff)
			}
			if d := mustFindDelivery(t, bdb, id); d.Status != domain.DeliveryUnknown || d.Attempts != 1 {
				t.Errorf("round %d: status %v, attempts %d; want UNKNOWN, 1", round, d.Status, d.Attempts)
			}
		}
	})
}

func TestDeliveriesConcurrentCreate(t *testing.T) {
	t.Parallel()
	const (
		workers = 10
		rounds  = 5
	)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		deliveries := db.Deliveries{}
		b := setupDelivery(t, bdb)
		for round := range rounds {
			n := mustNotify(t, bdb, newNotification(b.member.ID, domain.NotifyRoomCancelled, "race", notificationEpoch.Add(time.Duration(round)*time.Second)))
			ids := make([]int64, workers)
			created := make([]bool, workers)
			errs := make([]error, workers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range workers {
				wg.Go(func() {
					<-start
					ids[i], created[i], errs[i] = deliveries.Create(ctx, bdb, n.ID, domain.ChannelMail, nil, deliveryEpoch)
				})
			}
			close(start)
			wg.Wait()

			news := 0
			for i, err := range errs {
				if err != nil {
					t.Errorf("round %d, worker %d: %v", round, i, err)
					continue
				}
				if ids[i] != ids[0] {
					t.Errorf("round %d, worker %d: id %d, want %d like worker 0", round, i, ids[i], ids[0])
				}
				if created[i] {
					news++
				}
			}
			if news != 1 {
				t.Errorf("round %d: %d workers created the delivery, want exactly 1", round, news)
			}
			list, err := deliveries.ListByNotification(ctx, bdb, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0].ID != ids[0] {
				t.Errorf("round %d: stored %+v, want the one delivery %d", round, list, ids[0])
			}
		}
	})
}
