package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of the notifications and deliveries tables; see the
// foundation migration for why MySQL has its own.
//
// A delivery is unique per notification and channel: that row is what makes
// a send happen at most once. recipients holds the member ids of a group
// message (one Slack DM per match) as JSON.

type notifications20261125 struct {
	bun.BaseModel `bun:"table:notifications"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32),notnull,unique:notifications_public_id_key"`
	MemberID  int64     `bun:"member_id,notnull"`
	Type      int16     `bun:"type,type:smallint,notnull"`
	Args      string    `bun:"args,type:text,notnull"`
	ReadAt    time.Time `bun:"read_at,nullzero"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

type notifications20261125MySQL struct {
	bun.BaseModel `bun:"table:notifications"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:notifications_public_id_key"`
	MemberID  int64     `bun:"member_id,notnull"`
	Type      int16     `bun:"type,type:smallint,notnull"`
	Args      string    `bun:"args,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	ReadAt    time.Time `bun:"read_at,type:datetime(6),nullzero"`
	CreatedAt time.Time `bun:"created_at,type:datetime(6),notnull"`
}

type deliveries20261125 struct {
	bun.BaseModel `bun:"table:deliveries"`

	ID             int64     `bun:"id,pk,autoincrement"`
	NotificationID int64     `bun:"notification_id,notnull,unique:deliveries_notification_channel_key"`
	Channel        int16     `bun:"channel,type:smallint,notnull,unique:deliveries_notification_channel_key"`
	Status         int16     `bun:"status,type:smallint,notnull"`
	Attempts       int32     `bun:"attempts,type:integer,notnull,default:0"`
	LastError      string    `bun:"last_error,type:text,nullzero"`
	ProviderID     string    `bun:"provider_id,type:varchar(255),nullzero"`
	SMSType        int16     `bun:"sms_type,type:smallint,notnull,default:0"`
	Recipients     string    `bun:"recipients,type:text,nullzero"`
	ClaimedAt      time.Time `bun:"claimed_at,nullzero"`
	SentAt         time.Time `bun:"sent_at,nullzero"`
	CreatedAt      time.Time `bun:"created_at,notnull"`
	UpdatedAt      time.Time `bun:"updated_at,notnull"`
}

type deliveries20261125MySQL struct {
	bun.BaseModel `bun:"table:deliveries"`

	ID             int64     `bun:"id,pk,autoincrement"`
	NotificationID int64     `bun:"notification_id,notnull,unique:deliveries_notification_channel_key"`
	Channel        int16     `bun:"channel,type:smallint,notnull,unique:deliveries_notification_channel_key"`
	Status         int16     `bun:"status,type:smallint,notnull"`
	Attempts       int32     `bun:"attempts,type:integer,notnull,default:0"`
	LastError      string    `bun:"last_error,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero"`
	ProviderID     string    `bun:"provider_id,type:varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero"`
	SMSType        int16     `bun:"sms_type,type:smallint,notnull,default:0"`
	Recipients     string    `bun:"recipients,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero"`
	ClaimedAt      time.Time `bun:"claimed_at,type:datetime(6),nullzero"`
	SentAt         time.Time `bun:"sent_at,type:datetime(6),nullzero"`
	CreatedAt      time.Time `bun:"created_at,type:datetime(6),notnull"`
	UpdatedAt      time.Time `bun:"updated_at,type:datetime(6),notnull"`
}

// notificationsUp creates the notifications and deliveries tables.
func notificationsUp(ctx context.Context, bdb *bun.DB) error {
	nModel, dModel := any((*notifications20261125)(nil)), any((*deliveries20261125)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		nModel, dModel = (*notifications20261125MySQL)(nil), (*deliveries20261125MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(nModel).
			ForeignKey("(member_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table notifications: %w", err)
		}
		// A member's list, newest first, and their unread count.
		for name, cols := range map[string][]string{
			"notifications_member_id_id_idx":      {"member_id", "id"},
			"notifications_member_id_read_at_idx": {"member_id", "read_at"},
		} {
			if _, err := tx.NewCreateIndex().Model(nModel).Index(name).Column(cols...).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", name, err)
			}
		}
		if _, err := tx.NewCreateTable().Model(dModel).
			ForeignKey("(notification_id) REFERENCES notifications (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table deliveries: %w", err)
		}
		// Operators look for stuck and unknown deliveries by status.
		if _, err := tx.NewCreateIndex().Model(dModel).Index("deliveries_status_idx").
			Column("status").Exec(ctx); err != nil {
			return fmt.Errorf("create index deliveries_status_idx: %w", err)
		}
		return nil
	})
}

// notificationsDown drops what notificationsUp created.
func notificationsDown(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, table := range []string{"deliveries", "notifications"} {
			if _, err := tx.NewDropTable().Table(table).IfExists().Exec(ctx); err != nil {
				return fmt.Errorf("drop table %s: %w", table, err)
			}
		}
		return nil
	})
}
