package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Group runs (ErunJrun): the sent markers of room reminders, attendance and
// evaluation on room_participants, and members' manner points.
//
// A room_reminders row says that a reminder of its kind went to that member
// for that room; it is written in the same transaction as the notification,
// and its unique key keeps two ticks from sending it twice.

type roomReminders20261126 struct {
	bun.BaseModel `bun:"table:room_reminders"`

	ID       int64     `bun:"id,pk,autoincrement"`
	RoomID   int64     `bun:"room_id,notnull,unique:room_reminders_room_id_member_id_kind_key"`
	MemberID int64     `bun:"member_id,notnull,unique:room_reminders_room_id_member_id_kind_key"`
	Kind     int16     `bun:"kind,type:smallint,notnull,unique:room_reminders_room_id_member_id_kind_key"`
	SentAt   time.Time `bun:"sent_at,notnull"`
}

type roomReminders20261126MySQL struct {
	bun.BaseModel `bun:"table:room_reminders"`

	ID       int64     `bun:"id,pk,autoincrement"`
	RoomID   int64     `bun:"room_id,notnull,unique:room_reminders_room_id_member_id_kind_key"`
	MemberID int64     `bun:"member_id,notnull,unique:room_reminders_room_id_member_id_kind_key"`
	Kind     int16     `bun:"kind,type:smallint,notnull,unique:room_reminders_room_id_member_id_kind_key"`
	SentAt   time.Time `bun:"sent_at,type:datetime(6),notnull"`
}

// groupRunsUp creates room_reminders and adds the attendance, evaluation
// and manner point columns.
func groupRunsUp(ctx context.Context, bdb *bun.DB) error {
	model := any((*roomReminders20261126)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		model = (*roomReminders20261126MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(model).
			ForeignKey("(room_id) REFERENCES rooms (id)").
			ForeignKey("(member_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table room_reminders: %w", err)
		}
		for _, c := range []struct{ table, column string }{
			{"room_participants", "attended BOOLEAN NOT NULL DEFAULT FALSE"},
			// The evaluation a guest gave the host: 0 until they gave one.
			{"room_participants", "evaluated SMALLINT NOT NULL DEFAULT 0"},
			{"members", "manner_points INTEGER NOT NULL DEFAULT 50"},
		} {
			if _, err := tx.NewAddColumn().Table(c.table).ColumnExpr(c.column).Exec(ctx); err != nil {
				return fmt.Errorf("add %s.%s: %w", c.table, c.column, err)
			}
		}
		return nil
	})
}

// groupRunsDown undoes groupRunsUp.
func groupRunsDown(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, c := range []struct{ table, column string }{
			{"members", "manner_points"},
			{"room_participants", "evaluated"},
			{"room_participants", "attended"},
		} {
			if _, err := tx.NewDropColumn().Table(c.table).Column(c.column).Exec(ctx); err != nil {
				return fmt.Errorf("drop %s.%s: %w", c.table, c.column, err)
			}
		}
		if _, err := tx.NewDropTable().Table("room_reminders").IfExists().Exec(ctx); err != nil {
			return fmt.Errorf("drop table room_reminders: %w", err)
		}
		return nil
	})
}
