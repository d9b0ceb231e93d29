package missiondb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// pointEntryRow is a row of the point ledger.
type pointEntryRow struct {
	bun.BaseModel `bun:"table:point_entries,alias:pe"`

	ID             int64     `bun:"id,pk,autoincrement"`
	PublicID       string    `bun:"public_id,notnull"`
	MemberID       int64     `bun:"member_id,notnull"`
	Amount         int64     `bun:"amount,notnull"`
	Kind           int16     `bun:"kind,notnull"`
	MissionID      int64     `bun:"mission_id,nullzero"`
	IdempotencyKey string    `bun:"idempotency_key,notnull"`
	Reason         string    `bun:"reason,notnull"`
	CreatedAt      time.Time `bun:"created_at,notnull"`

	MemberPublicID  string `bun:"member_public_id,scanonly"`
	MissionPublicID string `bun:"mission_public_id,scanonly"`
}

func (r *pointEntryRow) toDomain() domain.PointEntry {
	return domain.PointEntry{
		ID: r.PublicID, MemberID: r.MemberPublicID, Amount: r.Amount, Kind: domain.PointKind(r.Kind),
		MissionID: r.MissionPublicID, Key: r.IdempotencyKey, Reason: r.Reason, CreatedAt: r.CreatedAt.UTC(),
	}
}

// selectPointEntries selects entries with their member's and mission's
// public ids.
func selectPointEntries(idb bun.IDB, rows *[]pointEntryRow) *bun.SelectQuery {
	return idb.NewSelect().Model(rows).
		ColumnExpr("pe.*").
		ColumnExpr("m.public_id AS member_public_id").
		ColumnExpr("ms.public_id AS mission_public_id").
		Join("JOIN members AS m ON m.id = pe.member_id").
		Join("LEFT JOIN missions AS ms ON ms.id = pe.mission_id")
}

