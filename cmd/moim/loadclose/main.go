// Command loadclose measures the close of missions: it seeds -n ONGOING
// missions whose end has passed, -members members each, with verifications
// (on MOIM_DATABASE_URL when set, else a temporary SQLite file), then runs
// the mission-transitions tick and one worker (an asynq server of
// -workers goroutines serving the worker's mux, on MOIM_REDIS_URL or the
// in-memory Redis) until every mission is closed, and prints missions/s
// and payouts/s. Beside it, the ceiling: the same SQL, taken from one
// close the worker ran, replayed for -n more missions seeded alike, by
// pgbench with -workers clients on PostgreSQL (when pgbench is on PATH),
// else straight from Go over database/sql with -workers goroutines.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/internal/loadenv"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadclose:", err)
		os.Exit(1)
	}
}

// params are the flags.
type params struct {
	n, members, pool, workers int
}

func run() error {
	var p params
	flag.IntVar(&p.n, "n", 10000, "missions to close (and as many again for the baseline)")
	flag.IntVar(&p.members, "members", 8, "members of each mission (2–8)")
	flag.IntVar(&p.pool, "pool", 8000, "distinct members the missions draw from")
	flag.IntVar(&p.workers, "workers", 8, "worker concurrency, and pgbench clients")
	direct := flag.Bool("direct", false, "call the task handler from -workers goroutines instead of running asynq (no tick, no queue)")
	dump := flag.Bool("dump-sql", false, "print the SQL of one close and the baseline script, then stop")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the close (not the seeding) to this file")
	flag.Parse()
	if p.members < domain.MissionMinMembers || p.members > domain.MissionCapacityMax || p.pool < p.members {
		return fmt.Errorf("-members must be 2–8 and -pool at least -members")
	}
	ctx := context.Background()
	env, err := loadenv.Open(ctx, "loadclose")
	if err != nil {
		return err
	}
	defer env.Close()
	bdb := env.DB

	now := time.Now().UTC().Truncate(time.Second)
	fmt.Fprintf(os.Stderr, "seeding 2 × %d missions × %d members with verifications on %s...\n", p.n, p.members, env.Backend)
	seedStart := time.Now()
	sets, err := seed(ctx, bdb, p, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seeded in %v\n", time.Since(seedStart).Round(time.Millisecond))
	worker, baseline := sets[0], sets[1]

	// The baseline's script: the statements of one close, by the worker's
	// own code, recorded and made into a template over the mission.
	script, err := recordClose(ctx, bdb, baseline, now.Add(2*time.Hour))
	if err != nil {
		return err
	}
	if *dump {
		for _, st := range script.statements {
			fmt.Println(st + ";")
		}
		fmt.Println("--- pgbench:")
		fmt.Println(script.pgbench(baseline))
		return nil
	}

	var elapsed time.Duration
	var enqueued int
	stopProfile, err := loadenv.CPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *direct {
		fmt.Fprintln(os.Stderr, "closing with the task handler, called directly...")
		elapsed, err = closeDirect(ctx, bdb, worker, p, now)
	} else {
		fmt.Fprintln(os.Stderr, "closing with the worker...")
		elapsed, enqueued, err = closeByWorker(ctx, env, worker, p, now)
	}
	if err != nil {
		return err
	}
	payouts, err := countPayouts(ctx, bdb, worker)
	if err != nil {
		return err
	}
	how := "worker"
	if *direct {
		how = "handler called directly"
	}
	fmt.Printf("%s: missions=%d members=%d workers=%d database=%s: %v, %.0f missions/s, %.0f payouts/s (%d payouts; %d tasks enqueued by one tick)\n",
		how, p.n, p.members, p.workers, env.Backend, elapsed.Round(time.Millisecond),
		float64(p.n)/elapsed.Seconds(), float64(payouts)/elapsed.Seconds(), payouts, enqueued)

	// The ceiling: the same statements, nothing around them.
	fmt.Fprintln(os.Stderr, "closing the baseline's missions with the same SQL...")
	bn, base, how, err := runBaseline(ctx, env, script, baseline, p)
	if err != nil {
		return err
	}
	// The same payouts a mission as the worker's (every mission is alike).
	perMission := float64(payouts) / float64(p.n)
	rate, baseRate := float64(p.n)/elapsed.Seconds(), float64(bn)/base.Seconds()
	fmt.Printf("baseline (%s): missions=%d: %v, %.0f missions/s, %.0f payouts/s\n",
		how, bn, base.Round(time.Millisecond), baseRate, baseRate*perMission)
	fmt.Printf("worker at %.0f %% of the baseline\n", 100*rate/baseRate)
	if err := checkOnce(ctx, bdb, worker); err != nil {
		return err
	}
	return checkBaseline(ctx, bdb, baseline, bn+2, perMission)
}

// waitDrained waits until queue has no task pending, active or due for a
// retry.
func waitDrained(ctx context.Context, insp *asynq.Inspector, queue string) error {
	deadline := time.Now().Add(30 * time.Minute)
	for {
		q, err := insp.GetQueueInfo(queue)
		if err != nil {
			return err
		}
		if q.Pending+q.Active+q.Retry+q.Scheduled == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue %s not drained after 30 minutes: %+v", queue, q)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitClosed waits until every mission of set s is closed.
func waitClosed(ctx context.Context, bdb *bun.DB, s missionSet, n int) error {
	deadline := time.Now().Add(30 * time.Minute)
	for {
		closed, err := bdb.NewSelect().Table("missions").
			Where("id BETWEEN ? AND ?", s.first, s.last).Where("status = ?", int(domain.MissionClose)).Count(ctx)
		if err != nil {
			return err
		}
		if int(closed) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d missions closed after 30 minutes", closed, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countPayouts counts the ledger entries of set s's missions.
func countPayouts(ctx context.Context, bdb *bun.DB, s missionSet) (int, error) {
	n, err := bdb.NewSelect().Table("point_entries").Where("mission_id BETWEEN ? AND ?", s.first, s.last).Count(ctx)
	return int(n), err
}

// checkOnce verifies that no member was paid twice for a mission and that
// every balance equals its entries.
func checkOnce(ctx context.Context, bdb *bun.DB, s missionSet) error {
	var dup int
	err := bdb.NewSelect().TableExpr("(SELECT mission_id, member_id, kind, COUNT(*) AS n FROM point_entries WHERE mission_id BETWEEN ? AND ? GROUP BY mission_id, member_id, kind) AS x", s.first, s.last).
		ColumnExpr("COUNT(*)").Where("x.n > 1").Scan(ctx, &dup)
	if err != nil {
		return err
	}
	var bad int
	err = bdb.NewSelect().Table("point_balances").ColumnExpr("COUNT(*)").
		Where("balance <> (SELECT COALESCE(SUM(e.amount), 0) FROM point_entries AS e WHERE e.member_id = point_balances.member_id)").
		Scan(ctx, &bad)
	if err != nil {
		return err
	}
	if dup > 0 || bad > 0 {
		return fmt.Errorf("%d payouts posted twice, %d balances off their entries", dup, bad)
	}
	fmt.Println("every payout posted once; every balance equals its entries")
	return nil
}

// checkBaseline verifies that the baseline closed its missions and paid
// what the worker paid a mission.
func checkBaseline(ctx context.Context, bdb *bun.DB, s missionSet, n int, perMission float64) error {
	closed, err := bdb.NewSelect().Table("missions").Where("id BETWEEN ? AND ?", s.first, s.last).
		Where("status = ?", int(domain.MissionClose)).Count(ctx)
	if err != nil {
		return err
	}
	payouts, err := countPayouts(ctx, bdb, s)
	if err != nil {
		return err
	}
	if int(closed) != n || float64(payouts) != perMission*float64(n) {
		return fmt.Errorf("baseline: %d missions closed, %d payouts; want %d and %.0f", closed, payouts, n, perMission*float64(n))
	}
	return nil
}

// closeByWorker runs the tick and one asynq server serving the worker's
// mux until every mission of set s is closed.
func closeByWorker(ctx context.Context, env *loadenv.Env, s missionSet, p params, now time.Time) (time.Duration, int, error) {
	client := asynq.NewClient(env.RedisOpt)
	insp := asynq.NewInspector(env.RedisOpt)
	defer client.Close()
	defer insp.Close()
	logger := slog.New(slog.DiscardHandler)
	clock := func() time.Time { return now }
	mux, err := jobs.NewMux(jobs.Deps{DB: env.DB, Logger: logger, Client: client, Inspector: insp, NowFunc: clock})
	if err != nil {
		return 0, 0, err
	}
	srv := jobs.NewServer(jobs.ServerParams{Redis: env.RedisOpt, Concurrency: p.workers,
		TaskCheckInterval: 10 * time.Millisecond, ShutdownTimeout: 10 * time.Second, Logger: logger})
	tick := &jobs.MissionTransitionsHandler{DB: env.DB, Client: client, Inspector: insp, Logger: logger, NowFunc: clock}
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, 0, err
	}
	defer srv.Shutdown()
	enqueued, err := tick.Run(ctx)
	if err != nil {
		return 0, 0, err
	}
	// Watch the queue in Redis, not the missions in the database: a
	// frequent count over the missions would load the database the worker
	// is measured on, which pgbench's ceiling does not have.
	task, err := jobs.NewMissionTransitionTask(s.first)
	if err != nil {
		return 0, 0, err
	}
	if err := waitDrained(ctx, insp, task.Queue); err != nil {
		return 0, 0, err
	}
	elapsed := time.Since(start)
	if err := waitClosed(ctx, env.DB, s, p.n); err != nil {
		return 0, 0, err
	}
	return elapsed, enqueued, nil
}

// closeDirect closes every mission of set s with the task handler's
// Transition from p.workers goroutines.
func closeDirect(ctx context.Context, bdb *bun.DB, s missionSet, p params, now time.Time) (time.Duration, error) {
	h := &jobs.MissionTransitionHandler{DB: bdb, Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
	work := make(chan int64)
	errs := make(chan error, p.workers)
	var wg sync.WaitGroup
	start := time.Now()
	for range p.workers {
		wg.Go(func() {
			for k := range work {
				if _, err := h.Transition(ctx, k); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for k := s.first; k <= s.last; k++ {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	return time.Since(start), <-errs
}
