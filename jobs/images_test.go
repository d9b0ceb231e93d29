package jobs_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	jimage "github.com/moim/moim/jobs/image"
	"github.com/moim/moim/jobs/storage"
)

// TestImageVariants runs the handler over a real store and database: a
// good original becomes READY with its three variants stored, a re-run
// changes nothing, and a corrupt or missing original is FAILED at once,
// without an error that would make asynq retry.
func TestImageVariants(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		store, err := storage.NewLocal(storage.LocalOptions{Dir: t.TempDir(), URLKey: bytes.Repeat([]byte("k"), storage.MinURLKeyLen),
			SignedBaseURL: "http://api.test/v1/objects"})
		if err != nil {
			t.Fatal(err)
		}
		owner := newMember(t, bdb, "photographer", nil)
		now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
		h := &jobs.ImageVariantsHandler{DB: bdb, Store: store, Options: jimage.Options{Gate: jimage.NewGate(1)},
			Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}

		upload := func(original []byte) string {
			t.Helper()
			img := domain.Image{OwnerID: owner.ID, Purpose: domain.ImagePurposeRoom, Status: domain.ImageProcessing,
				ContentType: "image/jpeg", Width: 1000, Height: 500, Bytes: int64(len(original)), CreatedAt: now, UpdatedAt: now}
			img.ID = db.NewPublicID()
			if original != nil {
				key, err := storage.NewKey(img.ID, domain.ImageOriginal)
				if err != nil {
					t.Fatal(err)
				}
				if err := store.Put(ctx, key, bytes.NewReader(original), int64(len(original)), "image/jpeg"); err != nil {
					t.Fatal(err)
				}
			}
			if err := (db.Images{}).Create(ctx, bdb, &img); err != nil {
				t.Fatal(err)
			}
			return img.ID
		}
		run := func(id string) error {
			task, err := jobs.NewImageVariantsTask(id)
			if err != nil {
				t.Fatal(err)
			}
			return h.ProcessTask(ctx, asynq.NewTask(task.Type, task.Payload))
		}
		find := func(id string) *domain.Image {
			t.Helper()
			img, err := (db.Images{}).FindByID(ctx, bdb, id)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}

		good := upload(testJPEG(t, 1000, 500))
		if err := run(good); err != nil {
			t.Fatalf("variants of a good image: %v", err)
		}
		img := find(good)
		if img.Status != domain.ImageReady || len(img.Variants) != 3 {
			t.Fatalf("after the task: status %s, variants %v; want READY with three", img.Status, img.Variants)
		}
		want := map[string][2]int{domain.ImageVariantW384: {384, 192}, domain.ImageVariantW758: {758, 379}, domain.ImageVariantThumb: {380, 380}}
		for name, size := range want {
			key, _ := storage.NewKey(good, name)
			rc, info, err := store.Open(ctx, key)
			if err != nil {
				t.Fatalf("variant %s: %v", name, err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
			if err != nil || info.ContentType != "image/jpeg" || cfg.Width != size[0] || cfg.Height != size[1] {
				t.Errorf("variant %s: %dx%d %s (%v), want %dx%d image/jpeg", name, cfg.Width, cfg.Height, info.ContentType, err, size[0], size[1])
			}
		}

		// A re-run (a task delivered twice) finds it READY and changes nothing.
		now = now.Add(time.Hour)
		if err := run(good); err != nil {
			t.Fatalf("re-run: %v", err)
		}
		if again := find(good); !again.UpdatedAt.Equal(img.UpdatedAt) || again.Status != domain.ImageReady {
			t.Errorf("a re-run changed the image: %+v", again)
		}

		corrupt := testJPEG(t, 1000, 500)
		corrupt = corrupt[:len(corrupt)/3]
		for name, id := range map[string]string{"truncated": upload(corrupt), "missing original": upload(nil)} {
			if err := run(id); err != nil {
				t.Errorf("%s: error %v; a file that cannot be decoded is not retried", name, err)
			}
			if img := find(id); img.Status != domain.ImageFailed || img.FailureReason == "" || len(img.Variants) != 0 {
				t.Errorf("%s: status %s, reason %q, variants %v; want FAILED with a reason", name, img.Status, img.FailureReason, img.Variants)
			}
		}

		// A deleted image's task has nothing to do.
		if err := run(db.NewPublicID()); err != nil {
			t.Errorf("task of an unknown image: %v", err)
		}
	})
}

// testJPEG encodes a w×h gradient.
func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
