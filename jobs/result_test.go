package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

// TestMatchRunResultThroughInspector: a matcher run run by a real worker
// keeps its whole id and a JSON result an operator can read.
func TestMatchRunResultThroughInspector(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		opt := jobstest.RedisOpt(t)
		client := asynq.NewClient(opt)
		insp := asynq.NewInspector(opt)
		t.Cleanup(func() { _ = client.Close(); _ = insp.Close() })
		logger, logs := newTestLogger()
		mux, err := jobs.NewMux(jobs.Deps{DB: bdb, Logger: logger, Metrics: jobs.NewMetrics(nil),
			Client: client, Inspector: insp, NowFunc: clocktest.Now})
		if err != nil {
			t.Fatal(err)
		}
		startServer(t, opt, mux, 2, logger)
		full := domain.Conditions{Places: domain.Places.Full(), Second: domain.WaysOfEating.Full()}
		for _, nick := range []string{"res1", "res2"} {
			if err := apply(ctx, bdb, newMember(t, bdb, nick, nil).ID, full); err != nil {
				t.Fatalf("apply: %v", err)
			}
		}
		trigger, err := jobs.NewMatchTriggerTask(domain.CategoryMeal)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(asynq.NewTask(trigger.Type, trigger.Payload), asynq.Queue(trigger.Queue)); err != nil {
			t.Fatalf("enqueue trigger: %v", err)
		}
		const id = "match:run:MEAL"
		var info *asynq.TaskInfo
		eventually(t, 30*time.Second, "the run completed and kept", func() bool {
			info, err = insp.GetTaskInfo(jobs.QueueCritical, id)
			if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
				t.Fatalf("get %s: %v\n%s", id, err, logs)
			}
			return err == nil && info.State == asynq.TaskStateCompleted
		})
		if info.ID != id {
			t.Errorf("id = %q, want %q", info.ID, id)
		}
		var got jobs.MatchRunResult
		if err := json.Unmarshal(info.Result, &got); err != nil {
			t.Fatalf("result %q: %v", info.Result, err)
		}
		want := jobs.MatchRunResult{Category: "MEAL", Waiting: 2, Matches: 1}
		if got != want {
			t.Errorf("result = %+v, want %+v", got, want)
		}
	})
}
