package db_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

func TestUnfannedAndMarkFannedOut(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		b := setupDelivery(t, bdb)
		later := mustNotify(t, bdb, newNotification(b.member.ID, domain.NotifyJoinAccepted, "room", notificationEpoch.Add(time.Minute)))
		got, err := db.Notifications{}.Unfanned(ctx, bdb, notificationEpoch, 0, 10)
		if err != nil || len(got) != 1 || got[0].ID != b.notification.ID || got[0].Type != domain.NotifyMatchConfirmed {
			t.Fatalf("Unfanned up to the first = %+v, %v; want only it", got, err)
		}
		if got, err := (db.Notifications{}).Unfanned(ctx, bdb, later.CreatedAt, got[0].Key, 10); err != nil || len(got) != 1 || got[0].ID != later.ID {
			t.Fatalf("Unfanned after the first = %+v, %v; want the later one", got, err)
		}
		ok, err := db.Notifications{}.MarkFannedOut(ctx, bdb, b.notification.ID, notificationEpoch)
		if err != nil || !ok {
			t.Fatalf("MarkFannedOut = %v, %v; want true", ok, err)
		}
		if ok, err := (db.Notifications{}).MarkFannedOut(ctx, bdb, b.notification.ID, notificationEpoch); err != nil || ok {
			t.Fatalf("MarkFannedOut again = %v, %v; want false", ok, err)
		}
		if got, err := (db.Notifications{}).Unfanned(ctx, bdb, later.CreatedAt, 0, 10); err != nil || len(got) != 1 || got[0].ID != later.ID {
			t.Fatalf("Unfanned after marking = %+v, %v; want the later one only", got, err)
		}

		mail := mustDeliver(t, bdb, b.notification, domain.ChannelMail)
		sms := mustDeliver(t, bdb, b.notification, domain.ChannelSMS)
		if err := (db.Deliveries{}).Fail(ctx, bdb, sms, "gone", deliveryEpoch); err != nil {
			t.Fatal(err)
		}
		if ids, err := (db.Deliveries{}).PendingBefore(ctx, bdb, deliveryEpoch.Add(-time.Second), 0, 10); err != nil || len(ids) != 0 {
			t.Fatalf("PendingBefore its creation = %v, %v; want none", ids, err)
		}
		if ids, err := (db.Deliveries{}).PendingBefore(ctx, bdb, deliveryEpoch, 0, 10); err != nil || len(ids) != 1 || ids[0] != mail {
			t.Fatalf("PendingBefore = %v, %v; want the mail only", ids, err)
		}
	})
}

// TestSweepReadsUseTheirIndexes: on PostgreSQL, with many notifications
// fanned out and deliveries finished and a few in flight, the sweeps' reads
// go through their indexes instead of scanning the tables.
func TestSweepReadsUseTheirIndexes(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, dbtest.Postgres)
	ctx := context.Background()
	b := setupDelivery(t, bdb)
	for _, q := range []string{
		`INSERT INTO notifications (public_id, member_id, type, args, created_at, fanned_out_at)
		 SELECT 'n' || g, m.id, 1, '{}', ?, ? FROM members AS m, generate_series(1, 50000) AS g`,
		`INSERT INTO deliveries (notification_id, channel, status, attempts, sms_type, created_at, updated_at)
		 SELECT n.id, 1, ?, 1, 0, n.created_at, n.created_at FROM notifications AS n WHERE n.fanned_out_at IS NOT NULL`,
		`ANALYZE notifications`,
		`ANALYZE deliveries`,
	} {
		args := []any{notificationEpoch, notificationEpoch}
		if strings.HasPrefix(q, "INSERT INTO deliveries") {
			args = []any{int16(domain.DeliverySent)}
		}
		if strings.HasPrefix(q, "ANALYZE") {
			args = nil
		}
		if _, err := bdb.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustDeliver(t, bdb, b.notification, domain.ChannelMail)

	capture := &dbtest.PlanCapture{}
	bdb.AddQueryHook(capture)
	for _, c := range []struct {
		index string
		read  func() error
	}{
		{"notifications_fanned_out_at_id_idx", func() error {
			got, err := db.Notifications{}.Unfanned(ctx, bdb, notificationEpoch.Add(time.Hour), 0, 500)
			if err == nil && len(got) != 1 {
				t.Errorf("Unfanned = %d rows, want 1", len(got))
			}
			return err
		}},
		{"deliveries_status_idx", func() error {
			ids, err := db.Deliveries{}.PendingBefore(ctx, bdb, deliveryEpoch.Add(time.Hour), 0, 500)
			if err == nil && len(ids) != 1 {
				t.Errorf("PendingBefore = %d rows, want 1", len(ids))
			}
			return err
		}},
	} {
		if err := c.read(); err != nil {
			t.Fatal(err)
		}
		var lines []string
		if err := bdb.NewRaw("EXPLAIN "+capture.Last()).Scan(ctx, &lines); err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		t.Logf("%s\n%s", capture.Last(), plan)
		if !strings.Contains(plan, "using "+c.index+" ") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan does not read %s alone:\n%s", c.index, plan)
		}
	}
}
