package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

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
	now := dbTime(p.Now)
	entry := pointEntryRow{
		PublicID: NewPublicID(), MemberID: p.MemberKey, Amount: p.Amount, Kind: int16(p.Kind),
		MissionID: p.MissionKey, IdempotencyKey: p.Key, Reason: p.Reason, CreatedAt: now,
	}
	q := idb.NewInsert().Model(&entry)
	if idb.Dialect().Name() == dialect.MySQL {
		q = q.Ignore()
	} else {
		q = q.On("CONFLICT (idempotency_key) DO NOTHING")
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("post points: insert entry: %w", translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("post points: %w", err)
	} else if n == 0 {
		return false, nil
	}
	if err := ensureBalance(ctx, idb, p.MemberKey, now); err != nil {
		return false, err
	}
	res, err = idb.NewUpdate().Model((*pointBalanceRow)(nil)).
		Set("balance = balance + ?", p.Amount).
		Set("updated_at = ?", now).
		Where("member_id = ?", p.MemberKey).
		Where("balance + ? >= 0", p.Amount).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("post points: update balance: %w", translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("post points: %w", err)
	} else if n == 0 {
		return false, domain.ErrInsufficientPoints()
	}
	return true, nil
}

// ensureBalance creates the member's balance row at 0 unless it exists.
func ensureBalance(ctx context.Context, idb bun.IDB, memberKey int64, now time.Time) error {
	q := idb.NewInsert().Model(&pointBalanceRow{MemberID: memberKey, UpdatedAt: now})
	if idb.Dialect().Name() == dialect.MySQL {
		q = q.Ignore()
	} else {
		q = q.On("CONFLICT (member_id) DO NOTHING")
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("post points: create balance: %w", translate(err))
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
		return 0, fmt.Errorf("point balance: %w", translate(err))
	}
	return row.Balance, nil
}
