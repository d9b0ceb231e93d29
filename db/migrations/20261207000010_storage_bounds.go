package migrations

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Bounded storage: the retention tick deletes read and old notifications,
// finished deliveries and ended sessions, each by an index on the time it
// goes by (sessions already have expires_at's); and the tables that churn
// get their own autovacuum settings on PostgreSQL.
//
// PostgreSQL's default vacuums a table once a fifth of it is dead. The
// outbox takes ~8,000 rows a minute at 150 requests/s and keeps a day of
// them, so that default lets millions of dead entries pile up in its
// indexes before a vacuum, and every claim or lookup wades through them. A
// fixed threshold instead vacuums after that many dead rows, whatever the
// table's size: about once a minute for the outbox at that load.

// retentionIndexes are the indexes the retention deletes walk.
var retentionIndexes = []struct{ table, name, column string }{
	{"notifications", "notifications_read_at_idx", "read_at"},
	{"notifications", "notifications_created_at_idx", "created_at"},
	{"deliveries", "deliveries_updated_at_idx", "updated_at"},
}

// churnAutovacuum holds the per-table storage parameters, by table.
var churnAutovacuum = []struct {
	table    string
	settings string
}{
	{"outbox", "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000, " +
		"autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000, " +
		"autovacuum_analyze_scale_factor = 0.02"},
	{"deliveries", "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 5000, " +
		"autovacuum_analyze_scale_factor = 0.02"},
	{"notifications", "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 5000, " +
		"autovacuum_analyze_scale_factor = 0.02"},
	{"sessions", "autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, " +
		"autovacuum_analyze_scale_factor = 0.05"},
}

// churnParams are the parameters churnAutovacuum sets, for the reset.
const churnParams = "autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, " +
	"autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold, autovacuum_analyze_scale_factor"

// storageBoundsUp creates the retention indexes and, on PostgreSQL, sets
// the autovacuum parameters of the churning tables.
func storageBoundsUp(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, ix := range retentionIndexes {
			if _, err := tx.NewCreateIndex().Table(ix.table).Index(ix.name).Column(ix.column).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", ix.name, err)
			}
		}
		if tx.Dialect().Name() != dialect.PG {
			return nil
		}
		for _, a := range churnAutovacuum {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE "+a.table+" SET ("+a.settings+")"); err != nil {
				return fmt.Errorf("set autovacuum of %s: %w", a.table, err)
			}
		}
		return nil
	})
}

// storageBoundsDown drops the indexes and resets the parameters.
func storageBoundsDown(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if tx.Dialect().Name() == dialect.PG {
			for _, a := range churnAutovacuum {
				if _, err := tx.ExecContext(ctx, "ALTER TABLE "+a.table+" RESET ("+churnParams+")"); err != nil {
					return fmt.Errorf("reset autovacuum of %s: %w", a.table, err)
				}
			}
		}
		for _, ix := range retentionIndexes {
			var err error
			if tx.Dialect().Name() == dialect.MySQL {
				// MySQL names an index within its table.
				_, err = tx.ExecContext(ctx, "DROP INDEX "+ix.name+" ON "+ix.table)
			} else {
				_, err = tx.NewDropIndex().Index(ix.name).IfExists().Exec(ctx)
			}
			if err != nil {
				return fmt.Errorf("drop index %s: %w", ix.name, err)
			}
		}
		return nil
	})
}
