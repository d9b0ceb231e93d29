package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

// randomConditions draws a non-empty mask for each dimension of MEAL.
func randomConditions(r *rand.Rand) domain.Conditions {
	return domain.Conditions{
		Places: domain.Mask(1 + r.IntN(int(domain.Places.Full()))),
		Second: domain.Mask(1 + r.IntN(int(domain.WaysOfEating.Full()))),
	}
}

func apply(ctx context.Context, bdb *bun.DB, member string, c domain.Conditions) error {
	now := clocktest.Now().UTC()
	return db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		a := domain.Application{MemberID: member, Category: domain.CategoryMeal, Conditions: c,
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		return (db.Applications{}).Create(ctx, tx, &a)
	})
}

func newMatcher(bdb *bun.DB, size int) *jobs.MatchRunHandler {
	return &jobs.MatchRunHandler{DB: bdb, Params: jobs.MatchingParams{
		GroupSize: map[domain.Category]int{domain.CategoryMeal: size}, Parallel: 4},
		Metrics: jobs.NewMatchMetrics(nil), Logger: slog.New(slog.DiscardHandler), NowFunc: clocktest.Now}
}

// appRow is an application as the checks read it.
type appRow struct {
	ID       int64 `bun:"id"`
	MemberID int64 `bun:"member_id"`
	Places   int16 `bun:"places"`
	Second   int16 `bun:"second"`
	Status   int16 `bun:"status"`
	MatchID  int64 `bun:"match_id"`
}

// TestMatcherUnderConcurrency: 400 members apply at once while 100 of them
// cancel at random moments and four matcher runs race.
func TestMatcherUnderConcurrency(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		const members, cancellers, runners = 400, 100, 4
		ids := make([]string, members)
		for i := range ids {
			ids[i] = newMember(t, bdb, fmt.Sprintf("m%03d", i), nil).ID
		}
		h := newMatcher(bdb, 2)
		r := rand.New(rand.NewPCG(1, 2))
		conds := make([]domain.Conditions, members)
		for i := range conds {
			conds[i] = randomConditions(r)
		}

		var wg sync.WaitGroup
		errs := make(chan error, members*2+runners)
		sem := make(chan struct{}, 16)
		for i := range members {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := apply(ctx, bdb, ids[i], conds[i]); err != nil {
					errs <- fmt.Errorf("apply %d: %w", i, err)
					return
				}
				if i < cancellers {
					time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
					_, err := (db.Applications{}).Cancel(ctx, bdb, ids[i], domain.CategoryMeal, clocktest.Now().UTC())
					if err != nil && domain.ErrorCode(err) != domain.ENOTFOUND && !db.IsRetryable(err) {
						errs <- fmt.Errorf("cancel %d: %w", i, err)
					}
				}
			})
		}
		stop := make(chan struct{})
		var runs sync.WaitGroup
		for range runners {
			runs.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := h.Run(ctx, domain.CategoryMeal); err != nil && !db.IsRetryable(err) {
						errs <- fmt.Errorf("run: %w", err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		runs.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}

		// One more run matches every compatible pair still waiting; a
		// second one then changes nothing.
		if _, err := h.Run(ctx, domain.CategoryMeal); err != nil {
			t.Fatal(err)
		}
		again, err := h.Run(ctx, domain.CategoryMeal)
		if err != nil {
			t.Fatal(err)
		}
		if again.Matches != 0 || again.Conflicts != 0 {
			t.Errorf("a second run on the same state did %+v, want nothing", again)
		}

		var rows []appRow
		if err := bdb.NewSelect().Table("random_applications").Column("id", "member_id", "places", "second", "status", "match_id").Scan(ctx, &rows); err != nil {
			t.Fatal(err)
		}
		byMatch := map[int64][]appRow{}
		var waiting []appRow
		for _, a := range rows {
			switch domain.ApplicationStatus(a.Status) {
			case domain.ApplicationMatched:
				if a.MatchID == 0 {
					t.Errorf("matched application %d has no match", a.ID)
				}
				byMatch[a.MatchID] = append(byMatch[a.MatchID], a)
			case domain.ApplicationWaiting:
				waiting = append(waiting, a)
				fallthrough
			default:
				if a.MatchID != 0 {
					t.Errorf("application %d is %v but in match %d", a.ID, domain.ApplicationStatus(a.Status), a.MatchID)
				}
			}
		}
		var memberCounts []struct {
			MemberID int64 `bun:"member_id"`
			N        int   `bun:"n"`
		}
		if err := bdb.NewSelect().Table("match_members").Column("member_id").ColumnExpr("COUNT(*) AS n").
			Group("member_id").Having("COUNT(*) > 1").Scan(ctx, &memberCounts); err != nil {
			t.Fatal(err)
		}
		if len(memberCounts) > 0 {
			t.Errorf("members in more than one match: %+v", memberCounts)
		}
		for mid, group := range byMatch {
			if len(group) != 2 {
				t.Errorf("match %d has %d applications, want 2", mid, len(group))
				continue
			}
			a, b := group[0], group[1]
			if a.Places&b.Places == 0 || a.Second&b.Second == 0 {
				t.Errorf("match %d groups incompatible applications %+v and %+v", mid, a, b)
			}
		}
		for i := range waiting {
			for j := i + 1; j < len(waiting); j++ {
				a, b := waiting[i], waiting[j]
				if a.MemberID != b.MemberID && a.Places&b.Places != 0 && a.Second&b.Second != 0 {
					t.Errorf("applications %d and %d are compatible and both still waiting", a.ID, b.ID)
				}
			}
		}
		n, err := bdb.NewSelect().Table("notifications").Where("type = ?", int(domain.NotifyMatchConfirmed)).Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if int(n) != 2*len(byMatch) {
			t.Errorf("%d MATCH_CONFIRMED notifications for %d matches, want two each", n, len(byMatch))
		}
		if len(byMatch) == 0 {
			t.Error("nothing was matched")
		}
		t.Logf("%d matches, %d still waiting", len(byMatch), len(waiting))
	})
}

