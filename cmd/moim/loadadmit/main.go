// Command loadadmit measures room admission: it opens -rooms rooms of
// capacity -capacity and records -n join requests spread over them (on
// MOIM_DATABASE_URL when set, else a temporary SQLite file), then decides
// them with -workers goroutines running the worker's handler — the
// optimistic, version-checked update with its jittered retries and the
// notifications in the same transaction — in a shuffled order, and prints
// admissions per second and optimistic retries per request.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/internal/loadenv"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadadmit:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 10000, "join requests")
	rooms := flag.Int("rooms", 1000, "rooms the requests are spread over")
	capacity := flag.Int("capacity", 10, "capacity of each room (the host included)")
	workers := flag.Int("workers", 8, "concurrent worker goroutines")
	retries := flag.Int("retries", 3, "optimistic retries within one task")
	wait := flag.Duration("retry-wait", 100*time.Millisecond, "mean pause before a retry")
	flag.Parse()
	ctx := context.Background()
	env, err := loadenv.Open(ctx, "loadadmit")
	if err != nil {
		return err
	}
	defer env.Close()
	bdb := env.DB

	fmt.Fprintf(os.Stderr, "storing %d rooms and %d join requests...\n", *rooms, *n)
	keys, err := seed(ctx, bdb, *rooms, *n, *capacity)
	if err != nil {
		return err
	}
	rand.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })

	metrics := jobs.NewRoomMetrics(nil)
	h := &jobs.RoomParticipationHandler{DB: bdb, Params: jobs.AdmissionParams{Retries: *retries, RetryWait: *wait},
		Metrics: metrics, Logger: slog.New(slog.DiscardHandler), NowFunc: time.Now}
	fmt.Fprintln(os.Stderr, "deciding...")
	work := make(chan int64)
	errs := make(chan error, *workers)
	var wg sync.WaitGroup
	start := time.Now()
	for range *workers {
		wg.Go(func() {
			for k := range work {
				// A task that ran out of retries comes back, as asynq's
				// retry would bring it.
				for {
					_, err := h.Decide(ctx, k)
					if err == nil {
						break
					}
					if domain.ErrorCode(err) == domain.ENOTFOUND {
						errs <- err
						return
					}
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}

	joined := testutil.ToFloat64(metrics.Admissions.WithLabelValues(domain.ParticipationJoined.String()))
	full := testutil.ToFloat64(metrics.Admissions.WithLabelValues(domain.ParticipationRejectedFull.String()))
	retried := testutil.ToFloat64(metrics.Retries)
	decided := joined + full
	fmt.Printf("requests=%d rooms=%d capacity=%d workers=%d database=%s: %v, %.0f decisions/s (%.0f admissions/s); joined=%.0f rejected_full=%.0f; optimistic retries=%.0f (%.3f per request)\n",
		*n, *rooms, *capacity, *workers, env.Backend, elapsed.Round(time.Millisecond),
		decided/elapsed.Seconds(), joined/elapsed.Seconds(), joined, full, retried, retried/decided)
	return checkCounts(ctx, bdb)
}

// seed opens the rooms, one host each, and records n join requests by
// distinct members, spread round robin over the rooms.
func seed(ctx context.Context, bdb *bun.DB, rooms, n, capacity int) ([]int64, error) {
	hosts, err := loadenv.Members(ctx, bdb, rooms, "host")
	if err != nil {
		return nil, err
	}
	joiners, err := loadenv.Members(ctx, bdb, n, "joiner")
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	opened := make([]*domain.Room, rooms)
	const chunk = 500
	for lo := 0; lo < rooms; lo += chunk {
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			for i := lo; i < min(lo+chunk, rooms); i++ {
				r := &domain.Room{HostID: hosts[i], Category: domain.CategoryMeal, Title: fmt.Sprintf("room %d", i),
					Place: "개포", StartsAt: now.Add(24 * time.Hour), Capacity: capacity, CreatedAt: now}
				if err := (db.Rooms{}).Create(ctx, tx, r); err != nil {
					return err
				}
				opened[i] = r
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	keys := make([]int64, n)
	for lo := 0; lo < n; lo += chunk {
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			for i := lo; i < min(lo+chunk, n); i++ {
				p := &domain.Participation{MemberID: joiners[i], Kind: domain.ParticipationJoin, CreatedAt: now}
				if err := (db.Participations{}).Create(ctx, tx, opened[i%rooms], p); err != nil {
					return err
				}
				keys[i] = p.Key
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// checkCounts verifies that every room's counter equals its participant
// rows and stays within its capacity.
func checkCounts(ctx context.Context, bdb *bun.DB) error {
	var bad int
	err := bdb.NewSelect().TableExpr("rooms AS r").ColumnExpr("COUNT(*)").
		Where("r.participant_count > r.capacity OR r.participant_count <> (SELECT COUNT(*) FROM room_participants AS rp WHERE rp.room_id = r.id)").
		Scan(ctx, &bad)
	if err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("%d rooms whose count is off", bad)
	}
	fmt.Println("every room's participant_count equals its rows and its capacity holds")
	return nil
}
