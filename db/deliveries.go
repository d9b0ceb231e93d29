package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/domain"
)

// deliveryRow is a row of deliveries, with the notification's public id
// joined in.
type deliveryRow struct {
	bun.BaseModel `bun:"table:deliveries,alias:d"`

	ID             int64     `bun:"id,pk,autoincrement"`
	NotificationID int64     `bun:"notification_id,notnull"`
	Channel        int16     `bun:"channel,notnull"`
	Status         int16     `bun:"status,notnull"`
	Attempts       int32     `bun:"attempts,notnull"`
	LastError      string    `bun:"last_error,nullzero"`
	ProviderID     string    `bun:"provider_id,nullzero"`
	SMSType        int16     `bun:"sms_type,notnull"`
	Recipients     string    `bun:"recipients,nullzero"`
	ClaimedAt      time.Time `bun:"claimed_at,nullzero"`
	SentAt         time.Time `bun:"sent_at,nullzero"`
	CreatedAt      time.Time `bun:"created_at,notnull"`
	UpdatedAt      time.Time `bun:"updated_at,notnull"`

	NotificationPublicID string `bun:"notification_public_id,scanonly"`
}

func (r *deliveryRow) toDomain() (*domain.Delivery, error) {
	d := &domain.Delivery{
		ID:             r.ID,
		NotificationID: r.NotificationPublicID,
		Channel:        domain.Channel(r.Channel),
		Status:         domain.DeliveryStatus(r.Status),
		Attempts:       int(r.Attempts),
		LastError:      r.LastError,
		ProviderID:     r.ProviderID,
		SMSType:        int(r.SMSType),
		CreatedAt:      r.CreatedAt.UTC(),
	}
	if r.Recipients != "" {
		if err := json.Unmarshal([]byte(r.Recipients), &d.Recipients); err != nil {
			return nil, fmt.Errorf("decode recipients of delivery %d: %w", r.ID, err)
		}
	}
	if !r.ClaimedAt.IsZero() {
		at := r.ClaimedAt.UTC()
		d.ClaimedAt = &at
	}
	if !r.SentAt.IsZero() {
		at := r.SentAt.UTC()
		d.SentAt = &at
	}
	return d, nil
}

// maxErrorLen bounds the last error kept on a delivery.
const maxErrorLen = 1000

func cutError(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	// Cut at a rune boundary so the column holds valid UTF-8.
	for i := maxErrorLen; i > 0; i-- {
		if s[i]&0xC0 != 0x80 {
			return s[:i]
		}
	}
	return ""
}

// Deliveries is the store of deliveries: one row per notification and
// channel, the record that makes each send happen at most once.
type Deliveries struct{}

// Create adds the delivery of a notification on a channel unless it exists,
// and returns its id; created is false when it was already there (a
// fan-out that runs twice creates nothing new). recipients names the
// members of a group message. Errors: ENOTFOUND for an unknown notification.
func (Deliveries) Create(ctx context.Context, idb bun.IDB, notificationID string, ch domain.Channel, recipients []string, now time.Time) (id int64, created bool, err error) {
	var nid int64
	if err := idb.NewSelect().Model((*notificationRow)(nil)).Column("id").
		Where("public_id = ?", notificationID).Scan(ctx, &nid); err != nil {
		return 0, false, fmt.Errorf("create delivery: notification %s: %w", notificationID, translate(err))
	}
	row := deliveryRow{NotificationID: nid, Channel: int16(ch), Status: int16(domain.DeliveryPending),
		CreatedAt: dbTime(now), UpdatedAt: dbTime(now)}
	if len(recipients) > 0 {
		b, err := json.Marshal(recipients)
		if err != nil {
			return 0, false, fmt.Errorf("encode recipients: %w", err)
		}
		row.Recipients = string(b)
	}
	q := idb.NewInsert().Model(&row)
	if idb.Dialect().Name() == dialect.MySQL {
		q = q.Ignore()
	} else {
		q = q.On("CONFLICT (notification_id, channel) DO NOTHING")
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("create delivery: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, false, fmt.Errorf("create delivery: %w", err)
	}
	if err := idb.NewSelect().Model((*deliveryRow)(nil)).Column("id").
		Where("notification_id = ?", nid).Where("channel = ?", int16(ch)).Scan(ctx, &id); err != nil {
		return 0, false, fmt.Errorf("create delivery: read id: %w", translate(err))
	}
	return id, n == 1, nil
}

// FindByID returns the delivery with id. Errors: ENOTFOUND.
func (Deliveries) FindByID(ctx context.Context, idb bun.IDB, id int64) (*domain.Delivery, error) {
	var row deliveryRow
	err := idb.NewSelect().Model(&row).
		ColumnExpr("d.*").
		ColumnExpr("n.public_id AS notification_public_id").
		Join("JOIN notifications AS n ON n.id = d.notification_id").
		Where("d.id = ?", id).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find delivery %d: %w", id, translate(err))
	}
	return row.toDomain()
}

