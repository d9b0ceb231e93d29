package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of room comments. parent_id is NULL for a comment on
// the room and names a top-level comment of the same room for a reply (the
// store keeps replies one level deep). A deleted comment keeps its row, with
// the body emptied, so its replies still have a parent.

type comments20261126 struct {
	bun.BaseModel `bun:"table:comments"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32),notnull,unique:comments_public_id_key"`
	RoomID    int64     `bun:"room_id,notnull"`
	AuthorID  int64     `bun:"author_id,notnull"`
	ParentID  int64     `bun:"parent_id,type:bigint,nullzero"`
	Body      string    `bun:"body,type:text,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
	DeletedAt time.Time `bun:"deleted_at,nullzero"`
}

type comments20261126MySQL struct {
	bun.BaseModel `bun:"table:comments"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:comments_public_id_key"`
	RoomID    int64     `bun:"room_id,notnull"`
	AuthorID  int64     `bun:"author_id,notnull"`
	ParentID  int64     `bun:"parent_id,type:bigint,nullzero"`
	Body      string    `bun:"body,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	CreatedAt time.Time `bun:"created_at,type:datetime(6),notnull"`
	UpdatedAt time.Time `bun:"updated_at,type:datetime(6),notnull"`
	DeletedAt time.Time `bun:"deleted_at,type:datetime(6),nullzero"`
}

// commentsUp creates comments.
func commentsUp(ctx context.Context, bdb *bun.DB) error {
	model := any((*comments20261126)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		model = (*comments20261126MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(model).
			ForeignKey("(room_id) REFERENCES rooms (id)").
			ForeignKey("(author_id) REFERENCES members (id)").
			ForeignKey("(parent_id) REFERENCES comments (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table comments: %w", err)
		}
		// A room's comments in order, and a comment's replies.
		for idx, cols := range map[string][]string{
			"comments_room_id_id_idx":   {"room_id", "id"},
			"comments_parent_id_id_idx": {"parent_id", "id"},
		} {
			if _, err := tx.NewCreateIndex().Model(model).Index(idx).Column(cols...).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", idx, err)
			}
		}
		return nil
	})
}

// commentsDown drops comments.
func commentsDown(ctx context.Context, bdb *bun.DB) error {
	if _, err := bdb.NewDropTable().Table("comments").IfExists().Exec(ctx); err != nil {
		return fmt.Errorf("drop table comments: %w", err)
	}
	return nil
}
