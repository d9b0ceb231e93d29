package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// imageRow is a row of the images table with its owner's public id joined
// in.
type imageRow struct {
	bun.BaseModel `bun:"table:images,alias:i"`

	ID            int64     `bun:"id,pk,autoincrement"`
	PublicID      string    `bun:"public_id,notnull"`
	OwnerID       int64     `bun:"owner_id,notnull"`
	Purpose       int16     `bun:"purpose,notnull"`
	Status        int16     `bun:"status,notnull"`
	ContentType   string    `bun:"content_type,notnull"`
	Width         int32     `bun:"width,notnull"`
	Height        int32     `bun:"height,notnull"`
	Bytes         int64     `bun:"bytes,notnull"`
	Variants      string    `bun:"variants,notnull"`
	FailureReason string    `bun:"failure_reason,nullzero"`
	CreatedAt     time.Time `bun:"created_at,notnull"`
	UpdatedAt     time.Time `bun:"updated_at,notnull"`

	OwnerPublicID string `bun:"owner_public_id,scanonly"`
}

func (r *imageRow) toDomain() (*domain.Image, error) {
	img := &domain.Image{
		ID:            r.PublicID,
		OwnerID:       r.OwnerPublicID,
		Purpose:       domain.ImagePurpose(r.Purpose),
		Status:        domain.ImageStatus(r.Status),
		ContentType:   r.ContentType,
		Width:         int(r.Width),
		Height:        int(r.Height),
		Bytes:         r.Bytes,
		FailureReason: r.FailureReason,
		CreatedAt:     r.CreatedAt.UTC(),
		UpdatedAt:     r.UpdatedAt.UTC(),
	}
	if err := json.Unmarshal([]byte(r.Variants), &img.Variants); err != nil {
		return nil, fmt.Errorf("image %s: variants: %w", r.PublicID, err)
	}
	return img, nil
}

// Images is the store of images. The zero value is ready to use; every
// method takes the bun.IDB to run on, so it composes with the caller's
// transaction.
type Images struct{}

// Create inserts img for its owner and sets img.ID to a new public id when
// it is empty (the caller may pick it first: the object keys carry it).
// Times are stored in UTC to the microsecond and written back so; nil
// Variants are stored as an empty list. Errors: ENOTFOUND when the owner is
// unknown or deleted, ECONFLICT for an id that exists already.
func (Images) Create(ctx context.Context, idb bun.IDB, img *domain.Image) error {
	if !img.Purpose.Valid() {
		return fmt.Errorf("create image: invalid purpose %d", int(img.Purpose))
	}
	if !img.Status.Valid() {
		return fmt.Errorf("create image: invalid status %d", int(img.Status))
	}
	owner, err := memberKey(ctx, idb, img.OwnerID)
	if err != nil {
		return fmt.Errorf("create image for %s: %w", img.OwnerID, err)
	}
	if img.ID == "" {
		img.ID = NewPublicID()
	}
	if img.Variants == nil {
		img.Variants = []string{}
	}
	variants, err := json.Marshal(img.Variants)
	if err != nil {
		return fmt.Errorf("create image %s: %w", img.ID, err)
	}
	img.CreatedAt, img.UpdatedAt = dbTime(img.CreatedAt), dbTime(img.UpdatedAt)
	row := imageRow{
		PublicID:      img.ID,
		OwnerID:       owner,
		Purpose:       int16(img.Purpose),
		Status:        int16(img.Status),
		ContentType:   img.ContentType,
		Width:         int32(img.Width),
		Height:        int32(img.Height),
		Bytes:         img.Bytes,
		Variants:      string(variants),
		FailureReason: img.FailureReason,
		CreatedAt:     img.CreatedAt,
		UpdatedAt:     img.UpdatedAt,
	}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("create image %s: %w", img.ID, translate(err))
	}
	return nil
}

// FindByID returns the image with public id id, or an ENOTFOUND error.
func (Images) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Image, error) {
	var r imageRow
	err := selectImages(idb, &r).Where("i.public_id = ?", id).Limit(1).Scan(ctx)
	if err != nil {
		err = translate(err)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return nil, &domain.Error{Code: domain.ENOTFOUND, Message: "Image not found.", Err: err}
		}
		return nil, fmt.Errorf("find image %s: %w", id, err)
	}
	return r.toDomain()
}

// Finish records the outcome of making img's variants: READY with the
// variants stored, or FAILED with the reason. Only a PROCESSING image
// changes, so a re-run after another worker finished it changes nothing;
// the result says whether this call moved it.
func (Images) Finish(ctx context.Context, idb bun.IDB, id string, status domain.ImageStatus, variants []string, reason string, now time.Time) (bool, error) {
	if status != domain.ImageReady && status != domain.ImageFailed {
		return false, fmt.Errorf("finish image %s: status %s is not an outcome", id, status)
	}
	if variants == nil {
		variants = []string{}
	}
	list, err := json.Marshal(variants)
	if err != nil {
		return false, fmt.Errorf("finish image %s: %w", id, err)
	}
	q := idb.NewUpdate().Table("images").
		Set("status = ?", int16(status)).
		Set("variants = ?", string(list)).
		Set("updated_at = ?", dbTime(now)).
		Where("public_id = ?", id).
		Where("status = ?", int16(domain.ImageProcessing))
	if reason != "" {
		q = q.Set("failure_reason = ?", reason)
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("finish image %s: %w", id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("finish image %s: %w", id, err)
	}
	return n == 1, nil
}

// StartProcessing moves an UPLOADING image on to PROCESSING with what its
// stored header says: the sniffed type, the shown dimensions and the size.
// Only an UPLOADING image changes, so of two concurrent completions one
// wins; the result says whether this call moved it.
func (Images) StartProcessing(ctx context.Context, idb bun.IDB, id, contentType string, width, height int, bytes int64, now time.Time) (bool, error) {
	res, err := idb.NewUpdate().Table("images").
		Set("status = ?", int16(domain.ImageProcessing)).
		Set("content_type = ?", contentType).
		Set("width = ?", int32(width)).
		Set("height = ?", int32(height)).
		Set("bytes = ?", bytes).
		Set("updated_at = ?", dbTime(now)).
		Where("public_id = ?", id).
		Where("status = ?", int16(domain.ImageUploading)).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("start processing image %s: %w", id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("start processing image %s: %w", id, err)
	}
	return n == 1, nil
}

// DeleteUploading deletes the image if it is still UPLOADING (a refused or
// abandoned upload) and says whether it did; an image completed meanwhile
// stays.
func (Images) DeleteUploading(ctx context.Context, idb bun.IDB, id string) (bool, error) {
	res, err := idb.NewDelete().Table("images").
		Where("public_id = ?", id).
		Where("status = ?", int16(domain.ImageUploading)).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("delete uploading image %s: %w", id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete uploading image %s: %w", id, err)
	}
	return n == 1, nil
}

// StaleUploads returns the public ids of at most limit images still
// UPLOADING that last changed before before, oldest first, read through
// images_status_updated_at_idx.
func (Images) StaleUploads(ctx context.Context, idb bun.IDB, before time.Time, limit int) ([]string, error) {
	var ids []string
	err := idb.NewSelect().Table("images").Column("public_id").
		Where("status = ?", int16(domain.ImageUploading)).
		Where("updated_at < ?", dbTime(before)).
		OrderExpr("updated_at, id").Limit(int64(limit)).
		Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("find stale uploads: %w", translate(err))
	}
	return ids, nil
}
