package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// The retention deletes below take at most limit rows each, oldest first,
// by an index on the time the rows go by, so a backlog is deleted in short
// statements: call them until they return less than limit.

// selectIDs returns up to limit ids of table matching where, ordered by
// the column order.
func selectIDs(ctx context.Context, idb bun.IDB, table, order string, limit int, where func(*bun.SelectQuery) *bun.SelectQuery) ([]int64, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("limit %d, want > 0", limit)
	}
	var ids []int64
	q := where(idb.NewSelect().TableExpr(table).Column("id")).Order(order).Limit(int64(limit))
	if err := q.Scan(ctx, &ids); err != nil {
		return nil, translate(err)
	}
	return ids, nil
}

// deleteIDs deletes the rows of table with the given ids and returns how
// many it deleted.
func deleteIDs(ctx context.Context, idb bun.IDB, table, column string, ids []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := idb.NewDelete().TableExpr(table).Where("? IN (?)", bun.Ident(column), bun.In(ids)).Exec(ctx)
	if err != nil {
		return 0, translate(err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DeleteFinishedBefore deletes up to limit deliveries that were sent, failed
// or reported unknown and last changed before before, and returns how many
// it deleted. Pending and sending ones stay, whatever their age.
func (Deliveries) DeleteFinishedBefore(ctx context.Context, idb bun.IDB, before time.Time, limit int) (int, error) {
	ids, err := selectIDs(ctx, idb, "deliveries", "updated_at", limit, func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("updated_at < ?", dbTime(before)).
			Where("status IN (?)", bun.In([]int16{int16(domain.DeliverySent), int16(domain.DeliveryFailed), int16(domain.DeliveryUnknown)}))
	})
	if err != nil {
		return 0, fmt.Errorf("delete finished deliveries: %w", err)
	}
	n, err := deleteIDs(ctx, idb, "deliveries", "id", ids)
	if err != nil {
		return 0, fmt.Errorf("delete finished deliveries: %w", err)
	}
	return n, nil
}

// DeleteOld deletes up to limit notifications read before readBefore, or
// never read and created before unreadBefore, with their deliveries, in
// one transaction, and returns how many notifications it deleted.
func (Notifications) DeleteOld(ctx context.Context, bdb *bun.DB, readBefore, unreadBefore time.Time, limit int) (int, error) {
	ids, err := selectIDs(ctx, bdb, "notifications", "read_at", limit, func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("read_at < ?", dbTime(readBefore))
	})
	if err != nil {
		return 0, fmt.Errorf("delete old notifications: %w", err)
	}
	if len(ids) < limit {
		unread, err := selectIDs(ctx, bdb, "notifications", "created_at", limit-len(ids), func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("read_at IS NULL").Where("created_at < ?", dbTime(unreadBefore))
		})
		if err != nil {
			return 0, fmt.Errorf("delete old notifications: %w", err)
		}
		ids = append(ids, unread...)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n := 0
	err = RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		// The deliveries reference the notifications.
		if _, err := deleteIDs(ctx, tx, "deliveries", "notification_id", ids); err != nil {
			return err
		}
		n, err = deleteIDs(ctx, tx, "notifications", "id", ids)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete old notifications: %w", err)
	}
	return n, nil
}
