package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of one-time account codes; see the foundation
// migration for why MySQL has its own.
//
// account_codes: one row per code or reset token sent (domain.AccountCode).
// purpose is domain.CodePurpose. code_hash is a keyed hash of the code,
// never the code. member_id is the member's public id, or '' for a reset
// asked for an unknown address (nothing is sent for it). The
// (member_id, purpose, created_at) index finds a member's latest code and
// counts their sends in a window; (target, purpose, created_at) counts the
// sends to one address or number, so the limits are SQL counts and
// survive the loss of Redis; (expires_at) serves the cleanup.
//
// members.email_verified_at and members.phone_verified_at: when the
// member proved the address or number; NULL until then. Existing members
// start unverified: no code ever reached them, and SMS now goes only to
// verified numbers.

type accountCodes20261207 struct {
	bun.BaseModel `bun:"table:account_codes"`

	ID        string    `bun:"id,pk,type:varchar(32)"`
	MemberID  string    `bun:"member_id,type:varchar(32),notnull"`
	Purpose   int16     `bun:"purpose,type:smallint,notnull"`
	Target    string    `bun:"target,type:varchar(254),notnull"`
	CodeHash  string    `bun:"code_hash,type:varchar(64),notnull"`
	Attempts  int       `bun:"attempts,notnull,default:0"`
	ExpiresAt time.Time `bun:"expires_at,notnull"`
	SentAt    time.Time `bun:"sent_at,nullzero"`
	UsedAt    time.Time `bun:"used_at,nullzero"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

type accountCodes20261207MySQL struct {
	bun.BaseModel `bun:"table:account_codes"`

	ID        string    `bun:"id,pk,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"`
	MemberID  string    `bun:"member_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	Purpose   int16     `bun:"purpose,type:smallint,notnull"`
	Target    string    `bun:"target,type:varchar(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	CodeHash  string    `bun:"code_hash,type:varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	Attempts  int       `bun:"attempts,notnull,default:0"`
	ExpiresAt time.Time `bun:"expires_at,type:datetime(6),notnull"`
	SentAt    time.Time `bun:"sent_at,type:datetime(6),nullzero"`
	UsedAt    time.Time `bun:"used_at,type:datetime(6),nullzero"`
	CreatedAt time.Time `bun:"created_at,type:datetime(6),notnull"`
}

// verifiedColumns20261207 are the members columns the migration adds.
var verifiedColumns20261207 = []string{"email_verified_at", "phone_verified_at"}

// accountCodesUp creates account_codes and adds the verified columns.
func accountCodesUp(ctx context.Context, bdb *bun.DB) error {
	model := any((*accountCodes20261207)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		model = (*accountCodes20261207MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(model).Exec(ctx); err != nil {
			return fmt.Errorf("create table account_codes: %w", err)
		}
		for _, ix := range []struct {
			name string
			cols []string
		}{
			{"account_codes_member_idx", []string{"member_id", "purpose", "created_at"}},
			{"account_codes_target_idx", []string{"target", "purpose", "created_at"}},
			{"account_codes_expires_at_idx", []string{"expires_at"}},
		} {
			if _, err := tx.NewCreateIndex().Model(model).Index(ix.name).Column(ix.cols...).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", ix.name, err)
			}
		}
		for _, c := range verifiedColumns20261207 {
			if _, err := tx.NewAddColumn().Table("members").ColumnExpr(c + " " + timeColumn(bdb) + " NULL").Exec(ctx); err != nil {
				return fmt.Errorf("add members.%s: %w", c, err)
			}
		}
		return nil
	})
}

// accountCodesDown undoes accountCodesUp.
func accountCodesDown(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i := len(verifiedColumns20261207) - 1; i >= 0; i-- {
			c := verifiedColumns20261207[i]
			if _, err := tx.NewDropColumn().Table("members").Column(c).Exec(ctx); err != nil {
				return fmt.Errorf("drop members.%s: %w", c, err)
			}
		}
		if _, err := tx.NewDropTable().Table("account_codes").IfExists().Exec(ctx); err != nil {
			return fmt.Errorf("drop table account_codes: %w", err)
		}
		return nil
	})
}
