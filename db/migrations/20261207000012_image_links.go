package migrations

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Frozen row structs of the links from rooms and members to images. Each
// image belongs to at most one room or one member (unique image_id), a room
// holds each position once and a member one avatar; the store keeps
// positions 0–2. Links are tables of their own rather than columns so that
// rolling back drops them whole on every dialect (SQLite cannot drop a
// column that a foreign key names).

type roomImages20261207 struct {
	bun.BaseModel `bun:"table:room_images"`

	ID       int64 `bun:"id,pk,autoincrement"`
	RoomID   int64 `bun:"room_id,notnull,unique:room_images_room_id_position_key"`
	Position int16 `bun:"position,type:smallint,notnull,unique:room_images_room_id_position_key"`
	ImageID  int64 `bun:"image_id,notnull,unique:room_images_image_id_key"`
}

type memberAvatars20261207 struct {
	bun.BaseModel `bun:"table:member_avatars"`

	ID       int64 `bun:"id,pk,autoincrement"`
	MemberID int64 `bun:"member_id,notnull,unique:member_avatars_member_id_key"`
	ImageID  int64 `bun:"image_id,notnull,unique:member_avatars_image_id_key"`
}

// imageLinksUp creates room_images and member_avatars.
func imageLinksUp(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model((*roomImages20261207)(nil)).
			ForeignKey("(room_id) REFERENCES rooms (id)").
			ForeignKey("(image_id) REFERENCES images (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table room_images: %w", err)
		}
		if _, err := tx.NewCreateTable().Model((*memberAvatars20261207)(nil)).
			ForeignKey("(member_id) REFERENCES members (id)").
			ForeignKey("(image_id) REFERENCES images (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table member_avatars: %w", err)
		}
		return nil
	})
}

// imageLinksDown drops the link tables.
func imageLinksDown(ctx context.Context, bdb *bun.DB) error {
	for _, t := range []string{"member_avatars", "room_images"} {
		if _, err := bdb.NewDropTable().Table(t).IfExists().Exec(ctx); err != nil {
			return fmt.Errorf("drop table %s: %w", t, err)
		}
	}
	return nil
}
