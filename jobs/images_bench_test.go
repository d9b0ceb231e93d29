package jobs_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	jimage "github.com/moim/moim/jobs/image"
	"github.com/moim/moim/jobs/storage"
)

// BenchmarkImageVariantsWorker is one worker process's image throughput:
// 12 MP photos through the image:variants handler (read the original, make
// and store three variants, mark READY) on SQLite and a local store, with
// the defaults of a worker — 10 tasks at once, 2 decodes at once. Beside
// it, the same photos through Variants alone, one at a time: the decode
// cost the handler cannot beat on its own.
func BenchmarkImageVariantsWorker(b *testing.B) {
	const concurrency, decodes = 10, 2 // worker.concurrency, images.concurrent_decodes
	photo := testJPEG(b, 4000, 3000)

	b.Run("variants-alone", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			if _, err := jimage.Variants(context.Background(), bytes.NewReader(photo), jimage.Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "images/s")
	})

	b.Run("handler", func(b *testing.B) {
		ctx := context.Background()
		bdb := dbtest.Open(b, "sqlite")
		store, err := storage.NewLocal(storage.LocalOptions{Dir: b.TempDir(), URLKey: bytes.Repeat([]byte("k"), storage.MinURLKeyLen),
			SignedBaseURL: "http://api.test/v1/objects"})
		if err != nil {
			b.Fatal(err)
		}
		now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
		owner := &domain.Member{Email: "bench@example.com", PasswordHash: "x", Nickname: "bench",
			Prefs: domain.DefaultNotificationPrefs(), Role: domain.RoleMember, CreatedAt: now, UpdatedAt: now}
		if err := (db.Members{}).Create(ctx, bdb, owner); err != nil {
			b.Fatal(err)
		}
		h := &jobs.ImageVariantsHandler{DB: bdb, Store: store, Options: jimage.Options{Gate: jimage.NewGate(decodes)},
			Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}

		ids := make([]string, b.N)
		for i := range ids {
			img := domain.Image{ID: db.NewPublicID(), OwnerID: owner.ID, Purpose: domain.ImagePurposeRoom, Status: domain.ImageProcessing,
				ContentType: "image/jpeg", Width: 4000, Height: 3000, Bytes: int64(len(photo)), CreatedAt: now, UpdatedAt: now}
			key, _ := storage.NewKey(img.ID, domain.ImageOriginal)
			if err := store.Put(ctx, key, bytes.NewReader(photo), int64(len(photo)), "image/jpeg"); err != nil {
				b.Fatal(err)
			}
			if err := (db.Images{}).Create(ctx, bdb, &img); err != nil {
				b.Fatal(err)
			}
			ids[i] = img.ID
		}
		work := make(chan string, len(ids))
		for _, id := range ids {
			work <- id
		}
		close(work)

		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				for id := range work {
					task, _ := jobs.NewImageVariantsTask(id)
					if err := h.ProcessTask(ctx, asynq.NewTask(task.Type, task.Payload)); err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "images/s")
	})
}
