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
		store := newImageStore(t)
		owner := newMember(t, bdb, "photographer", nil)
		now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
		h := &jobs.ImageVariantsHandler{DB: bdb, Store: store, Options: jimage.Options{Gate: jimage.NewGate(1)},
			Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}

		upload := func(original []byte) string { return putImage(t, bdb, store, owner.ID, original, now) }
		run := func(id string) error {
			task, err := jobs.NewImageVariantsTask(id)
			return runTask(ctx, t, h, task, err)
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
func testJPEG(t testing.TB, w, h int) []byte {
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

// TestImageDelete runs the handler over a real store and database: the row
// and every object go, a re-run is harmless, and an image attached again
// before the task ran is kept whole.
func TestImageDelete(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		store := newImageStore(t)
		owner := newMember(t, bdb, "photographer", nil)
		now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
		variants := &jobs.ImageVariantsHandler{DB: bdb, Store: store, Options: jimage.Options{Gate: jimage.NewGate(1)},
			Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
		h := &jobs.ImageDeleteHandler{DB: bdb, Store: store, Logger: slog.New(slog.DiscardHandler)}
		original := testJPEG(t, 1000, 500)
		upload := func() string {
			t.Helper()
			id := putImage(t, bdb, store, owner.ID, original, now)
			task, err := jobs.NewImageVariantsTask(id)
			if err := runTask(ctx, t, variants, task, err); err != nil {
				t.Fatal(err)
			}
			return id
		}
		run := func(id string) error {
			task, err := jobs.NewImageDeleteTask(id)
			return runTask(ctx, t, h, task, err)
		}
		objects := func(id string) int {
			t.Helper()
			n := 0
			for _, v := range append([]string{domain.ImageOriginal}, domain.ImageVariants()...) {
				key, _ := storage.NewKey(id, v)
				rc, _, err := store.Open(ctx, key)
				if err == nil {
					rc.Close()
					n++
				}
			}
			return n
		}

		gone, kept := upload(), upload()
		if objects(gone) != 4 || objects(kept) != 4 {
			t.Fatalf("objects before: %d and %d, want 4 each", objects(gone), objects(kept))
		}
		room := openRoom(t, bdb, owner.ID, 4)
		if _, err := (db.Images{}).SetRoomImages(ctx, bdb, room.Key, []string{kept}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ { // the second run is a task delivered twice
			if err := run(gone); err != nil {
				t.Fatalf("run %d: %v", i+1, err)
			}
			if n := objects(gone); n != 0 {
				t.Errorf("run %d: %d objects left, want none", i+1, n)
			}
			if _, err := (db.Images{}).FindByID(ctx, bdb, gone); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Errorf("run %d: find the deleted image: %v, want not found", i+1, err)
			}
		}
		if err := run(kept); err != nil {
			t.Fatal(err)
		}
		if _, err := (db.Images{}).FindByID(ctx, bdb, kept); err != nil || objects(kept) != 4 {
			t.Errorf("attached image: %v, %d objects; want kept with 4", err, objects(kept))
		}
	})
}

// newImageStore is a local store in a temporary directory.
func newImageStore(t *testing.T) *storage.Local {
	t.Helper()
	store, err := storage.NewLocal(storage.LocalOptions{Dir: t.TempDir(), URLKey: bytes.Repeat([]byte("k"), storage.MinURLKeyLen),
		SignedBaseURL: "http://api.test/v1/objects"})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// putImage records a PROCESSING room image of owner with original stored
// (none when nil), as the API does, and returns its id.
func putImage(t *testing.T, bdb *bun.DB, store storage.Store, owner string, original []byte, now time.Time) string {
	t.Helper()
	ctx := context.Background()
	img := domain.Image{ID: db.NewPublicID(), OwnerID: owner, Purpose: domain.ImagePurposeRoom, Status: domain.ImageProcessing,
		ContentType: "image/jpeg", Width: 1000, Height: 500, Bytes: int64(len(original)), CreatedAt: now, UpdatedAt: now}
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

// runTask runs h on task.
func runTask(ctx context.Context, t *testing.T, h asynq.Handler, task jobs.Task, err error) error {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return h.ProcessTask(ctx, asynq.NewTask(task.Type, task.Payload))
}

// TestUploadCleanup: uploads left UPLOADING past the expiry plus the
// margin lose their object and row, in batches; newer uploads and
// completed images stay, and a second run deletes nothing more.
func TestUploadCleanup(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		store := newImageStore(t)
		owner := newMember(t, bdb, "uploader", nil)
		now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
		// Handed out this long ago, with an object stored or not.
		seed := func(status domain.ImageStatus, ago time.Duration, stored bool) string {
			t.Helper()
			at := now.Add(-ago)
			img := domain.Image{ID: db.NewPublicID(), OwnerID: owner.ID, Purpose: domain.ImagePurposeRoom, Status: status,
				ContentType: "image/jpeg", Bytes: 3, CreatedAt: at, UpdatedAt: at}
			if stored {
				key, _ := storage.NewKey(img.ID, domain.ImageOriginal)
				if err := store.Put(ctx, key, bytes.NewReader([]byte("abc")), 3, "image/jpeg"); err != nil {
					t.Fatal(err)
				}
			}
			if err := (db.Images{}).Create(ctx, bdb, &img); err != nil {
				t.Fatal(err)
			}
			return img.ID
		}
		// images.upload_expiry 10m: the cut-off is 1h10m ago.
		var gone []string
		for i := range 5 {
			gone = append(gone, seed(domain.ImageUploading, 2*time.Hour+time.Duration(i)*time.Minute, i%2 == 0))
		}
		kept := []string{
			seed(domain.ImageUploading, time.Hour+9*time.Minute, true),
			seed(domain.ImageProcessing, 3*time.Hour, true),
			seed(domain.ImageReady, 3*time.Hour, true),
		}
		h := &jobs.UploadCleanupHandler{DB: bdb, Store: store, Expiry: 10 * time.Minute, BatchSize: 2,
			Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
		var tick jobs.Tick
		for _, tk := range jobs.Ticks() {
			if tk.Name == jobs.TickUploadCleanup {
				tick = tk
			}
		}
		task, err := tick.Build(now)
		if err != nil {
			t.Fatal(err)
		}
		for run := 1; run <= 2; run++ {
			if err := h.ProcessTask(ctx, asynq.NewTask(task.Type, task.Payload)); err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			for _, id := range gone {
				if _, err := (db.Images{}).FindByID(ctx, bdb, id); domain.ErrorCode(err) != domain.ENOTFOUND {
					t.Errorf("run %d: abandoned upload %s: %v, want it deleted", run, id, err)
				}
				key, _ := storage.NewKey(id, domain.ImageOriginal)
				if _, err := store.Stat(ctx, key); err == nil {
					t.Errorf("run %d: abandoned upload %s: object still stored", run, id)
				}
			}
			for _, id := range kept {
				if _, err := (db.Images{}).FindByID(ctx, bdb, id); err != nil {
					t.Errorf("run %d: image %s: %v, want it kept", run, id, err)
				}
				key, _ := storage.NewKey(id, domain.ImageOriginal)
				if _, err := store.Stat(ctx, key); err != nil {
					t.Errorf("run %d: image %s: object %v, want it kept", run, id, err)
				}
			}
		}
	})
}
