package db_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

func TestImagesCreateAndFind(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		owner := mustCreate(t, bdb, newMember("img@example.com", "imager"))
		images := db.Images{}
		created := time.Date(2026, 12, 7, 10, 0, 0, 123456789, time.FixedZone("KST", 9*60*60))

		tests := []struct {
			name string
			in   domain.Image
		}{
			{"processing, given id", domain.Image{
				ID: db.NewPublicID(), OwnerID: owner.ID, Purpose: domain.ImagePurposeRoom, Status: domain.ImageProcessing,
				ContentType: "image/jpeg", Width: 4000, Height: 3000, Bytes: 12 << 20,
				CreatedAt: created, UpdatedAt: created,
			}},
			{"ready with variants", domain.Image{
				OwnerID: owner.ID, Purpose: domain.ImagePurposeAvatar, Status: domain.ImageReady,
				ContentType: "image/png", Width: 128, Height: 128, Bytes: 5000,
				Variants: domain.ImageVariants(), CreatedAt: created, UpdatedAt: created.Add(time.Minute),
			}},
			{"failed", domain.Image{
				OwnerID: owner.ID, Purpose: domain.ImagePurposeVerification, Status: domain.ImageFailed,
				FailureReason: "truncated JPEG", CreatedAt: created, UpdatedAt: created,
			}},
		}
		for _, tt := range tests {
			img := tt.in
			if err := images.Create(ctx, bdb, &img); err != nil {
				t.Fatalf("%s: Create: %v", tt.name, err)
			}
			if len(img.ID) != 26 || (tt.in.ID != "" && img.ID != tt.in.ID) {
				t.Errorf("%s: ID = %q, want %q or a new 26-character id", tt.name, img.ID, tt.in.ID)
			}
			if img.CreatedAt.Location() != time.UTC || !img.CreatedAt.Equal(usec(created)) {
				t.Errorf("%s: CreatedAt = %v, want %v in UTC", tt.name, img.CreatedAt, usec(created))
			}
			got, err := images.FindByID(ctx, bdb, img.ID)
			if err != nil {
				t.Fatalf("%s: FindByID: %v", tt.name, err)
			}
			if !reflect.DeepEqual(got, &img) {
				t.Errorf("%s: FindByID = %+v, want %+v", tt.name, got, &img)
			}
		}
	})
}

func TestImagesErrors(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		owner := mustCreate(t, bdb, newMember("img2@example.com", "imager2"))
		images := db.Images{}

		if _, err := images.FindByID(ctx, bdb, "nosuchimage"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("FindByID(unknown) = %v, want not_found", err)
		}
		ok := domain.Image{OwnerID: owner.ID, Purpose: domain.ImagePurposeRoom, Status: domain.ImageProcessing}
		if err := images.Create(ctx, bdb, &ok); err != nil {
			t.Fatal(err)
		}
		again := ok
		if err := images.Create(ctx, bdb, &again); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("Create(same id) = %v, want conflict", err)
		}
		stranger := domain.Image{OwnerID: "nosuchmember", Purpose: domain.ImagePurposeRoom, Status: domain.ImageProcessing}
		if err := images.Create(ctx, bdb, &stranger); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("Create(unknown owner) = %v, want not_found", err)
		}
		for _, bad := range []domain.Image{
			{OwnerID: owner.ID, Purpose: 0, Status: domain.ImageProcessing},
			{OwnerID: owner.ID, Purpose: domain.ImagePurposeRoom, Status: 9},
		} {
			if err := images.Create(ctx, bdb, &bad); err == nil || domain.ErrorCode(err) != domain.EINTERNAL {
				t.Errorf("Create(%+v) = %v, want an internal error", bad, err)
			}
		}
	})
}

