// Command loadapply measures POST /v1/random-matches: -c clients, each with
// its own members and access tokens, apply for -d against one API instance
// in process (on MOIM_DATABASE_URL and MOIM_REDIS_URL when set, else a
// temporary SQLite file and the in-memory Redis). It then runs the same
// transaction — the application and its trigger in the outbox — straight
// from Go with as many goroutines, so the ratio shows what HTTP, JSON and
// authentication cost. No relay or worker runs: only the API is measured.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
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
		fmt.Fprintln(os.Stderr, "loadapply:", err)
		os.Exit(1)
	}
}

func run() error {
	clients := flag.Int("c", 64, "concurrent clients")
	duration := flag.Duration("d", 15*time.Second, "how long each phase runs")
	perClient := flag.Int("members", 400, "members per client (each applies once per category)")
	trace := flag.Bool("trace", false, "print the count and mean time of each kind of statement of each phase")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured phases to this file")
	flag.Parse()
	ctx := context.Background()
	env, err := loadenv.Open(ctx, "loadapply")
	if err != nil {
		return err
	}
	defer env.Close()
	bdb := env.DB

	api, err := env.StartAPI()
	if err != nil {
		return err
	}
	url := api.URL + "/v1/random-matches"

	n := *clients * *perClient
	fmt.Fprintf(os.Stderr, "creating %d members with sessions...\n", 2*n)
	apiMembers, err := loadenv.Members(ctx, bdb, n, "api")
	if err != nil {
		return err
	}
	directMembers, err := loadenv.Members(ctx, bdb, n, "direct")
	if err != nil {
		return err
	}
	access, err := api.Logins(ctx, apiMembers)
	if err != nil {
		return err
	}

	var tracer *loadenv.Tracer
	if *trace {
		tracer = env.Trace()
	}
	stopProfile, err := loadenv.CPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	fmt.Fprintln(os.Stderr, "api phase...")
	transport := &http.Transport{MaxIdleConnsPerHost: *clients}
	client := &http.Client{Transport: transport}
	bodies := map[domain.Category][]byte{
		domain.CategoryMeal:  []byte(`{"category":"MEAL","places":["GAEPO","SEOCHO"],"ways_of_eating":[]}`),
		domain.CategoryStudy: []byte(`{"category":"STUDY","places":[],"study_types":["INNER_CIRCLE"]}`),
	}
	apiLat, apiRate, err := phase(*clients, *perClient, *duration, func(member int, c domain.Category) error {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[c]))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+access[member])
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("status %s: %s", resp.Status, b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("api phase: %w", err)
	}
	var apiStatements string
	if tracer != nil {
		apiStatements = tracer.Report()
	}
	fmt.Fprintln(os.Stderr, "direct phase...")
	conds := map[domain.Category]domain.Conditions{
		domain.CategoryMeal:  {Places: 3, Second: domain.WaysOfEating.Full()},
		domain.CategoryStudy: {Places: domain.Places.Full(), Second: 1},
	}
	directLat, directRate, err := phase(*clients, *perClient, *duration, func(member int, c domain.Category) error {
		now := time.Now().UTC()
		a := domain.Application{MemberID: directMembers[member], Category: c, Conditions: conds[c],
			CreatedAt: now, ExpiresAt: now.Add(30 * time.Minute)}
		return db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			if err := (db.Applications{}).Create(ctx, tx, &a); err != nil {
				return err
			}
			task, err := jobs.NewMatchTriggerTask(c)
			if err != nil {
				return err
			}
			return jobs.Enqueue(ctx, tx, task)
		})
	})
	if err != nil {
		return fmt.Errorf("direct phase: %w", err)
	}
	fmt.Printf("database=%s clients=%d duration=%v\n", env.Backend, *clients, *duration)
	fmt.Printf("POST /v1/random-matches: %.0f req/s, p50=%v p99=%v\n", apiRate, q(apiLat, 0.5), q(apiLat, 0.99))
	fmt.Printf("same transaction from Go: %.0f tx/s, p50=%v p99=%v\n", directRate, q(directLat, 0.5), q(directLat, 0.99))
	fmt.Printf("API rate / direct rate = %.0f%%\n", 100*apiRate/directRate)
	if tracer != nil {
		fmt.Print("statements of the api phase:\n" + apiStatements)
		fmt.Print("statements of the direct phase:\n" + tracer.Report())
	}
	return nil
}

// phase runs clients goroutines calling do for their own members (each
// member once per category) until d has passed, and returns the latencies
// and the rate of successful calls.
func phase(clients, perClient int, d time.Duration, do func(member int, c domain.Category) error) ([]time.Duration, float64, error) {
	var (
		mu      sync.Mutex
		lat     []time.Duration
		firstEr error
		count   atomic.Int64
		wg      sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			local := make([]time.Duration, 0, 2*perClient)
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			for _, cat := range []domain.Category{domain.CategoryMeal, domain.CategoryStudy} {
				for m := c * perClient; m < (c+1)*perClient; m++ {
					if time.Now().After(deadline) {
						return
					}
					t0 := time.Now()
					if err := do(m, cat); err != nil {
						mu.Lock()
						if firstEr == nil {
							firstEr = err
						}
						mu.Unlock()
						return
					}
					local = append(local, time.Since(t0))
					count.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return lat, float64(count.Load()) / elapsed.Seconds(), firstEr
}

func q(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[int(p*float64(len(lat)-1))].Round(10 * time.Microsecond)
}
