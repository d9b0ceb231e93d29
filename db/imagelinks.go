package db

import (
	"context"
	"fmt"
	"slices"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// roomImageRow links an image to a room at a position (0 first).
type roomImageRow struct {
	bun.BaseModel `bun:"table:room_images,alias:ri"`

	ID       int64 `bun:"id,pk,autoincrement"`
	RoomID   int64 `bun:"room_id,notnull"`
	Position int16 `bun:"position,notnull"`
	ImageID  int64 `bun:"image_id,notnull"`
}

// memberAvatarRow links a member to their avatar.
type memberAvatarRow struct {
	bun.BaseModel `bun:"table:member_avatars,alias:ma"`

	ID       int64 `bun:"id,pk,autoincrement"`
	MemberID int64 `bun:"member_id,notnull"`
	ImageID  int64 `bun:"image_id,notnull"`
}

// linkedImageRow is an image with the key of what it is linked to.
type linkedImageRow struct {
	imageRow `bun:",extend"`

	LinkKey int64 `bun:"link_key,scanonly"`
}

// selectImages starts a query over images with the owner's public id
// joined in.
func selectImages(idb bun.IDB, dest any) *bun.SelectQuery {
	return idb.NewSelect().Model(dest).
		ColumnExpr("i.*").
		ColumnExpr("m.public_id AS owner_public_id").
		Join("JOIN members AS m ON m.id = i.owner_id")
}

// RoomImages returns the photos of the rooms with row ids keys, in
// position order, by room key: one query for any number of rooms.
func (Images) RoomImages(ctx context.Context, idb bun.IDB, keys []int64) (map[int64][]domain.Image, error) {
	out := make(map[int64][]domain.Image, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var rows []linkedImageRow
	err := selectImages(idb, &rows).
		ColumnExpr("ri.room_id AS link_key").
		Join("JOIN room_images AS ri ON ri.image_id = i.id").
		Where("ri.room_id IN (?)", bun.In(keys)).
		OrderExpr("ri.room_id, ri.position").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("room images: %w", translate(err))
	}
	for i := range rows {
		img, err := rows[i].toDomain()
		if err != nil {
			return nil, err
		}
		out[rows[i].LinkKey] = append(out[rows[i].LinkKey], *img)
	}
	return out, nil
}

// imageKeys maps the public ids of imgs to row ids.
func imageKeys(ctx context.Context, idb bun.IDB, ids []string) (map[string]int64, error) {
	keys := make(map[string]int64, len(ids))
	if len(ids) == 0 {
		return keys, nil
	}
	var rows []imageRow
	if err := idb.NewSelect().Model(&rows).Column("i.id", "i.public_id").
		Where("i.public_id IN (?)", bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("image keys: %w", translate(err))
	}
	for _, r := range rows {
		keys[r.PublicID] = r.ID
	}
	for _, id := range ids {
		if _, ok := keys[id]; !ok {
			return nil, &domain.Error{Code: domain.ENOTFOUND, Message: fmt.Sprintf("Image %s not found.", id)}
		}
	}
	return keys, nil
}

// SetRoomImages makes imgs (public ids, in order) the photos of the room
// with row id room, replacing its list, and returns the ids it held that
// are no longer in it, for the caller to delete. Run it in a transaction
// after checking each image (domain.Image.CheckAttach). Errors: ECONFLICT
// (field "image_ids") when an image belongs to another room or is an
// avatar.
func (Images) SetRoomImages(ctx context.Context, idb bun.IDB, room int64, imgs []string) ([]string, error) {
	if len(imgs) > domain.RoomImagesMax {
		return nil, fmt.Errorf("set room images: %d images, at most %d", len(imgs), domain.RoomImagesMax)
	}
	var held []string
	if err := idb.NewSelect().Model((*roomImageRow)(nil)).
		ColumnExpr("i.public_id").
		Join("JOIN images AS i ON i.id = ri.image_id").
		Where("ri.room_id = ?", room).
		OrderExpr("ri.position").
		Scan(ctx, &held); err != nil {
		return nil, fmt.Errorf("set room images: %w", translate(err))
	}
	if slices.Equal(held, imgs) {
		return nil, nil
	}
	keys, err := imageKeys(ctx, idb, imgs)
	if err != nil {
		return nil, err
	}
	if err := checkUnlinked(ctx, idb, keys, room, "image_ids"); err != nil {
		return nil, err
	}
	if _, err := idb.NewDelete().Model((*roomImageRow)(nil)).Where("room_id = ?", room).Exec(ctx); err != nil {
		return nil, fmt.Errorf("set room images: %w", translate(err))
	}
	if len(imgs) > 0 {
		rows := make([]roomImageRow, len(imgs))
		for i, id := range imgs {
			rows[i] = roomImageRow{RoomID: room, Position: int16(i), ImageID: keys[id]}
		}
		if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
			return nil, fmt.Errorf("set room images: %w", linkConflict("image_ids", translate(err)))
		}
	}
	var dropped []string
	for _, id := range held {
		if !slices.Contains(imgs, id) {
			dropped = append(dropped, id)
		}
	}
	return dropped, nil
}