func TestImagesFinish(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		owner := mustCreate(t, bdb, newMember("finish@example.com", "finisher"))
		created := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		done := created.Add(time.Minute)
		images := db.Images{}
		newImage := func() string {
			img := domain.Image{OwnerID: owner.ID, Purpose: domain.ImagePurposeRoom, Status: domain.ImageProcessing,
				ContentType: "image/jpeg", Width: 800, Height: 600, Bytes: 1000, CreatedAt: created, UpdatedAt: created}
			if err := images.Create(ctx, bdb, &img); err != nil {
				t.Fatal(err)
			}
			return img.ID
		}

		ready := newImage()
		if moved, err := images.Finish(ctx, bdb, ready, domain.ImageReady, domain.ImageVariants(), "", done); err != nil || !moved {
			t.Fatalf("Finish READY = %v, %v; want it moved", moved, err)
		}
		// A second worker finishing the same image changes nothing.
		if moved, err := images.Finish(ctx, bdb, ready, domain.ImageFailed, nil, "late", done.Add(time.Hour)); err != nil || moved {
			t.Fatalf("Finish of a READY image = %v, %v; want nothing moved", moved, err)
		}
		got, err := images.FindByID(ctx, bdb, ready)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != domain.ImageReady || !reflect.DeepEqual(got.Variants, domain.ImageVariants()) ||
			got.FailureReason != "" || !got.UpdatedAt.Equal(done) {
			t.Errorf("after Finish: %+v", got)
		}

		failed := newImage()
		if moved, err := images.Finish(ctx, bdb, failed, domain.ImageFailed, nil, "truncated JPEG", done); err != nil || !moved {
			t.Fatalf("Finish FAILED = %v, %v", moved, err)
		}
		if got, err := images.FindByID(ctx, bdb, failed); err != nil || got.Status != domain.ImageFailed ||
			got.FailureReason != "truncated JPEG" || len(got.Variants) != 0 {
			t.Errorf("after Finish FAILED: %+v, %v", got, err)
		}
		if _, err := images.Finish(ctx, bdb, failed, domain.ImageProcessing, nil, "", done); err == nil {
			t.Error("Finish accepted PROCESSING as an outcome")
		}
	})
}

func TestImagesUploads(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		owner := mustCreate(t, bdb, newMember("up@example.com", "uploader"))
		images := db.Images{}
		t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
		create := func(status domain.ImageStatus, at time.Time) string {
			t.Helper()
			img := domain.Image{OwnerID: owner.ID, Purpose: domain.ImagePurposeRoom, Status: status,
				ContentType: "image/jpeg", Bytes: 1000, CreatedAt: at, UpdatedAt: at}
			if err := images.Create(ctx, bdb, &img); err != nil {
				t.Fatal(err)
			}
			return img.ID
		}
		old1 := create(domain.ImageUploading, t0)
		old2 := create(domain.ImageUploading, t0.Add(time.Minute))
		fresh := create(domain.ImageUploading, t0.Add(time.Hour))
		done := create(domain.ImageProcessing, t0)

		ids, err := images.StaleUploads(ctx, bdb, t0.Add(30*time.Minute), 10)
		if err != nil || !reflect.DeepEqual(ids, []string{old1, old2}) {
			t.Fatalf("stale uploads = %v, %v; want [%s %s]", ids, err, old1, old2)
		}
		if ids, err := images.StaleUploads(ctx, bdb, t0.Add(30*time.Minute), 1); err != nil || !reflect.DeepEqual(ids, []string{old1}) {
			t.Errorf("stale uploads limit 1 = %v, %v", ids, err)
		}

		// Only an UPLOADING image moves on, once.
		moved, err := images.StartProcessing(ctx, bdb, fresh, "image/png", 800, 600, 4321, t0.Add(2*time.Hour))
		if err != nil || !moved {
			t.Fatalf("start processing: %v, %v", moved, err)
		}
		got, err := images.FindByID(ctx, bdb, fresh)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != domain.ImageProcessing || got.ContentType != "image/png" || got.Width != 800 || got.Height != 600 ||
			got.Bytes != 4321 || !got.UpdatedAt.Equal(t0.Add(2*time.Hour)) {
			t.Errorf("after start processing: %+v", got)
		}
		for _, id := range []string{fresh, done} {
			if moved, err := images.StartProcessing(ctx, bdb, id, "image/png", 1, 1, 1, t0); err != nil || moved {
				t.Errorf("start processing %s again: %v, %v; want no change", id, moved, err)
			}
		}

		// Only an UPLOADING image is deleted.
		if deleted, err := images.DeleteUploading(ctx, bdb, done); err != nil || deleted {
			t.Errorf("delete a processing image: %v, %v", deleted, err)
		}
		if deleted, err := images.DeleteUploading(ctx, bdb, old1); err != nil || !deleted {
			t.Errorf("delete an upload: %v, %v", deleted, err)
		}
		if _, err := images.FindByID(ctx, bdb, old1); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("find a deleted upload: %v", err)
		}
		if deleted, err := images.DeleteUploading(ctx, bdb, old1); err != nil || deleted {
			t.Errorf("delete it again: %v, %v", deleted, err)
		}
	})
}
