package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/image"
	"github.com/moim/moim/jobs/storage"
)

// TypeImageVariants makes the variants of one uploaded image and marks it
// READY (or FAILED when it cannot be decoded).
const TypeImageVariants = "image:variants"

// ImageVariantsPayload names the image by public id: the object keys carry
// the same id.
type ImageVariantsPayload struct {
	ImageID string `json:"image_id"`
}

// NewImageVariantsTask returns the task the API writes to the outbox with
// a stored original, in the transaction that records the image.
func NewImageVariantsTask(imageID string) (Task, error) {
	// A retry helps only with a storage or database outage: an image
	// that cannot be decoded is FAILED at once.
	return newTask(TypeImageVariants, ImageVariantsPayload{ImageID: imageID}, QueueDefault, 3)
}

// ImageVariantsHandler processes TypeImageVariants: it reads the original
// once, writes the variants under their fixed keys, then marks the image
// READY in one short statement. A re-run overwrites the same keys with the
// same bytes and finds the image no longer PROCESSING, so it changes
// nothing. An image that cannot be decoded is FAILED with the reason and
// not retried; a storage or database failure is retried.
type ImageVariantsHandler struct {
	DB      *bun.DB
	Store   storage.Store
	Options image.Options
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// ProcessTask makes the variants of the image the payload names.
func (h *ImageVariantsHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p ImageVariantsPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ImageID == "" {
		return fmt.Errorf("%s: bad payload %q: %w", TypeImageVariants, t.Payload(), errors.Join(err, asynq.SkipRetry))
	}
	img, err := (db.Images{}).FindByID(ctx, h.DB, p.ImageID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil // deleted since: nothing to make
	}
	if err != nil {
		return fmt.Errorf("image %s: %w", p.ImageID, err)
	}
	if img.Status != domain.ImageProcessing {
		return nil // done by an earlier run
	}
	variants, err := h.make(ctx, img.ID)
	if image.Permanent(err) || errors.Is(err, storage.ErrNotFound) {
		reason := domain.ErrorMessage(err)
		if errors.Is(err, storage.ErrNotFound) {
			reason = "The original is missing from storage."
		}
		if _, ferr := (db.Images{}).Finish(ctx, h.DB, img.ID, domain.ImageFailed, nil, reason, h.NowFunc()); ferr != nil {
			return fmt.Errorf("image %s: %w", img.ID, ferr)
		}
		h.Logger.WarnContext(ctx, "image failed", slog.String("image", img.ID), slog.String("reason", reason))
		return nil
	}
	if err != nil {
		return fmt.Errorf("image %s: %w", img.ID, err)
	}
	if _, err := (db.Images{}).Finish(ctx, h.DB, img.ID, domain.ImageReady, variants, "", h.NowFunc()); err != nil {
		return fmt.Errorf("image %s: %w", img.ID, err)
	}
	return nil
}

// make decodes the original and stores each variant; it returns their names.
func (h *ImageVariantsHandler) make(ctx context.Context, id string) ([]string, error) {
	key, err := storage.NewKey(id, domain.ImageOriginal)
	if err != nil {
		return nil, err
	}
	rc, _, err := h.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out, err := image.Variants(ctx, rc, h.Options)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(out))
	for _, v := range out {
		vkey, err := storage.NewKey(id, v.Name)
		if err != nil {
			return nil, err
		}
		if err := h.Store.Put(ctx, vkey, bytes.NewReader(v.Bytes), int64(len(v.Bytes)), v.ContentType); err != nil {
			return nil, fmt.Errorf("store %s: %w", v.Name, err)
		}
		names = append(names, v.Name)
	}
	return names, nil
}

// TypeImageDelete deletes an image detached from its room or member: its
// row and every object stored for it.
const TypeImageDelete = "image:delete"

// NewImageDeleteTask returns the task written to the outbox in the
// transaction that detaches the image.
func NewImageDeleteTask(imageID string) (Task, error) {
	// Retried for a storage or database outage; every step is idempotent.
	return newTask(TypeImageDelete, ImageVariantsPayload{ImageID: imageID}, QueueDefault, 10)
}

// EnqueueImageDeletes enqueues a TypeImageDelete for each id in tx.
func EnqueueImageDeletes(ctx context.Context, tx bun.Tx, ids ...string) error {
	for _, id := range ids {
		task, err := NewImageDeleteTask(id)
		if err != nil {
			return err
		}
		if err := Enqueue(ctx, tx, task); err != nil {
			return err
		}
	}
	return nil
}