// pointBalanceRow is a member's balance.
type pointBalanceRow struct {
	bun.BaseModel `bun:"table:point_balances,alias:pb"`

	MemberID  int64     `bun:"member_id,pk"`
	Balance   int64     `bun:"balance,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}

// PointPost is one change of a member's points, by row ids.
type PointPost struct {
	MemberKey  int64
	Amount     int64 // signed; never 0
	Kind       domain.PointKind
	MissionKey int64 // 0 for none
	// Key makes the post idempotent: a key posted before is not posted
	// again. At most domain.PointKeyMax characters.
	Key    string
	Reason string
	Now    time.Time
}

// Points is the point wallet. The zero value is ready to use; every method
// takes the bun.IDB to run on, so a post joins the caller's transaction
// (a join's stake commits or rolls back with the membership).
type Points struct{}

// Post writes one ledger entry and moves the member's balance by its
// amount in the same transaction, which idb must be for the two to stay
// equal. It reports false, and changes nothing, when an entry with p.Key
// exists already. A debit the balance cannot cover is refused by the
// balance update's own condition (balance + amount ≥ 0), so concurrent
// debits can never overdraw: the error is domain.EINSUFFICIENTPOINTS, and
// the caller must roll back (the entry was written before the check).
//
// Lock order: callers that also update a mission lock the mission row
// first and balances after, members in ascending row id, so two
// transactions never wait on each other in a circle.
func (Points) Post(ctx context.Context, idb bun.IDB, p PointPost) (bool, error) {
	if p.Amount == 0 || p.Amount > domain.PointAmountMax || p.Amount < -domain.PointAmountMax {
		return false, fmt.Errorf("post points: amount %d out of range", p.Amount)
	}
	if p.Key == "" || len(p.Key) > domain.PointKeyMax {
		return false, fmt.Errorf("post points: idempotency key of %d bytes", len(p.Key))
	}
	if !p.Kind.Valid() {
		return false, fmt.Errorf("post points: invalid kind %d", int(p.Kind))
	}
	now := db.DBTime(p.Now)
	entry := pointEntryRow{
		PublicID: db.NewPublicID(), MemberID: p.MemberKey, Amount: p.Amount, Kind: int16(p.Kind),
		MissionID: p.MissionKey, IdempotencyKey: p.Key, Reason: p.Reason, CreatedAt: now,
	}
	// Nothing is read back (RowsAffected says whether it was written), so
	// no RETURNING: the insert is a plain exec, not a query and a scan.
	q := idb.NewInsert().Model(&entry).Returning("")
	if idb.Dialect().Name() == dialect.MySQL {
		q = q.Ignore()
	} else {
		q = q.On("CONFLICT (idempotency_key) DO NOTHING")
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("post points: insert entry: %w", db.Translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("post points: %w", err)
	} else if n == 0 {
		if err := checkIgnored(ctx, idb, p); err != nil {
			return false, err
		}
		return false, nil
	}
	if p.Amount > 0 {
		// A credit cannot overdraw, so it is an upsert: one statement, and
		// no separate "create at 0" insert, whose shared lock on an existing
		// row made concurrent posts deadlock on MySQL (each held the shared
		// lock and waited for the other's to update).
		q := idb.NewInsert().Model(&pointBalanceRow{MemberID: p.MemberKey, Balance: p.Amount, UpdatedAt: now})
		if idb.Dialect().Name() == dialect.MySQL {
			q = q.On("DUPLICATE KEY UPDATE").
				Set("balance = balance + VALUES(balance)").Set("updated_at = VALUES(updated_at)")
		} else {
			q = q.On("CONFLICT (member_id) DO UPDATE").
				Set("balance = pb.balance + EXCLUDED.balance").Set("updated_at = EXCLUDED.updated_at")
		}
		if _, err := q.Exec(ctx); err != nil {
			return false, fmt.Errorf("post points: credit balance: %w", db.Translate(err))
		}
		return true, nil
	}
	// A debit of a member without a balance row finds nothing to update:
	// their balance is 0, which no debit leaves at or above zero.
	res, err = idb.NewUpdate().Model((*pointBalanceRow)(nil)).
		Set("balance = balance + ?", p.Amount).
		Set("updated_at = ?", now).
		Where("member_id = ?", p.MemberKey).
		Where("balance + ? >= 0", p.Amount).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("post points: debit balance: %w", db.Translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("post points: %w", err)
	} else if n == 0 {
		return false, domain.ErrInsufficientPoints()
	}
	return true, nil
}

// checkIgnored makes sure an entry MySQL's INSERT IGNORE left out was a
// replay: IGNORE also turns a foreign-key failure (no such member) into a
// warning, which would make the post a silent no-op. The read locks, so it
// sees a concurrent post's committed row that the transaction's snapshot
// may not.
func checkIgnored(ctx context.Context, idb bun.IDB, p PointPost) error {
	if idb.Dialect().Name() != dialect.MySQL {
		return nil
	}
	var n int
	err := idb.NewRaw("SELECT COUNT(*) FROM point_entries WHERE idempotency_key = ? LOCK IN SHARE MODE", p.Key).Scan(ctx, &n)
	if err != nil {
		return fmt.Errorf("post points: %w", db.Translate(err))
	}
	if n == 0 {
		return fmt.Errorf("post points: entry not written: no member %d", p.MemberKey)
	}
	return nil
}

// Balance is the member's balance; 0 for a member who never had points.
func (Points) Balance(ctx context.Context, idb bun.IDB, memberKey int64) (int64, error) {
	var row pointBalanceRow
	err := idb.NewSelect().Model(&row).Where("member_id = ?", memberKey).Scan(ctx)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return 0, fmt.Errorf("point balance: %w", db.Translate(err))
	}
	return row.Balance, nil
}

// PointPage is one page of a member's entries, newest first, with their
// balance.
type PointPage struct {
	Balance int64
	Entries []domain.PointEntry
	// Next is the cursor of the following (older) page; "" on the last.
	Next string
}

// List returns the balance and a page of at most limit of the member's
// entries, newest first, starting after cursor ("" = the newest); the
// cursor is the public id of the previous page's last entry, as in
// Notifications.List. The balance is read after the entries, so it may
// count a post newer than the page. Errors: ENOTFOUND for an unknown or
// deleted member, EINVALID (field "cursor") for a cursor that is not one
// of the member's entries, EINVALID (field "limit") below 1.
func (Points) List(ctx context.Context, idb bun.IDB, memberID, cursor string, limit int) (PointPage, error) {
	if err := db.CheckLimit(limit); err != nil {
		return PointPage{}, err
	}
	key, err := db.MemberKey(ctx, idb, memberID)
	if err != nil {
		return PointPage{}, err
	}
	var before int64
	if cursor != "" {
		err := idb.NewSelect().Model((*pointEntryRow)(nil)).Column("pe.id").
			Where("pe.public_id = ?", cursor).Where("pe.member_id = ?", key).
			Scan(ctx, &before)
		if domain.ErrorCode(db.Translate(err)) == domain.ENOTFOUND {
			return PointPage{}, domain.FieldErrorf(domain.EINVALID, "cursor", "Invalid cursor.")
		}
		if err != nil {
			return PointPage{}, fmt.Errorf("list points: %w", db.Translate(err))
		}
	}
	var rows []pointEntryRow
	q := selectPointEntries(idb, &rows).
		Where("pe.member_id = ?", key).
		OrderExpr("pe.id DESC").
		Limit(int64(limit) + 1) // one more tells whether there is a next page
	if before > 0 {
		q = q.Where("pe.id < ?", before)
	}
	if err := q.Scan(ctx); err != nil {
		return PointPage{}, fmt.Errorf("list points: %w", db.Translate(err))
	}
	var page PointPage
	if len(rows) > limit {
		rows = rows[:limit]
		page.Next = rows[len(rows)-1].PublicID
	}
	page.Entries = make([]domain.PointEntry, 0, len(rows))
	for i := range rows {
		page.Entries = append(page.Entries, rows[i].toDomain())
	}
	if page.Balance, err = (Points{}).Balance(ctx, idb, key); err != nil {
		return PointPage{}, err
	}
	return page, nil
}

// FindByKey returns the entry posted with idempotency key key. Errors:
// ENOTFOUND.
func (Points) FindByKey(ctx context.Context, idb bun.IDB, key string) (*domain.PointEntry, error) {
	var rows []pointEntryRow
	if err := selectPointEntries(idb, &rows).Where("pe.idempotency_key = ?", key).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find point entry: %w", db.Translate(err))
	}
	if len(rows) == 0 {
		return nil, &domain.Error{Code: domain.ENOTFOUND, Message: "Point entry not found."}
	}
	e := rows[0].toDomain()
	return &e, nil
}

// PointResult is what PostFor did.
type PointResult struct {
	// Posted is false when the key had been posted before and nothing
	// changed.
	Posted bool
	// Entry is the entry written; zero when Posted is false. The earlier
	// entry is better read with FindByKey after the transaction: on MySQL
	// a transaction's snapshot may predate the concurrent post that won.
	Entry domain.PointEntry
	// Balance is the member's balance afterwards.
	Balance int64
}

// PostFor is Post for the live member with public id memberID (p.MemberKey
// is ignored), answering the entry written and the new balance. Errors:
// ENOTFOUND (field "member_id") for an unknown or deleted member,
// EINSUFFICIENTPOINTS (roll back), and Post's.
func (Points) PostFor(ctx context.Context, idb bun.IDB, memberID string, p PointPost) (PointResult, error) {
	key, err := db.MemberKey(ctx, idb, memberID)
	if err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return PointResult{}, domain.FieldErrorf(domain.ENOTFOUND, "member_id", "Member not found.")
		}
		return PointResult{}, err
	}
	p.MemberKey = key
	var res PointResult
	if res.Posted, err = (Points{}).Post(ctx, idb, p); err != nil {
		return PointResult{}, err
	}
	if res.Posted {
		e, err := (Points{}).FindByKey(ctx, idb, p.Key)
		if err != nil {
			return PointResult{}, err
		}
		res.Entry = *e
	}
	if res.Balance, err = (Points{}).Balance(ctx, idb, key); err != nil {
		return PointResult{}, err
	}
	return res, nil
}

// PointMismatch is a member whose balance is not the sum of their entries.
type PointMismatch struct {
	MemberID string // public id
	// Balance is the stored balance; HasBalance is false when the member
	// has entries but no balance row (Balance is then 0).
	Balance    int64
	HasBalance bool
	// Sum is the sum of the member's entries.
	Sum int64
}

// PointCheck is the result of Check.
type PointCheck struct {
	// Members counts the members with a balance row or an entry.
	Members int
	// Mismatches lists those whose balance row is missing, negative or
	// not the sum of their entries, by member row id.
	Mismatches []PointMismatch
}

// Check compares every balance with the sum of its member's entries (what
// Post keeps equal), in one pass over the wallet tables.
func (Points) Check(ctx context.Context, idb bun.IDB) (PointCheck, error) {
	var rows []struct {
		MemberID   string `bun:"member_id"`
		HasBalance int64  `bun:"has_balance"`
		Balance    int64  `bun:"balance"`
		Sum        int64  `bun:"total"`
	}
	// Every balance and entry references a member, so members drive the
	// join (MySQL has no FULL JOIN). SUM of bigint is numeric on
	// PostgreSQL and DECIMAL on MySQL; both scan into int64.
	err := idb.NewSelect().
		TableExpr("members AS m").
		ColumnExpr("m.public_id AS member_id").
		ColumnExpr("CASE WHEN b.member_id IS NULL THEN 0 ELSE 1 END AS has_balance").
		ColumnExpr("COALESCE(b.balance, 0) AS balance").
		ColumnExpr("COALESCE(e.total, 0) AS total").
		Join("LEFT JOIN point_balances AS b ON b.member_id = m.id").
		Join("LEFT JOIN (SELECT member_id, SUM(amount) AS total FROM point_entries GROUP BY member_id) AS e ON e.member_id = m.id").
		Where("b.member_id IS NOT NULL OR e.member_id IS NOT NULL").
		OrderExpr("m.id").
		Scan(ctx, &rows)
	if err != nil {
		return PointCheck{}, fmt.Errorf("check points: %w", db.Translate(err))
	}
	out := PointCheck{Members: len(rows)}
	for _, r := range rows {
		if r.HasBalance == 0 || r.Balance != r.Sum || r.Balance < 0 {
			out.Mismatches = append(out.Mismatches, PointMismatch{MemberID: r.MemberID, Balance: r.Balance, HasBalance: r.HasBalance == 1, Sum: r.Sum})
		}
	}
	return out, nil
}
