// Command loadsse measures the live event stream: it starts one API
// instance in process (on MOIM_DATABASE_URL and MOIM_REDIS_URL when set,
// else a temporary SQLite file and the in-memory Redis), connects -n
// clients to GET /v1/events, each as its own member, publishes one
// notification per member the way a worker does, and prints p50/p99/max of
// the time from publish to receipt, and memory per open stream.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moim/moim/cmd/internal/loadenv"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadsse:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 1000, "concurrent event streams (one member each)")
	flag.Parse()
	ctx := context.Background()

	env, err := loadenv.Open(ctx, "loadsse")
	if err != nil {
		return err
	}
	defer env.Close()
	rdb := env.Redis

	api, err := env.StartAPI()
	if err != nil {
		return err
	}
	base := api.URL

	members, err := loadenv.Members(ctx, env.DB, *n, "sse")
	if err != nil {
		return err
	}
	access, err := api.Logins(ctx, members)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *n, MaxConnsPerHost: 0}}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	type result struct {
		member string
		lat    time.Duration
		err    error
	}
	results := make(chan result, *n)
	connected := make(chan error, *n)
	bodies := make([]io.Closer, 0, *n)
	var bmu sync.Mutex
	for i := range *n {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/events", nil)
			req.Header.Set("Authorization", "Bearer "+access[i])
			resp, err := client.Do(req)
			if err != nil {
				connected <- err
				return
			}
			bmu.Lock()
			bodies = append(bodies, resp.Body)
			bmu.Unlock()
			if resp.StatusCode != http.StatusOK {
				connected <- fmt.Errorf("status %s", resp.Status)
				return
			}
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() { // the "connected" event ends with a blank line
				if sc.Text() == "" {
					break
				}
			}
			connected <- nil
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				var nr struct {
					CreatedAt time.Time `json:"created_at"`
				}
				err := json.Unmarshal([]byte(data), &nr)
				results <- result{member: members[i], lat: time.Since(nr.CreatedAt), err: err}
				return
			}
			results <- result{member: members[i], err: fmt.Errorf("stream ended: %v", sc.Err())}
		}()
	}
	for range *n {
		if err := <-connected; err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perStream := float64(int64(after.HeapInuse+after.StackInuse)-int64(before.HeapInuse+before.StackInuse)) / float64(*n)
	goroutinesPer := float64(runtime.NumGoroutine()-goroutinesBefore) / float64(*n)

	pub := jobs.NewPublisher(rdb)
	start := time.Now()
	for _, m := range members {
		// created_at carries the publish instant; the client subtracts it
		// from its receipt time (one process, one clock).
		if err := pub.Publish(ctx, domain.Notification{ID: db.NewPublicID(), MemberID: m,
			Type: domain.NotifyCommentOnMyRoom, CreatedAt: time.Now()}); err != nil {
			return err
		}
	}
	publishTime := time.Since(start)
	lat := make([]time.Duration, 0, *n)
	timeout := time.After(60 * time.Second)
	for range *n {
		select {
		case r := <-results:
			if r.err != nil {
				return fmt.Errorf("member %s: %w", r.member, r.err)
			}
			lat = append(lat, r.lat)
		case <-timeout:
			return fmt.Errorf("only %d of %d events arrived within 60s", len(lat), *n)
		}
	}
	bmu.Lock()
	for _, b := range bodies {
		b.Close()
	}
	bmu.Unlock()
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("streams=%d database=%s publish of all=%v publish→receipt: p50=%v p90=%v p99=%v max=%v\n",
		*n, env.Backend, publishTime.Round(time.Millisecond), q(0.5), q(0.9), q(0.99), lat[len(lat)-1])
	fmt.Printf("memory per open stream (server and client ends, one process): %.1f KiB, %.1f goroutines\n",
		perStream/1024, goroutinesPer)
	return nil
}
