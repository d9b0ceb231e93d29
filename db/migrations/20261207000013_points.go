package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of the point wallet; see the foundation migration for
// why MySQL has its own.
//
// point_entries is the ledger: every change of a member's points is one
// row, amount signed, kind a small number (domain.PointKind), mission_id
// set for stakes, refunds and bonuses. idempotency_key is unique, so the
// same charge, stake or payout posted twice (a retried task, a replayed
// webhook, two workers) is one row. point_balances holds each member's
// balance, changed in the entry's transaction by a conditional update that
// never takes it below zero; balance = sum(amount) of the member's entries
// always, which `moim points check` verifies.

type pointEntries20261207 struct {
	bun.BaseModel `bun:"table:point_entries"`

	ID             int64     `bun:"id,pk,autoincrement"`
	PublicID       string    `bun:"public_id,type:varchar(32),notnull,unique:point_entries_public_id_key"`
	MemberID       int64     `bun:"member_id,notnull"`
	Amount         int64     `bun:"amount,type:bigint,notnull"`
	Kind           int16     `bun:"kind,type:smallint,notnull"`
	MissionID      int64     `bun:"mission_id,type:bigint,nullzero"`
	IdempotencyKey string    `bun:"idempotency_key,type:varchar(128),notnull,unique:point_entries_idempotency_key_key"`
	Reason         string    `bun:"reason,type:varchar(1024),notnull,default:''"`
	CreatedAt      time.Time `bun:"created_at,notnull"`
}

type pointEntries20261207MySQL struct {
	bun.BaseModel `bun:"table:point_entries"`

	ID             int64     `bun:"id,pk,autoincrement"`
	PublicID       string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:point_entries_public_id_key"`
	MemberID       int64     `bun:"member_id,notnull"`
	Amount         int64     `bun:"amount,type:bigint,notnull"`
	Kind           int16     `bun:"kind,type:smallint,notnull"`
	MissionID      int64     `bun:"mission_id,type:bigint,nullzero"`
	IdempotencyKey string    `bun:"idempotency_key,type:varchar(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:point_entries_idempotency_key_key"`
	Reason         string    `bun:"reason,type:varchar(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,default:''"`
	CreatedAt      time.Time `bun:"created_at,type:datetime(6),notnull"`
}

type pointBalances20261207 struct {
	bun.BaseModel `bun:"table:point_balances"`

	MemberID  int64     `bun:"member_id,pk"`
	Balance   int64     `bun:"balance,type:bigint,notnull,default:0"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}

type pointBalances20261207MySQL struct {
	bun.BaseModel `bun:"table:point_balances"`

	MemberID  int64     `bun:"member_id,pk"`
	Balance   int64     `bun:"balance,type:bigint,notnull,default:0"`
	UpdatedAt time.Time `bun:"updated_at,type:datetime(6),notnull"`
}

// pointsUp creates point_entries and point_balances.
func pointsUp(ctx context.Context, bdb *bun.DB) error {
	entries, balances := any((*pointEntries20261207)(nil)), any((*pointBalances20261207)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		entries, balances = (*pointEntries20261207MySQL)(nil), (*pointBalances20261207MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(entries).
			ForeignKey("(member_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table point_entries: %w", err)
		}
		// A member's entries, newest first (GET /v1/me/points pages by id).
		if _, err := tx.NewCreateIndex().Model(entries).Index("point_entries_member_id_id_idx").
			Column("member_id", "id").Exec(ctx); err != nil {
			return fmt.Errorf("create index point_entries_member_id_id_idx: %w", err)
		}
		// A mission's entries (its stakes, refunds and payouts).
		if _, err := tx.NewCreateIndex().Model(entries).Index("point_entries_mission_id_idx").
			Column("mission_id").Exec(ctx); err != nil {
			return fmt.Errorf("create index point_entries_mission_id_idx: %w", err)
		}
		if _, err := tx.NewCreateTable().Model(balances).
			ForeignKey("(member_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table point_balances: %w", err)
		}
		return nil
	})
}

// pointsDown drops the wallet tables.
func pointsDown(ctx context.Context, bdb *bun.DB) error {
	for _, t := range []string{"point_balances", "point_entries"} {
		if _, err := bdb.NewDropTable().Table(t).IfExists().Exec(ctx); err != nil {
			return fmt.Errorf("drop table %s: %w", t, err)
		}
	}
	return nil
}
