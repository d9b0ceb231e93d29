// Command loadtasks measures helper requests on MOIM_DATABASE_URL (else a
// temporary SQLite file). It seeds -helpers helpers and -tasks tasks in
// MATCHING, then (a) runs one invitation round of every task with the
// round handler from -workers goroutines and prints invitations/s and the
// SQL statements a round sends, beside a baseline measured in the same
// run: the candidate query alone, for every task, from as many
// goroutines; and the plan of the candidate query (EXPLAIN). Then (b) it
// sends -invites concurrent accepts to each of -accept-tasks tasks
// wanting -wanted helpers through the API and prints accepts/s and the
// lost version checks (retries) per accept.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/internal/loadenv"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/jobs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadtasks:", err)
		os.Exit(1)
	}
}

// params are the flags.
type params struct {
	helpers, customers, tasks, workers, size int
	acceptTasks, invites, wanted             int
}

func run() error {
	var p params
	flag.IntVar(&p.helpers, "helpers", 10000, "helpers with skills")
	flag.IntVar(&p.customers, "customers", 100, "customers the tasks belong to")
	flag.IntVar(&p.tasks, "tasks", 1000, "tasks in MATCHING for the round")
	flag.IntVar(&p.workers, "workers", 8, "goroutines running rounds (and the baseline)")
	flag.IntVar(&p.size, "size", jobs.DefaultTaskRoundSize, "helpers a round invites")
	flag.IntVar(&p.acceptTasks, "accept-tasks", 100, "tasks the accepts go to")
	flag.IntVar(&p.invites, "invites", 10, "invited helpers of each of them, all accepting at once")
	flag.IntVar(&p.wanted, "wanted", 3, "helpers each of them wants (1–10)")
	flag.Parse()
	if p.wanted < 1 || p.wanted > 10 || p.invites*p.acceptTasks > p.helpers || p.tasks < 1 || p.workers < 1 {
		return fmt.Errorf("-wanted must be 1–10, -invites × -accept-tasks at most -helpers, -tasks and -workers positive")
	}
	ctx := context.Background()
	env, err := loadenv.Open(ctx, "loadtasks")
	if err != nil {
		return err
	}
	defer env.Close()
	bdb := env.DB
	now := time.Now().UTC().Truncate(time.Second)
	fmt.Fprintf(os.Stderr, "seeding %d helpers, %d + %d tasks on %s...\n", p.helpers, p.tasks, p.acceptTasks, env.Backend)
	start := time.Now()
	w, err := seed(ctx, bdb, p, now)
	if err != nil {
		return err
	}
	// Statistics of the freshly filled tables, as autovacuum would have
	// them: without them PostgreSQL plans the candidate query for empty
	// tables.
	if err := analyze(ctx, env); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seeded in %v\n", time.Since(start).Round(time.Millisecond))

	count := &counter{}
	bdb.AddQueryHook(count)
	tracer := env.Trace()

	// (a) The baseline first, so it reads what the round reads.
	tasks := make([]*taskRef, len(w.roundTasks))
	for i, id := range w.roundTasks {
		tasks[i] = &taskRef{id: id}
	}
	base, found, err := eachTask(p.workers, tasks, func(t *taskRef) (int, error) {
		task, err := (taskdb.Tasks{}).FindByID(ctx, bdb, t.id)
		if err != nil {
			return 0, err
		}
		cands, err := (taskdb.Tasks{}).Candidates(ctx, bdb, task, p.size)
		return len(cands), err
	})
	if err != nil {
		return err
	}
	tracer.Report()
	count.reset()
	rounds := &jobs.TaskRoundHandler{DB: bdb, Params: jobs.TaskRoundParams{Size: p.size}, Logger: slog.New(slog.DiscardHandler),
		NowFunc: func() time.Time { return now }}
	elapsed, invited, err := eachTask(p.workers, tasks, func(t *taskRef) (int, error) { return rounds.Round(ctx, t.id) })
	if err != nil {
		return err
	}
	stmts := count.statements.Load()
	fmt.Printf("round: tasks=%d helpers=%d size=%d workers=%d database=%s: %v, %d invitations, %.0f invitations/s, %.0f rounds/s, %.1f statements a round\n",
		p.tasks, p.helpers, p.size, p.workers, env.Backend, elapsed.Round(time.Millisecond), invited,
		float64(invited)/elapsed.Seconds(), float64(p.tasks)/elapsed.Seconds(), float64(stmts)/float64(p.tasks))
	fmt.Print("statements of the round:\n" + tracer.Report())
	fmt.Printf("baseline (the task read and the candidate query alone, from Go): %v, %.0f tasks/s, %d candidates found; the round at %.0f %% of it\n",
		base.Round(time.Millisecond), float64(p.tasks)/base.Seconds(), found, 100*base.Seconds()/elapsed.Seconds())
	if invited != found {
		return fmt.Errorf("the round invited %d, the candidate query found %d", invited, found)
	}
	if err := explain(ctx, env, w.roundTasks[0], p.size); err != nil {
		return err
	}

	// (b) The accepts, through the API.
	count.reset()
	api, err := env.StartAPI()
	if err != nil {
		return err
	}
	var who []string
	var paths []string
	for i, idx := range w.invited {
		for _, h := range idx {
			who = append(who, w.helpers[h])
			paths = append(paths, api.URL+"/v1/tasks/"+w.acceptTasks[i]+"/invitations/mine/accept")
		}
	}
	tokens, err := api.Logins(ctx, who)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(paths)}}
	var ok, full, other atomic.Int64
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for i := range paths {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, paths[i], nil)
			req.Header.Set("Authorization", "Bearer "+tokens[i])
			<-ready
			resp, err := client.Do(req)
			if err != nil {
				other.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				ok.Add(1)
			case resp.StatusCode == http.StatusConflict && strings.Contains(string(b), `"task_full"`):
				full.Add(1)
			default:
				other.Add(1)
				fmt.Fprintf(os.Stderr, "accept: %d %s\n", resp.StatusCode, b)
			}
		})
	}
	start = time.Now()
	close(ready)
	wg.Wait()
	elapsed = time.Since(start)
	n := len(paths)
	tries, wins := count.seatTries.Load(), count.seatWins.Load()
	fmt.Printf("accepts: %d at once over %d tasks wanting %d: %v, %.0f accepts/s; %d matched, %d task_full, %d other; %d seat writes, %d lost the version check: %.2f retries per accept\n",
		n, p.acceptTasks, p.wanted, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), ok.Load(), full.Load(), other.Load(),
		tries, tries-wins, float64(tries-wins)/float64(n))
	if want := int64(p.acceptTasks * min(p.wanted, p.invites)); ok.Load() != want || other.Load() != 0 {
		return fmt.Errorf("%d matched and %d other answers; want %d matched and none other", ok.Load(), other.Load(), want)
	}
	return nil
}