// ListByNotification returns the deliveries of a notification by channel.
func (Deliveries) ListByNotification(ctx context.Context, idb bun.IDB, notificationID string) ([]domain.Delivery, error) {
	var rows []deliveryRow
	err := idb.NewSelect().Model(&rows).
		ColumnExpr("d.*").
		ColumnExpr("n.public_id AS notification_public_id").
		Join("JOIN notifications AS n ON n.id = d.notification_id").
		Where("n.public_id = ?", notificationID).
		OrderExpr("d.channel").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", translate(err))
	}
	out := make([]domain.Delivery, 0, len(rows))
	for i := range rows {
		d, err := rows[i].toDomain()
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, nil
}

// ClaimResult says what Claim found.
type ClaimResult int

// The outcomes of Claim.
const (
	// Claimed: the delivery is now SENDING and the caller must send it.
	Claimed ClaimResult = iota + 1
	// Finished: it is SENT, FAILED or UNKNOWN already; nothing to do.
	Finished
	// Busy: another worker claimed it recently and may be sending now, or
	// has just released it; try again later.
	Busy
	// Abandoned: it was claimed before staleBefore and never finished — a
	// worker died mid-send. It is now UNKNOWN: it may or may not have gone
	// out, so it is reported, never sent again.
	Abandoned
)

// Claim takes a PENDING delivery for sending: one conditional UPDATE, so of
// many workers racing exactly one gets Claimed. A claim made before
// staleBefore that never finished is turned UNKNOWN (Abandoned).
func (Deliveries) Claim(ctx context.Context, idb bun.IDB, id int64, now, staleBefore time.Time) (ClaimResult, error) {
	res, err := idb.NewUpdate().Model((*deliveryRow)(nil)).
		Set("status = ?", int16(domain.DeliverySending)).
		Set("attempts = attempts + 1").
		Set("claimed_at = ?", dbTime(now)).
		Set("updated_at = ?", dbTime(now)).
		Where("id = ?", id).
		Where("status = ?", int16(domain.DeliveryPending)).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("claim delivery %d: %w", id, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("claim delivery %d: %w", id, err)
	} else if n == 1 {
		return Claimed, nil
	}
	var row deliveryRow
	if err := idb.NewSelect().Model(&row).Column("status", "claimed_at").Where("id = ?", id).Scan(ctx); err != nil {
		return 0, fmt.Errorf("claim delivery %d: %w", id, translate(err))
	}
	switch domain.DeliveryStatus(row.Status) {
	case domain.DeliverySending:
	case domain.DeliveryPending:
		// Released by its holder between the UPDATE above and this read:
		// still to be sent, so the caller must come back, not drop it.
		return Busy, nil
	default:
		return Finished, nil
	}
	if row.ClaimedAt.After(staleBefore) {
		return Busy, nil
	}
	res, err = idb.NewUpdate().Model((*deliveryRow)(nil)).
		Set("status = ?", int16(domain.DeliveryUnknown)).
		Set("last_error = ?", "claimed at "+row.ClaimedAt.UTC().Format(time.RFC3339)+" and never finished; it may have been sent").
		Set("updated_at = ?", dbTime(now)).
		Where("id = ?", id).
		Where("status = ?", int16(domain.DeliverySending)).
		Where("claimed_at <= ?", dbTime(staleBefore)).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("abandon delivery %d: %w", id, translate(err))
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return Abandoned, nil
	}
	return Finished, nil // someone else settled it in between
}

// MarkSent records that the provider accepted a claimed delivery.
func (Deliveries) MarkSent(ctx context.Context, idb bun.IDB, id int64, providerID string, smsType int, now time.Time) error {
	return settle(ctx, idb, id, "mark sent", func(q *bun.UpdateQuery) *bun.UpdateQuery {
		return q.Set("status = ?", int16(domain.DeliverySent)).
			Set("provider_id = ?", providerID).
			Set("sms_type = ?", int16(smsType)).
			Set("sent_at = ?", dbTime(now)).
			Set("last_error = NULL").
			Set("updated_at = ?", dbTime(now))
	})
}

// Release puts a claimed delivery back to PENDING after a temporary failure,
// for the next attempt.
func (Deliveries) Release(ctx context.Context, idb bun.IDB, id int64, cause string, now time.Time) error {
	return settle(ctx, idb, id, "release", func(q *bun.UpdateQuery) *bun.UpdateQuery {
		return q.Set("status = ?", int16(domain.DeliveryPending)).
			Set("last_error = ?", cutError(cause)).
			Set("updated_at = ?", dbTime(now))
	})
}

// Fail gives a claimed or pending delivery up: a permanent failure or no
// retries left.
func (Deliveries) Fail(ctx context.Context, idb bun.IDB, id int64, cause string, now time.Time) error {
	return settle(ctx, idb, id, "fail", func(q *bun.UpdateQuery) *bun.UpdateQuery {
		return q.Set("status = ?", int16(domain.DeliveryFailed)).
			Set("last_error = ?", cutError(cause)).
			Set("updated_at = ?", dbTime(now))
	})
}