// ImageDeleteHandler processes TypeImageDelete. The row goes first, and
// only while nothing links to it: an image its owner attached again
// meanwhile keeps row and objects. Then the original and every variant
// are deleted, whether or not they were made; a re-run (the row gone
// already) deletes the same keys again, which is harmless.
type ImageDeleteHandler struct {
	DB     *bun.DB
	Store  storage.Store
	Logger *slog.Logger
}

// ProcessTask deletes the image the payload names.
func (h *ImageDeleteHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p ImageVariantsPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ImageID == "" {
		return fmt.Errorf("%s: bad payload %q: %w", TypeImageDelete, t.Payload(), errors.Join(err, asynq.SkipRetry))
	}
	gone, err := (db.Images{}).DeleteUnlinked(ctx, h.DB, p.ImageID)
	if err != nil {
		return err
	}
	if !gone {
		h.Logger.InfoContext(ctx, "image attached again; kept", slog.String("image", p.ImageID))
		return nil
	}
	for _, v := range append([]string{domain.ImageOriginal}, domain.ImageVariants()...) {
		key, err := storage.NewKey(p.ImageID, v)
		if err != nil {
			return fmt.Errorf("%s %s: %w", TypeImageDelete, p.ImageID, errors.Join(err, asynq.SkipRetry))
		}
		if err := h.Store.Delete(ctx, key); err != nil {
			return fmt.Errorf("image %s: delete %s: %w", p.ImageID, v, err)
		}
	}
	return nil
}

// TypeUploadCleanup is the tick that deletes pre-signed uploads never
// completed.
const TypeUploadCleanup = "tick:upload-cleanup"

// TickUploadCleanup is its catalogue name.
const TickUploadCleanup = "upload-cleanup"

// DefaultUploadExpiry is images.upload_expiry's default, used when
// UploadCleanupHandler.Expiry is zero.
const DefaultUploadExpiry = 15 * time.Minute

// UploadCleanupMargin is how long past its URL's expiry an upload is kept:
// a PUT begun just before the expiry may still be streaming, and its
// client still has to complete it.
const UploadCleanupMargin = time.Hour

// UploadCompleteGrace is how long past its URL's expiry an upload may
// still be completed: half the cleanup margin, so a completion never races
// the tick deleting the same upload.
const UploadCompleteGrace = UploadCleanupMargin / 2

// UploadCleanupHandler processes TypeUploadCleanup: it deletes the images
// still UPLOADING more than Expiry plus UploadCleanupMargin after they were
// handed out, each object first, then its row, batch by batch. A failed
// object delete keeps the row, so the next run tries again; running it
// twice is harmless.
type UploadCleanupHandler struct {
	DB    *bun.DB
	Store storage.Store
	// Expiry is images.upload_expiry; zero means DefaultUploadExpiry.
	Expiry time.Duration
	// BatchSize is the most images one batch deletes; zero means 1000.
	BatchSize int
	NowFunc   func() time.Time
	Logger    *slog.Logger
}

// ProcessTask deletes the abandoned uploads.
func (h *UploadCleanupHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	slot, err := decodeTickPayload(TypeUploadCleanup, t.Payload())
	if err != nil {
		return err
	}
	expiry := h.Expiry
	if expiry <= 0 {
		expiry = DefaultUploadExpiry
	}
	// One cut-off for the whole run, so the loop ends.
	before := nowOf(h.NowFunc).Add(-expiry - UploadCleanupMargin)
	total, err := deleteInBatches(ctx, h.BatchSize, func(limit int) (int, error) {
		ids, err := db.Images{}.StaleUploads(ctx, h.DB, before, limit)
		if err != nil {
			return 0, err
		}
		for i, id := range ids {
			if err := h.deleteUpload(ctx, id); err != nil {
				return i, err
			}
		}
		return len(ids), nil
	})
	if err != nil {
		return fmt.Errorf("clean up uploads: %w", err)
	}
	logDeleted(ctx, h.Logger, "abandoned uploads deleted", total, slog.Time("updated_before", before), slog.Time("slot", slot))
	return nil
}

func (h *UploadCleanupHandler) deleteUpload(ctx context.Context, id string) error {
	key, err := storage.NewKey(id, domain.ImageOriginal)
	if err != nil {
		return fmt.Errorf("image %s: %w", id, err)
	}
	if err := h.Store.Delete(ctx, key); err != nil {
		return fmt.Errorf("image %s: %w", id, err)
	}
	if _, err := (db.Images{}).DeleteUploading(ctx, h.DB, id); err != nil {
		return fmt.Errorf("image %s: %w", id, err)
	}
	return nil
}