type taskRef struct{ id string }

// eachTask calls f for every task from workers goroutines and returns the
// time it took and the sum of f's results.
func eachTask(workers int, tasks []*taskRef, f func(*taskRef) (int, error)) (time.Duration, int, error) {
	work := make(chan *taskRef)
	var total atomic.Int64
	var first error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for t := range work {
				n, err := f(t)
				total.Add(int64(n))
				if err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, t := range tasks {
		work <- t
	}
	close(work)
	wg.Wait()
	return time.Since(start), int(total.Load()), first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// counter counts statements, and the accepts' seat writes (the task's
// version-checked helper_count update) and how many of them won.
type counter struct {
	statements, seatTries, seatWins atomic.Int64
}

func (c *counter) reset() {
	c.statements.Store(0)
	c.seatTries.Store(0)
	c.seatWins.Store(0)
}

// BeforeQuery implements bun.QueryHook.
func (*counter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

// AfterQuery implements bun.QueryHook.
func (c *counter) AfterQuery(_ context.Context, ev *bun.QueryEvent) {
	c.statements.Add(1)
	if ev.Err != nil || !strings.HasPrefix(ev.Query, "UPDATE") || !strings.Contains(ev.Query, "helper_count = helper_count + 1") {
		return
	}
	c.seatTries.Add(1)
	if ev.Result != nil {
		if n, err := ev.Result.RowsAffected(); err == nil && n == 1 {
			c.seatWins.Add(1)
		}
	}
}

// recorder keeps the last statement sent.
type recorder struct{ last string }

func (*recorder) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (r *recorder) AfterQuery(_ context.Context, ev *bun.QueryEvent)                 { r.last = ev.Query }

// explain prints the plan of the candidate query of task id, as the
// store sends it.
func explain(ctx context.Context, env *loadenv.Env, id string, size int) error {
	rec := &recorder{}
	rdb := env.DB.WithQueryHook(rec)
	task, err := (taskdb.Tasks{}).FindByID(ctx, rdb, id)
	if err != nil {
		return err
	}
	if _, err := (taskdb.Tasks{}).Candidates(ctx, rdb, task, size); err != nil {
		return err
	}
	prefix := map[string]string{"postgres": "EXPLAIN ANALYZE ", "sqlite": "EXPLAIN QUERY PLAN "}[env.Backend]
	if prefix == "" {
		prefix = "EXPLAIN "
	}
	rows, err := env.DB.DB.QueryContext(ctx, prefix+rec.last)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	fmt.Println("plan of the candidate query (" + strings.TrimSpace(prefix) + "):")
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		var parts []string
		for _, v := range vals {
			if v.Valid {
				parts = append(parts, v.String)
			}
		}
		fmt.Println("  " + strings.Join(parts, " | "))
	}
	return rows.Err()
}

// analyze refreshes the planner's statistics of the seeded tables.
func analyze(ctx context.Context, env *loadenv.Env) error {
	tables := "members, member_possible_work, member_abilities, helper_stats, tasks, task_abilities, task_invitations"
	q := map[string]string{"postgres": "ANALYZE", "mysql": "ANALYZE TABLE " + tables, "sqlite": "ANALYZE"}[env.Backend]
	if q == "" {
		return nil
	}
	if _, err := env.DB.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}
