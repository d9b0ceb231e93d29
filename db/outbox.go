package db

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// OutboxRow is one follow-up task written in the same transaction as the
// state change that caused it. The relay claims unsent rows, moves them into
// asynq with TaskID as the asynq task id and then sets SentAt.
type OutboxRow struct {
	bun.BaseModel `bun:"table:outbox"`

	ID int64 `bun:"id,pk,autoincrement"`
	// TaskID is the asynq task id: random and fixed at insert, so a row
	// relayed twice (a relay died between enqueue and mark) meets
	// asynq.ErrTaskIDConflict instead of becoming a second task.
	TaskID   string            `bun:"task_id,notnull"`
	Queue    string            `bun:"queue,notnull"`
	Type     string            `bun:"type,notnull"`
	Payload  []byte            `bun:"payload,notnull"`
	Headers  map[string]string `bun:"headers,type:text,notnull"`
	MaxRetry int               `bun:"max_retry,notnull"`
	// ProcessAt is zero for "now"; a later time is handed to asynq as
	// ProcessAt right away, so asynq does the scheduling.
	ProcessAt time.Time `bun:"process_at,nullzero"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	// SentAt is zero until the task is in asynq.
	SentAt time.Time `bun:"sent_at,nullzero"`
	// Attempts counts failed relay attempts; LastError is the latest one.
	Attempts  int    `bun:"attempts,notnull"`
	LastError string `bun:"last_error,nullzero"`
	// ClaimedUntil is zero, or the end of the lease a relay took on the
	// unsent row with Claim: until then no other relay claims it.
	ClaimedUntil time.Time `bun:"claimed_until,nullzero"`
}

// maxOutboxError bounds last_error: it is a hint for operators, and a whole
// Redis error chain can be long.
const maxOutboxError = 1000

// Outbox is the store of outbox rows. The zero value is ready to use; every
// method takes the bun.IDB to run on, so writes compose with the caller's
// transaction.
type Outbox struct{}

// Insert writes rows with one multi-row INSERT. A zero CreatedAt becomes now
// (UTC), nil Headers an empty map and a nil Payload an empty one, in place.
// A duplicate TaskID is an ECONFLICT domain error.
func (Outbox) Insert(ctx context.Context, idb bun.IDB, rows []OutboxRow) error {
	if len(rows) == 0 {
		return nil
	}
	now := time.Now().UTC()
	for i := range rows {
		r := &rows[i]
		if r.CreatedAt.IsZero() {
			r.CreatedAt = now
		} else {
			r.CreatedAt = r.CreatedAt.UTC()
		}
		if !r.ProcessAt.IsZero() {
			r.ProcessAt = r.ProcessAt.UTC()
		}
		// bun writes nil maps and slices as NULL; both columns are NOT NULL.
		if r.Headers == nil {
			r.Headers = map[string]string{}
		}
		if r.Payload == nil {
			r.Payload = []byte{}
		}
	}
	n := len(rows)
	if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("insert %d outbox rows: %w", n, translate(err))
	}
	return nil
}

// claimTxOptions returns the options for the claim transaction (nil means
// the driver's default).
//
// MySQL/MariaDB get READ COMMITTED: under their default REPEATABLE READ the
// claim's range scan takes gap locks on the (sent_at, id) index, and a
// concurrent MarkSent moving a row out of sent_at IS NULL inserts into a
// locked gap, so it would wait for the claim (or deadlock with it).
// PostgreSQL is READ COMMITTED already and SQLite has one writer anyway.
func claimTxOptions(idb bun.IDB) *sql.TxOptions {
	if idb.Dialect().Name() == dialect.MySQL {
		return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	return nil
}

// Claim leases up to limit unsent rows, oldest first, to the caller until
// now+lease and returns them (with ClaimedUntil set). A row is claimable
// while unsent and not leased, or its lease has passed. The caller hands the
// rows to asynq with no transaction open and then calls MarkSent or
// RecordFailure; a caller that dies instead simply lets the lease run out,
// and the next claimer sends the rows again (their task ids make that a
// no-op in asynq). now comes from the caller's clock, so relays sharing a
// database need clocks agreeing to well within the lease.
//
// Claim runs one short transaction of its own: select, set claimed_until,
// commit. On PostgreSQL and MySQL/MariaDB the select is FOR UPDATE SKIP
// LOCKED, so concurrent claimers skip each other's rows instead of waiting,
// and a row whose lease another claimer has just committed is re-read and
// filtered out. SQLite has no row locks and no such clause; there the
// database is opened with _txlock=immediate, so the transaction holds the
// single write lock from BEGIN and a second claimer waits (busy_timeout) the
// few statements until it commits, then sees the leases.
func (o Outbox) Claim(ctx context.Context, bdb *bun.DB, limit int, now time.Time, lease time.Duration) ([]OutboxRow, error) {
	return o.ClaimAfter(ctx, bdb, 0, limit, now, lease)
}

// ClaimAfter is Claim restricted to rows whose id is above after. The scan
// then starts at after in the (sent_at, id) index instead of at its
// beginning, where every row sent since the last VACUUM (PostgreSQL) or
// purge (InnoDB) has left a dead entry for the claim to step over: at
// 150k of them a claim from the beginning takes milliseconds, one from
// after a fraction of one.
func (Outbox) ClaimAfter(ctx context.Context, bdb *bun.DB, after int64, limit int, now time.Time, lease time.Duration) ([]OutboxRow, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("claim outbox rows: limit %d, want > 0", limit)
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim outbox rows: lease %s, want > 0", lease)
	}
	now = now.UTC()
	until := now.Add(lease)
	unclaimed := func(q *bun.SelectQuery) *bun.SelectQuery {
		q = q.Where("sent_at IS NULL")
		if after > 0 {
			q = q.Where("id > ?", after)
		}
		return q.
			WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				return q.Where("claimed_until IS NULL").WhereOr("claimed_until <= ?", now)
			}).
			// The same order as "id" (sent_at is NULL in all of them), but
			// it lets the planner walk the (sent_at, id) index instead of the
			// primary key past every sent row kept for outbox.keep_sent.
			Order("sent_at", "id").
			Limit(int64(limit))
	}
	var rows []OutboxRow
	if bdb.Dialect().Name() == dialect.PG {
		// One statement, one round trip: the subquery locks and skips like
		// the two-step form below, and RETURNING hands back the rows.
		sub := unclaimed(bdb.NewSelect().Model((*OutboxRow)(nil)).Column("id")).For("UPDATE SKIP LOCKED")
		err := bdb.NewUpdate().
			Model((*OutboxRow)(nil)).
			Set("claimed_until = ?", until).
			Where("id IN (?)", sub).
			Returning("*").
			Scan(ctx, &rows)
		if err != nil {
			return nil, fmt.Errorf("claim outbox rows: %w", translate(err))
		}
		slices.SortFunc(rows, func(a, b OutboxRow) int { return cmp.Compare(a.ID, b.ID) })
		return rows, nil
	}
	err := bdb.RunInTx(ctx, claimTxOptions(bdb), func(ctx context.Context, tx bun.Tx) error {
		rows = nil
		q := unclaimed(tx.NewSelect().Model(&rows))
		if tx.Dialect().Name() != dialect.SQLite {
			q = q.For("UPDATE SKIP LOCKED")
		}
		if err := q.Scan(ctx); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		ids := make([]int64, len(rows))
		for i := range rows {
			ids[i] = rows[i].ID
		}
		_, err := tx.NewUpdate().
			Model((*OutboxRow)(nil)).
			Set("claimed_until = ?", until).
			Where("id IN (?)", bun.List(ids)).
			Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", translate(err))
	}
	for i := range rows {
		rows[i].ClaimedUntil = until
	}
	return rows, nil
}

// MarkSent sets sent_at on the rows ids and ends their claim; a row already
// sent keeps its time.
func (Outbox) MarkSent(ctx context.Context, idb bun.IDB, ids []int64, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := idb.NewUpdate().
		Model((*OutboxRow)(nil)).
		// COALESCE rather than "AND sent_at IS NULL": on MySQL that condition
		// can make the UPDATE scan the (sent_at, id) index and wait on rows
		// other relays hold, while "id IN" alone stays on the primary key.
		Set("sent_at = COALESCE(sent_at, ?)", at.UTC()).
		Set("claimed_until = NULL").
		Where("id IN (?)", bun.List(ids)).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("mark %d outbox rows sent: %w", len(ids), translate(err))
	}
	return nil
}

// RecordFailure counts a failed relay attempt on the rows ids, keeps msg (cut
// to a bounded length) as their last error and ends their claim, so the next
// claim (the relay's, after its backoff, or another relay's) takes them
// again. msg is stored and shown to operators, so callers pass error text
// that carries no secrets.
func (Outbox) RecordFailure(ctx context.Context, idb bun.IDB, ids []int64, msg string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := idb.NewUpdate().
		Model((*OutboxRow)(nil)).
		Set("attempts = attempts + 1").
		Set("last_error = ?", truncateUTF8(msg, maxOutboxError)).
		Set("claimed_until = NULL").
		Where("id IN (?)", bun.List(ids)).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("record failure on %d outbox rows: %w", len(ids), translate(err))
	}
	return nil
}

// DeleteSentBefore deletes up to limit rows sent before the given time, oldest
// first, and returns how many it deleted. Unsent rows are never deleted. The
// limit keeps each statement short, so prune a backlog by calling it until
// it returns less than limit.
func (Outbox) DeleteSentBefore(ctx context.Context, idb bun.IDB, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("delete sent outbox rows: limit %d, want > 0", limit)
	}
	q := idb.NewDelete().Model((*OutboxRow)(nil))
	if idb.Dialect().Name() == dialect.MySQL {
		// MySQL cannot select from the table it deletes from in a subquery,
		// but it has DELETE ... ORDER BY ... LIMIT.
		q = q.Where("sent_at IS NOT NULL").
			Where("sent_at < ?", before.UTC()).
			Order("sent_at", "id").
			Limit(int64(limit))
	} else {
		// PostgreSQL has no DELETE ... LIMIT, and SQLite has it only as a
		// compile-time option.
		sub := idb.NewSelect().
			Model((*OutboxRow)(nil)).
			Column("id").
			Where("sent_at IS NOT NULL").
			Where("sent_at < ?", before.UTC()).
			Order("sent_at", "id").
			Limit(int64(limit))
		q = q.Where("id IN (?)", sub)
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete outbox rows sent before %s: %w", before.UTC().Format(time.RFC3339), translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete outbox rows sent before %s: rows affected: %w", before.UTC().Format(time.RFC3339), err)
	}
	return int(n), nil
}

// CountUnsent returns how many rows are waiting for the relay.
func (Outbox) CountUnsent(ctx context.Context, idb bun.IDB) (int, error) {
	n, err := idb.NewSelect().
		Model((*OutboxRow)(nil)).
		Where("sent_at IS NULL").
		Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count unsent outbox rows: %w", translate(err))
	}
	return int(n), nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character and
// replaces invalid bytes, so the stored text is valid UTF-8 (MySQL rejects
// invalid utf8mb4).
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
