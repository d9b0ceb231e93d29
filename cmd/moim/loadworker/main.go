// Command loadworker measures what moim's worker adds to a task: it queues
// -n tasks whose handler does nothing and drains them twice per round, once
// with a bare asynq server (asynq's defaults, no middleware) and once with
// the worker's own server and middleware (jobs.NewServer, request ids,
// logging, metrics, panic recovery; a JSON logger at info as in
// production), both with -c workers on the same Redis (MOIM_REDIS_URL, else
// an in-memory one). It prints tasks/s of each, best of -rounds, and the
// worker's share of the bare rate.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moim/moim/jobs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadworker:", err)
		os.Exit(1)
	}
}

// taskType is the no-op task; its queue is the worker's default one.
const taskType = "load:noop"

func run() error {
	n := flag.Int("n", 20000, "tasks per drain")
	c := flag.Int("c", 8, "worker concurrency (both servers)")
	rounds := flag.Int("rounds", 3, "drains of each server; the best is printed")
	flag.Parse()

	redisKind := "real"
	opt := asynq.RedisConnOpt(nil)
	if url := os.Getenv("MOIM_REDIS_URL"); url != "" {
		o, err := asynq.ParseRedisURI(url)
		if err != nil {
			return fmt.Errorf("MOIM_REDIS_URL: %w", err)
		}
		opt = o
	} else {
		mr, err := miniredis.Run()
		if err != nil {
			return err
		}
		defer mr.Close()
		opt = asynq.RedisClientOpt{Addr: mr.Addr()}
		redisKind = "in-memory"
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()

	noop := asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })
	bare := func() (*asynq.Server, asynq.Handler) {
		srv := asynq.NewServer(opt, asynq.Config{Concurrency: *c, Queues: map[string]int{jobs.QueueDefault: 1},
			Logger: quietLogger{}, LogLevel: asynq.ErrorLevel})
		mux := asynq.NewServeMux()
		mux.Handle(taskType, noop)
		return srv, mux
	}
	worker := func() (*asynq.Server, asynq.Handler) {
		logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
		srv := jobs.NewServer(jobs.ServerParams{Redis: opt, Concurrency: *c, ShutdownTimeout: 10 * time.Second, Logger: logger})
		mux := asynq.NewServeMux()
		mux.Use(jobs.Logging(logger), jobs.Instrument(jobs.NewMetrics(prometheus.NewRegistry())), jobs.Recover(logger))
		mux.Handle(taskType, noop)
		return srv, mux
	}

	var bestBare, bestWorker float64
	for r := range *rounds {
		for _, s := range []struct {
			name string
			make func() (*asynq.Server, asynq.Handler)
			best *float64
		}{{"bare asynq", bare, &bestBare}, {"moim worker", worker, &bestWorker}} {
			rate, err := drain(client, insp, s.make, *n)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d: %s %.0f tasks/s\n", r+1, s.name, rate)
			*s.best = max(*s.best, rate)
		}
	}
	fmt.Printf("trivial task, %d tasks, concurrency %d, %s Redis: moim worker %.0f tasks/s, bare asynq server %.0f tasks/s (best of %d): %.0f %% of bare\n",
		*n, *c, redisKind, bestWorker, bestBare, *rounds, 100*bestWorker/bestBare)
	return nil
}

// drain queues n no-op tasks, then starts the server newServer makes and
// returns the rate at which it empties the queue.
func drain(client *asynq.Client, insp *asynq.Inspector, newServer func() (*asynq.Server, asynq.Handler), n int) (float64, error) {
	for range n {
		if _, err := client.Enqueue(asynq.NewTask(taskType, nil), asynq.Queue(jobs.QueueDefault), asynq.MaxRetry(0)); err != nil {
			return 0, err
		}
	}
	srv, h := newServer()
	start := time.Now()
	if err := srv.Start(h); err != nil {
		return 0, err
	}
	defer srv.Shutdown()
	deadline := start.Add(10 * time.Minute)
	for {
		q, err := insp.GetQueueInfo(jobs.QueueDefault)
		if err != nil {
			return 0, err
		}
		if q.Pending+q.Active+q.Retry == 0 {
			return float64(n) / time.Since(start).Seconds(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("queue not drained after 10 minutes: %+v", q)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quietLogger drops asynq's own log lines below error.
type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(args ...any) {
	fmt.Fprintln(os.Stderr, args...)
}
func (quietLogger) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, args...)
	os.Exit(1)
}
