package migrations

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// What the sweeps need to rebuild work that Redis lost (a FLUSHALL, a
// restart without persistence) from the database alone.
//
// notifications.fanned_out_at is set in the transaction that creates a
// notification's deliveries, after it was announced; NULL means its
// fan-out task has not finished, so the notification sweep redoes it.
// Notifications that exist now were fanned out under the old scheme (or
// are past recovering), so they count as done.
//
// The notification sweep reads by (fanned_out_at, id), the delivery sweep
// by the existing deliveries_status_idx: only the few rows still in flight
// are NULL or PENDING, so a sweep that finds nothing lost reads a handful
// of index entries.

// timeColumn is the type of a nullable timestamp column as the earlier
// migrations created them through bun.
func timeColumn(bdb *bun.DB) string {
	switch bdb.Dialect().Name() {
	case dialect.MySQL:
		return "DATETIME(6)"
	case dialect.PG:
		return "TIMESTAMPTZ"
	default:
		return "TIMESTAMP"
	}
}

const fannedOutIndex = "notifications_fanned_out_at_id_idx"

// sweepsUp adds notifications.fanned_out_at and the sweeps' indexes.
func sweepsUp(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewAddColumn().Table("notifications").
			ColumnExpr("fanned_out_at " + timeColumn(bdb) + " NULL").Exec(ctx); err != nil {
			return fmt.Errorf("add notifications.fanned_out_at: %w", err)
		}
		if _, err := tx.NewUpdate().Table("notifications").
			Set("fanned_out_at = created_at").Where("fanned_out_at IS NULL").Exec(ctx); err != nil {
			return fmt.Errorf("mark existing notifications fanned out: %w", err)
		}
		if _, err := tx.NewCreateIndex().Table("notifications").Index(fannedOutIndex).
			Column("fanned_out_at", "id").Exec(ctx); err != nil {
			return fmt.Errorf("create index %s: %w", fannedOutIndex, err)
		}
		return nil
	})
}

// sweepsDown undoes sweepsUp.
func sweepsDown(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if bdb.Dialect().Name() == dialect.MySQL {
			// MySQL names an index within its table.
			_, err = tx.ExecContext(ctx, "DROP INDEX "+fannedOutIndex+" ON notifications")
		} else {
			_, err = tx.NewDropIndex().Index(fannedOutIndex).IfExists().Exec(ctx)
		}
		if err != nil {
			return fmt.Errorf("drop index %s: %w", fannedOutIndex, err)
		}
		if _, err := tx.NewDropColumn().Table("notifications").Column("fanned_out_at").Exec(ctx); err != nil {
			return fmt.Errorf("drop notifications.fanned_out_at: %w", err)
		}
		return nil
	})
}
