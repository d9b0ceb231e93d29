package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of member_identities; see the foundation migration for
// why MySQL has its own.
//
// A member's account at a social-login provider: (provider, subject) is
// unique, so one provider account belongs to one member, and (member_id,
// provider) is unique, so a member links one account per provider (and the
// key serves a member's list). A member made by social login has no
// password: members.password_hash is NOT NULL DEFAULT '' on every dialect,
// and '' verifies no password.

type memberIdentities20261207 struct {
	bun.BaseModel `bun:"table:member_identities"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MemberID  int64     `bun:"member_id,notnull,unique:member_identities_member_id_provider_key"`
	Provider  string    `bun:"provider,type:varchar(32),notnull,unique:member_identities_member_id_provider_key,unique:member_identities_provider_subject_key"`
	Subject   string    `bun:"subject,type:varchar(255),notnull,unique:member_identities_provider_subject_key"`
	Email     string    `bun:"email,type:varchar(254),nullzero"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// MySQL's key on (provider, subject) is 287 characters of utf8mb4, well
// under InnoDB's 3072-byte limit.
type memberIdentities20261207MySQL struct {
	bun.BaseModel `bun:"table:member_identities"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MemberID  int64     `bun:"member_id,notnull,unique:member_identities_member_id_provider_key"`
	Provider  string    `bun:"provider,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:member_identities_member_id_provider_key,unique:member_identities_provider_subject_key"`
	Subject   string    `bun:"subject,type:varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:member_identities_provider_subject_key"`
	Email     string    `bun:"email,type:varchar(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero"`
	CreatedAt time.Time `bun:"created_at,type:datetime(6),notnull"`
}

// identitiesUp creates member_identities.
func identitiesUp(ctx context.Context, bdb *bun.DB) error {
	model := any((*memberIdentities20261207)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		model = (*memberIdentities20261207MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(model).
			ForeignKey("(member_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table member_identities: %w", err)
		}
		return nil
	})
}

// identitiesDown drops member_identities.
func identitiesDown(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDropTable().Table("member_identities").IfExists().Exec(ctx); err != nil {
			return fmt.Errorf("drop table member_identities: %w", err)
		}
		return nil
	})
}