// checkUnlinked refuses images linked to anything but the room with row id
// room (0: to anything at all); the error names field.
func checkUnlinked(ctx context.Context, idb bun.IDB, keys map[string]int64, room int64, field string) error {
	if len(keys) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k)
	}
	n, err := idb.NewSelect().Model((*roomImageRow)(nil)).
		Where("ri.image_id IN (?)", bun.In(ids)).Where("ri.room_id <> ?", room).Count(ctx)
	if err != nil {
		return fmt.Errorf("check image links: %w", translate(err))
	}
	m, err := idb.NewSelect().Model((*memberAvatarRow)(nil)).Where("ma.image_id IN (?)", bun.In(ids)).Count(ctx)
	if err != nil {
		return fmt.Errorf("check image links: %w", translate(err))
	}
	if n+m > 0 {
		return linkConflict(field, nil)
	}
	return nil
}

// linkConflict is the answer for an image attached elsewhere, also when a
// concurrent attach won the unique index.
func linkConflict(field string, err error) error {
	if err != nil && domain.ErrorCode(err) != domain.ECONFLICT {
		return err
	}
	return &domain.Error{Code: domain.ECONFLICT, Field: field,
		Message: "An image is attached elsewhere already; upload it again to use it here.", Err: err}
}

// DeleteUnlinked deletes the image with public id id unless a room or a
// member links to it (attached again since it was dropped). It reports
// whether the image is gone: deleted now or before.
func (Images) DeleteUnlinked(ctx context.Context, idb bun.IDB, id string) (bool, error) {
	_, err := idb.NewDelete().TableExpr("images").
		Where("public_id = ?", id).
		Where("NOT EXISTS (SELECT 1 FROM room_images AS ri WHERE ri.image_id = images.id)").
		Where("NOT EXISTS (SELECT 1 FROM member_avatars AS ma WHERE ma.image_id = images.id)").
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("delete image %s: %w", id, translate(err))
	}
	n, err := idb.NewSelect().TableExpr("images").Where("public_id = ?", id).Count(ctx)
	if err != nil {
		return false, fmt.Errorf("delete image %s: %w", id, translate(err))
	}
	return n == 0, nil
}

// Avatar returns the avatar of the member with public id member, or nil
// when they have none.
func (Images) Avatar(ctx context.Context, idb bun.IDB, member string) (*domain.Image, error) {
	var rows []imageRow
	err := selectImages(idb, &rows).
		Join("JOIN member_avatars AS ma ON ma.image_id = i.id").
		Where("ma.member_id = m.id").
		Where("m.public_id = ?", member).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("avatar of %s: %w", member, translate(err))
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return rows[0].toDomain()
}

// SetAvatar makes image (a public id; "" for none) the avatar of the member
// with public id member and returns the id of the avatar it replaced, if
// any, for the caller to delete. Run it in a transaction after checking
// the image (domain.Image.CheckAttach). Errors: ECONFLICT when the image
// is linked elsewhere.
func (Images) SetAvatar(ctx context.Context, idb bun.IDB, member, image string) (string, error) {
	key, err := memberKey(ctx, idb, member)
	if err != nil {
		return "", fmt.Errorf("set avatar of %s: %w", member, err)
	}
	var held []string
	if err := idb.NewSelect().Model((*memberAvatarRow)(nil)).
		ColumnExpr("i.public_id").
		Join("JOIN images AS i ON i.id = ma.image_id").
		Where("ma.member_id = ?", key).
		Scan(ctx, &held); err != nil {
		return "", fmt.Errorf("set avatar of %s: %w", member, translate(err))
	}
	var prev string
	if len(held) > 0 {
		prev = held[0]
	}
	if prev == image {
		return "", nil
	}
	if _, err := idb.NewDelete().Model((*memberAvatarRow)(nil)).Where("member_id = ?", key).Exec(ctx); err != nil {
		return "", fmt.Errorf("set avatar of %s: %w", member, translate(err))
	}
	if image != "" {
		keys, err := imageKeys(ctx, idb, []string{image})
		if err != nil {
			return "", err
		}
		if err := checkUnlinked(ctx, idb, keys, 0, "avatar_image_id"); err != nil {
			return "", err
		}
		row := memberAvatarRow{MemberID: key, ImageID: keys[image]}
		if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
			return "", fmt.Errorf("set avatar of %s: %w", member, linkConflict("avatar_image_id", translate(err)))
		}
	}
	return prev, nil
}
