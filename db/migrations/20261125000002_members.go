package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of the members table; see the foundation migration for
// why MySQL has its own.
//
// email and nickname_key are NULL once a member is deleted, so the address
// and the nickname can be taken again: a unique index admits any number of
// NULLs on all three dialects. nickname_key holds the case-folded nickname
// (the store computes it), because no collation folds case alike everywhere;
// for the same reason MySQL's string columns use the binary collation, so
// that uniqueness means byte equality there as it does in PostgreSQL and
// SQLite.

type members20261125 struct {
	bun.BaseModel `bun:"table:members"`

	ID           int64     `bun:"id,pk,autoincrement"`
	PublicID     string    `bun:"public_id,type:varchar(32),notnull,unique:members_public_id_key"`
	Email        string    `bun:"email,type:varchar(254),nullzero,unique:members_email_key"`
	PasswordHash string    `bun:"password_hash,type:varchar(255),notnull,default:''"`
	Nickname     string    `bun:"nickname,type:varchar(64),notnull"`
	NicknameKey  string    `bun:"nickname_key,type:varchar(128),nullzero,unique:members_nickname_key"`
	Phone        string    `bun:"phone,type:varchar(20),nullzero"`
	SMSConsent   bool      `bun:"sms_consent,notnull,default:false"`
	SlackEmail   string    `bun:"slack_email,type:varchar(254),nullzero"`
	NotifyMail   bool      `bun:"notify_mail,notnull,default:true"`
	NotifySMS    bool      `bun:"notify_sms,notnull,default:true"`
	NotifySlack  bool      `bun:"notify_slack,notnull,default:true"`
	Role         int16     `bun:"role,type:smallint,notnull,default:1"`
	CreatedAt    time.Time `bun:"created_at,notnull"`
	UpdatedAt    time.Time `bun:"updated_at,notnull"`
	DeletedAt    time.Time `bun:"deleted_at,nullzero"`
}

type members20261125MySQL struct {
	bun.BaseModel `bun:"table:members"`

	ID           int64     `bun:"id,pk,autoincrement"`
	PublicID     string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:members_public_id_key"`
	Email        string    `bun:"email,type:varchar(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero,unique:members_email_key"`
	PasswordHash string    `bun:"password_hash,type:varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,default:''"`
	Nickname     string    `bun:"nickname,type:varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	NicknameKey  string    `bun:"nickname_key,type:varchar(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero,unique:members_nickname_key"`
	Phone        string    `bun:"phone,type:varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero"`
	SMSConsent   bool      `bun:"sms_consent,notnull,default:false"`
	SlackEmail   string    `bun:"slack_email,type:varchar(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero"`
	NotifyMail   bool      `bun:"notify_mail,notnull,default:true"`
	NotifySMS    bool      `bun:"notify_sms,notnull,default:true"`
	NotifySlack  bool      `bun:"notify_slack,notnull,default:true"`
	Role         int16     `bun:"role,type:smallint,notnull,default:1"`
	CreatedAt    time.Time `bun:"created_at,type:datetime(6),notnull"`
	UpdatedAt    time.Time `bun:"updated_at,type:datetime(6),notnull"`
	DeletedAt    time.Time `bun:"deleted_at,type:datetime(6),nullzero"`
}

// membersUp creates the members table.
func membersUp(ctx context.Context, bdb *bun.DB) error {
	model := any((*members20261125)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		model = (*members20261125MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(model).Exec(ctx); err != nil {
			return fmt.Errorf("create table members: %w", err)
		}
		return nil
	})
}

// membersDown drops the members table.
func membersDown(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDropTable().Table("members").IfExists().Exec(ctx); err != nil {
			return fmt.Errorf("drop table members: %w", err)
		}
		return nil
	})
}