// TestMatchTriggersFoldIntoFewRuns runs the whole path on a real worker: a
// burst of applications, each writing its trigger through the outbox, is
// matched completely by a handful of runs, not one per application.
func TestMatchTriggersFoldIntoFewRuns(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	ctx := context.Background()
	opt := jobstest.RedisOpt(t)
	relay, err := jobs.NewRelay(bdb, jobs.RelayParams{Redis: opt, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = relay.Run(rctx) }()
	t.Cleanup(func() { stop(); <-relayDone; _ = relay.Close() })

	client := asynq.NewClient(opt)
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = client.Close(); _ = insp.Close() })
	metrics := jobs.NewMetrics(nil)
	logger, _ := newTestLogger()
	mux, err := jobs.NewMux(jobs.Deps{DB: bdb, Logger: logger, Metrics: metrics, Relay: relay,
		Client: client, Inspector: insp, NowFunc: clocktest.Now})
	if err != nil {
		t.Fatal(err)
	}
	startServer(t, opt, mux, 8, logger)

	const n = 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newMember(t, bdb, fmt.Sprintf("burst%03d", i), nil).ID
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			now := clocktest.Now().UTC()
			err := relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
				a := domain.Application{MemberID: ids[i], Category: domain.CategoryMeal,
					Conditions: domain.Conditions{Places: domain.Places.Full(), Second: domain.WaysOfEating.Full()},
					CreatedAt:  now, ExpiresAt: now.Add(time.Hour)}
				if err := (db.Applications{}).Create(ctx, tx, &a); err != nil {
					return err
				}
				task, err := jobs.NewMatchTriggerTask(domain.CategoryMeal)
				if err != nil {
					return err
				}
				return jobs.Enqueue(ctx, tx, task)
			})
			if err != nil {
				t.Errorf("apply %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	eventually(t, 30*time.Second, "every application matched", func() bool {
		n, err := (db.Applications{}).CountWaiting(ctx, bdb, domain.CategoryMeal, clocktest.Now().UTC())
		return err == nil && n == 0
	})
	matched, err := bdb.NewSelect().Table("random_applications").Where("status = ?", int(domain.ApplicationMatched)).Count(ctx)
	if err != nil || matched != n {
		t.Fatalf("%d applications matched (err %v), want %d", matched, err, n)
	}
	runs := testutil.ToFloat64(metrics.Processed.WithLabelValues(jobs.TypeMatchRun))
	triggers := testutil.ToFloat64(metrics.Processed.WithLabelValues(jobs.TypeMatchTrigger))
	t.Logf("%d applications: %v triggers, %v matcher runs", n, triggers, runs)
	if runs < 1 || runs > n/5 {
		t.Errorf("%v matcher runs for %d applications, want a handful", runs, n)
	}
}

// TestArchivedRunDoesNotBlockCategory: a run that failed every retry stays
// archived under the category's fixed task id; the next trigger must still
// get a run.
func TestArchivedRunDoesNotBlockCategory(t *testing.T) {
	t.Parallel()
	opt := jobstest.RedisOpt(t)
	client := asynq.NewClient(opt)
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = client.Close(); _ = insp.Close() })
	h := &jobs.MatchTriggerHandler{Client: client, Inspector: insp}
	payload := []byte(`{"category":"MEAL"}`)
	if err := h.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeMatchTrigger, payload)); err != nil {
		t.Fatal(err)
	}
	const id = "match:run:MEAL"
	if err := insp.ArchiveTask(jobs.QueueCritical, id); err != nil {
		t.Fatalf("archive the run: %v", err)
	}
	if err := h.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeMatchTrigger, payload)); err != nil {
		t.Fatal(err)
	}
	info, err := insp.GetTaskInfo(jobs.QueueCritical, id)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != asynq.TaskStatePending {
		t.Errorf("run state after a trigger = %v, want pending (a fresh run)", info.State)
	}
	// A pending run absorbs further triggers.
	if err := h.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeMatchTrigger, payload)); err != nil {
		t.Fatal(err)
	}
	if n, err := insp.GetQueueInfo(jobs.QueueCritical); err != nil || n.Pending != 1 {
		t.Errorf("pending runs = %+v, %v; want 1", n, err)
	}
}
