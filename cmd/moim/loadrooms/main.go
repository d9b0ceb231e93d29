// Command loadrooms measures GET /v1/rooms: it opens -rooms rooms (on
// MOIM_DATABASE_URL and MOIM_REDIS_URL when set, else a temporary SQLite
// file and the in-memory Redis), then -c clients, each logged in, read the
// first page of the list under a few filters for -d, first against an API
// instance with the 5 s list cache, then against one without it, and it
// prints requests per second, p50 and p99 of each and their ratio.
package main

import (
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
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/cmd/internal/loadenv"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadrooms:", err)
		os.Exit(1)
	}
}

// queries are the lists the clients read, in turn: the first page under
// the filters a lobby screen offers.
var queries = []string{
	"", "?category=MEAL", "?category=STUDY", "?category=RUN", "?completed=false",
	"?place=GAEPO", "?category=MEAL&place=SEOCHO", "?limit=50",
}

func run() error {
	clients := flag.Int("c", 64, "concurrent clients")
	duration := flag.Duration("d", 15*time.Second, "how long each phase runs")
	rooms := flag.Int("rooms", 2000, "rooms in the list")
	ttl := flag.Duration("ttl", 5*time.Second, "list cache TTL of the cached phase")
	flag.Parse()
	ctx := context.Background()
	env, err := loadenv.Open(ctx, "loadrooms")
	if err != nil {
		return err
	}
	defer env.Close()

	cached, err := env.StartAPIWith(func(d *httpapi.Deps) { d.RoomListCacheTTL = *ttl })
	if err != nil {
		return err
	}
	direct, err := env.StartAPIWith(func(d *httpapi.Deps) { d.RoomListCacheTTL = 0 })
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "opening %d rooms...\n", *rooms)
	if err := seed(ctx, env.DB, *rooms); err != nil {
		return err
	}
	members, err := loadenv.Members(ctx, env.DB, *clients, "reader")
	if err != nil {
		return err
	}
	// Fresh statistics, as autovacuum would gather after a bulk load: with
	// none the planner takes the table for empty and sorts every row.
	analyze := "ANALYZE"
	if env.DB.Dialect().Name() == dialect.MySQL {
		analyze = "ANALYZE TABLE rooms, members, matches"
	}
	if _, err := env.DB.ExecContext(ctx, analyze); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	// Both instances share the key and the session store.
	tokens, err := cached.Logins(ctx, members)
	if err != nil {
		return err
	}

	transport := &http.Transport{MaxIdleConnsPerHost: *clients}
	client := &http.Client{Transport: transport}
	results := make(map[string]result, 2)
	for _, p := range []struct {
		name string
		api  *loadenv.API
	}{{"cached", cached}, {"uncached", direct}} {
		fmt.Fprintf(os.Stderr, "%s phase...\n", p.name)
		res, err := phase(client, p.api.URL, tokens, *duration)
		if err != nil {
			return fmt.Errorf("%s phase: %w", p.name, err)
		}
		results[p.name] = res
		fmt.Printf("GET /v1/rooms %-8s clients=%d rooms=%d database=%s: %.0f req/s, p50 %v, p99 %v, cache hits %.1f%%\n",
			p.name, *clients, *rooms, env.Backend, res.rate, res.p50, res.p99, 100*res.hitRatio)
	}
	fmt.Printf("cached/uncached throughput ratio: %.2f\n", results["cached"].rate/results["uncached"].rate)
	return nil
}

// seed opens n rooms of every category, one host, starting over the next
// days.
func seed(ctx context.Context, bdb *bun.DB, n int) error {
	hosts, err := loadenv.Members(ctx, bdb, 1, "host")
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	cats := []domain.Category{domain.CategoryMeal, domain.CategoryStudy, domain.CategoryRun}
	const chunk = 500
	for lo := 0; lo < n; lo += chunk {
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			for i := lo; i < min(lo+chunk, n); i++ {
				r := &domain.Room{HostID: hosts[0], Category: cats[i%3], Title: fmt.Sprintf("room %d", i),
					Body: "같이 해요", Place: "개포", StartsAt: now.Add(time.Duration(24+i%72) * time.Hour),
					Capacity: 2 + i%19, Conditions: domain.RoomConditions{Places: domain.Mask(1 + i%7)}, CreatedAt: now}
				if err := (db.Rooms{}).Create(ctx, tx, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

type result struct {
	rate, hitRatio float64
	p50, p99       time.Duration
}

// phase has each client read the list in a loop until d has passed.
func phase(client *http.Client, base string, tokens []string, d time.Duration) (result, error) {
	var (
		mu       sync.Mutex
		lat      []time.Duration
		firstErr error
		count    atomic.Int64
		hits     atomic.Int64
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for c, token := range tokens {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			for i := c; time.Now().Before(deadline); i++ {
				req, _ := http.NewRequest(http.MethodGet, base+"/v1/rooms"+queries[i%len(queries)], nil)
				req.Header.Set("Authorization", "Bearer "+token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
				count.Add(1)
				if resp.Header.Get("X-Cache") == "hit" {
					hits.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return result{}, firstErr
	}
	slices.Sort(lat)
	n := count.Load()
	return result{
		rate: float64(n) / elapsed.Seconds(), hitRatio: float64(hits.Load()) / float64(n),
		p50: lat[len(lat)/2], p99: lat[len(lat)*99/100],
	}, firstErr
}