// FailPending gives up a delivery nobody has claimed: a permanent failure
// found before the claim must not overwrite another worker's claim (that
// worker may be sending right now). Errors: ECONFLICT when it is claimed
// or finished, ENOTFOUND for an unknown id.
func (Deliveries) FailPending(ctx context.Context, idb bun.IDB, id int64, cause string, now time.Time) error {
	return settleFrom(ctx, idb, id, "fail", []int16{int16(domain.DeliveryPending)}, func(q *bun.UpdateQuery) *bun.UpdateQuery {
		return q.Set("status = ?", int16(domain.DeliveryFailed)).
			Set("last_error = ?", cutError(cause)).
			Set("updated_at = ?", dbTime(now))
	})
}

// AbandonStale turns every delivery claimed before staleBefore and still
// SENDING into UNKNOWN and returns how many per channel. It catches claims
// whose task is gone (archived after a crash on its last attempt, or after
// a failed MarkSent), which no retry would ever look at again.
func (Deliveries) AbandonStale(ctx context.Context, idb bun.IDB, staleBefore, now time.Time) (map[domain.Channel]int, error) {
	var rows []deliveryRow
	if err := idb.NewSelect().Model(&rows).Column("d.id", "d.channel", "d.claimed_at").
		Where("d.status = ?", int16(domain.DeliverySending)).
		Where("d.claimed_at <= ?", dbTime(staleBefore)).
		Scan(ctx); err != nil {
		return nil, fmt.Errorf("find stale deliveries: %w", translate(err))
	}
	out := map[domain.Channel]int{}
	for _, r := range rows {
		res, err := idb.NewUpdate().Model((*deliveryRow)(nil)).
			Set("status = ?", int16(domain.DeliveryUnknown)).
			Set("last_error = ?", "claimed at "+r.ClaimedAt.UTC().Format(time.RFC3339)+" and never finished; it may have been sent").
			Set("updated_at = ?", dbTime(now)).
			Where("id = ?", r.ID).
			Where("status = ?", int16(domain.DeliverySending)).
			Where("claimed_at <= ?", dbTime(staleBefore)).
			Exec(ctx)
		if err != nil {
			return out, fmt.Errorf("abandon delivery %d: %w", r.ID, translate(err))
		}
		if n, _ := res.RowsAffected(); n == 1 {
			out[domain.Channel(r.Channel)]++
		}
	}
	return out, nil
}

// PendingBefore returns the ids of up to limit PENDING deliveries, with id
// above after, last changed (created or released) at or before before, in
// id order: those whose task the delivery sweep checks is still in Redis.
// It reads deliveries_status_idx, so its cost is the number of PENDING
// rows, which is what is in flight.
func (Deliveries) PendingBefore(ctx context.Context, idb bun.IDB, before time.Time, after int64, limit int) ([]int64, error) {
	var ids []int64
	err := idb.NewSelect().Model((*deliveryRow)(nil)).Column("d.id").
		Where("d.status = ?", int16(domain.DeliveryPending)).
		Where("d.id > ?", after).
		Where("d.updated_at <= ?", dbTime(before)).
		OrderExpr("d.id").
		Limit(int64(limit)).
		Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("find pending deliveries: %w", translate(err))
	}
	return ids, nil
}

// settle updates a delivery that is not finished yet. Errors: ENOTFOUND
// for an unknown id, ECONFLICT when it already was finished (SENT, FAILED
// or UNKNOWN).
func settle(ctx context.Context, idb bun.IDB, id int64, what string, set func(*bun.UpdateQuery) *bun.UpdateQuery) error {
	return settleFrom(ctx, idb, id, what, []int16{int16(domain.DeliveryPending), int16(domain.DeliverySending)}, set)
}

// settleFrom is settle for a delivery in one of the statuses from.
func settleFrom(ctx context.Context, idb bun.IDB, id int64, what string, from []int16, set func(*bun.UpdateQuery) *bun.UpdateQuery) error {
	res, err := set(idb.NewUpdate().Model((*deliveryRow)(nil))).
		Where("id = ?", id).
		Where("status IN (?)", bun.In(from)).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("%s delivery %d: %w", what, id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s delivery %d: %w", what, id, err)
	}
	if n == 1 {
		return nil
	}
	// No row counted: the id is unknown, the delivery is finished, or, on
	// MySQL, which counts changed rather than matched rows, it matched but
	// already held these values (a Release repeated with the same cause
	// and time).
	var status int16
	if err := idb.NewSelect().Model((*deliveryRow)(nil)).Column("status").
		Where("id = ?", id).Scan(ctx, &status); err != nil {
		return fmt.Errorf("%s delivery %d: %w", what, id, translate(err))
	}
	for _, f := range from {
		if status == f {
			return nil
		}
	}
	return fmt.Errorf("%s delivery %d: %w", what, id,
		&domain.Error{Code: domain.ECONFLICT, Message: "The delivery is already finished."})
}
