// Command loadmatch measures the random matcher end to end: it stores -n
// waiting MEAL applications with random conditions (on MOIM_DATABASE_URL
// when set, else a temporary SQLite file), runs the matcher as a worker
// does — lock-free read, grouping in memory, one transaction per group
// with its match, version checks and MATCH_CONFIRMED notifications — and
// prints applications matched per second. With -cancel it cancels that
// share of the applications while the run is going, so some groups meet a
// moved version and roll back.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/internal/loadenv"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadmatch:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 20000, "waiting applications")
	cancelShare := flag.Float64("cancel", 0, "share of applications cancelled during the run (0.05 = 5%)")
	parallel := flag.Int("parallel", 4, "group transactions committed at once")
	trace := flag.Bool("trace", false, "print the count and mean time of each kind of statement of the run")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured phases to this file")
	flag.Parse()
	ctx := context.Background()
	env, err := loadenv.Open(ctx, "loadmatch")
	if err != nil {
		return err
	}
	defer env.Close()
	bdb := env.DB

	fmt.Fprintf(os.Stderr, "storing %d members and applications...\n", *n)
	ids, err := seed(ctx, bdb, *n)
	if err != nil {
		return err
	}
	metrics := jobs.NewMatchMetrics(nil)
	h := &jobs.MatchRunHandler{DB: bdb, Params: jobs.MatchingParams{Parallel: *parallel},
		Metrics: metrics, Logger: slog.New(slog.DiscardHandler), NowFunc: time.Now}

	var tracer *loadenv.Tracer
	if *trace {
		tracer = env.Trace()
	}
	stopProfile, err := loadenv.CPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	fmt.Fprintln(os.Stderr, "matching...")

	var cancelled atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	if *cancelShare > 0 {
		victims := rand.Perm(*n)[:int(float64(*n)**cancelShare)]
		wg.Go(func() {
			for _, i := range victims {
				select {
				case <-done:
					return
				default:
				}
				_, err := (db.Applications{}).Cancel(ctx, bdb, ids[i], domain.CategoryMeal, time.Now().UTC())
				if err == nil {
					cancelled.Add(1)
				}
			}
		})
	}
	start := time.Now()
	res, err := h.Run(ctx, domain.CategoryMeal)
	elapsed := time.Since(start)
	var statements string
	if tracer != nil {
		statements = tracer.Report()
	}
	close(done)
	wg.Wait()
	if err != nil {
		return err
	}
	matched := res.Matches * 2
	fmt.Printf("applications=%d database=%s parallel=%d run took %v: %d matches (%d applications), %.0f applications/s; conflicts=%d, cancelled during the run=%d\n",
		*n, env.Backend, *parallel, elapsed.Round(time.Millisecond), res.Matches, matched,
		float64(matched)/elapsed.Seconds(), res.Conflicts, cancelled.Load())
	waiting, err := (db.Applications{}).CountWaiting(ctx, bdb, domain.CategoryMeal, time.Now().UTC())
	if err != nil {
		return err
	}
	fmt.Printf("still waiting after the run: %d\n", waiting)
	if tracer != nil {
		fmt.Print("statements of the run:\n" + statements)
	}
	return nil
}

// seed inserts n members and gives each a waiting application.
func seed(ctx context.Context, bdb *bun.DB, n int) ([]string, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	ids, err := loadenv.Members(ctx, bdb, n, "load")
	if err != nil {
		return nil, err
	}
	const chunk = 500
	r := rand.New(rand.NewPCG(7, 11))
	for lo := 0; lo < n; lo += chunk {
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			for i := lo; i < min(lo+chunk, n); i++ {
				a := domain.Application{MemberID: ids[i], Category: domain.CategoryMeal,
					Conditions: domain.Conditions{Places: domain.Mask(1 + r.IntN(7)), Second: domain.Mask(1 + r.IntN(7))},
					CreatedAt:  now.Add(time.Duration(i) * time.Millisecond), ExpiresAt: now.Add(time.Hour)}
				if err := (db.Applications{}).Create(ctx, tx, &a); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}
