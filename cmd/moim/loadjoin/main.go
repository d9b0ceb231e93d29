// Command loadjoin measures POST /v1/missions/{id}/members: it opens a
// database full of missions (on MOIM_DATABASE_URL and MOIM_REDIS_URL when
// set, else a temporary SQLite file and the in-memory Redis), then -c
// clients join them with -n members, each member once, filling the
// missions one after the other (join k goes to mission k / 7, so about
// seven clients race for the seats of each mission at any time, the host
// being the eighth). It then runs the same join transaction — read, code,
// seat, membership, stake, retried while the mission moves — straight from
// Go (missiondb.Missions.JoinRetrying, which the handler calls) on missions and
// members of its own, so the ratio shows what HTTP, JSON and
// authentication cost. It prints joins per second, p50 and p99 of each.
package main

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// stake is every load mission's stake; the members get exactly one.
const stake = 100

// seats is how many members join each mission: capacity 8, the host in.
const seats = domain.MissionCapacityMax - 1

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadjoin:", err)
		os.Exit(1)
	}
}

func run() error {
	clients := flag.Int("c", 64, "concurrent clients")
	n := flag.Int("n", 7000, "joins per phase (one member each; n/7 missions per phase)")
	trace := flag.Bool("trace", false, "print the count and mean time of each kind of statement of each phase")
	flag.Parse()
	ctx := context.Background()
	env, err := loadenv.Open(ctx, "loadjoin")
	if err != nil {
		return err
	}
	defer env.Close()
	bdb := env.DB
	api, err := env.StartAPI()
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "creating %d members and %d missions...\n", 2**n, 2*((*n+seats-1)/seats))
	apiMembers, apiMissions, err := setup(ctx, bdb, *n, "japi")
	if err != nil {
		return err
	}
	directMembers, directMissions, err := setup(ctx, bdb, *n, "jdir")
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
	fmt.Fprintln(os.Stderr, "api phase...")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
	apiRes, err := phase(*clients, *n, func(k int) error {
		req, _ := http.NewRequest(http.MethodPost, api.URL+"/v1/missions/"+apiMissions[k/seats]+"/members", nil)
		req.Header.Set("Authorization", "Bearer "+access[k])
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		switch resp.StatusCode {
		case http.StatusCreated:
			return nil
		case http.StatusConflict:
			if bytes.Contains(b, []byte(`"code":"conflict"`)) {
				return errLost
			}
		}
		return fmt.Errorf("status %s: %s", resp.Status, b)
	})
	if err != nil {
		return fmt.Errorf("api phase: %w", err)
	}
	var apiStatements string
	if tracer != nil {
		apiStatements = tracer.Report()
	}
	fmt.Fprintln(os.Stderr, "direct phase...")
	directRes, err := phase(*clients, *n, func(k int) error {
		_, err := (missiondb.Missions{}).JoinRetrying(ctx, bdb, missiondb.MissionJoin{MissionID: directMissions[k/seats], MemberID: directMembers[k]}, time.Now)
		if domain.ErrorCode(err) == domain.ECONFLICT {
			return errLost
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("direct phase: %w", err)
	}
	fmt.Printf("database=%s clients=%d joins=%d missions=%d (capacity 8)\n", env.Backend, *clients, *n, 2*len(apiMissions))
	fmt.Printf("POST /v1/missions/{id}/members: %s\n", apiRes)
	fmt.Printf("same transaction from Go:       %s\n", directRes)
	fmt.Printf("API rate / direct rate = %.0f%%\n", 100*apiRes.rate/directRes.rate)
	if tracer != nil {
		fmt.Print("statements of the api phase:\n" + apiStatements)
		fmt.Print("statements of the direct phase:\n" + tracer.Report())
	}
	return nil
}

// errLost is a join that gave up on a mission that kept changing (409
// conflict): counted, not fatal.
var errLost = errors.New("lost the race")

// setup makes n members with one stake each and the missions they fill,
// hosted by a member of its own, and returns their public ids.
func setup(ctx context.Context, bdb *bun.DB, n int, prefix string) (members, missions []string, err error) {
	ids, err := loadenv.Members(ctx, bdb, n+1, prefix)
	if err != nil {
		return nil, nil, err
	}
	host, members := ids[n], ids[:n]
	count := (n + seats - 1) / seats
	if err := grant(ctx, bdb, members, stake); err != nil {
		return nil, nil, err
	}
	if err := grant(ctx, bdb, []string{host}, int64(count)*stake); err != nil {
		return nil, nil, err
	}
	now := time.Now().UTC()
	s := domain.MissionSchedule{StartsAt: now.Add(7 * 24 * time.Hour), Weeks: 2, DaysPerWeek: 5, PerDay: 1}
	missions = make([]string, count)
	for i := range missions {
		m := domain.Mission{HostID: host, Title: fmt.Sprintf("load %s %d", prefix, i), Type: domain.MissionExercise,
			Description: "a load-test mission", Stake: stake, Capacity: domain.MissionCapacityMax, Schedule: s,
			EndsAt: s.EndsAt(time.UTC), Windows: []domain.MissionWindow{{Start: 6 * 60, End: 9 * 60}}, CreatedAt: now}
		if err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			return (missiondb.Missions{}).Create(ctx, tx, &m)
		}); err != nil {
			return nil, nil, fmt.Errorf("create mission: %w", err)
		}
		missions[i] = m.ID
	}
	return members, missions, nil
}

// grant gives each member amount points, an ADJUSTMENT each.
func grant(ctx context.Context, bdb *bun.DB, members []string, amount int64) error {
	var keys []int64
	for lo := 0; lo < len(members); lo += 500 {
		var chunk []int64
		if err := bdb.NewSelect().Table("members").Column("id").
			Where("public_id IN (?)", bun.In(members[lo:min(lo+500, len(members))])).Scan(ctx, &chunk); err != nil {
			return fmt.Errorf("member keys: %w", err)
		}
		keys = append(keys, chunk...)
	}
	now := time.Now().UTC()
	return db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		for _, k := range keys {
			if _, err := (missiondb.Points{}).Post(ctx, tx, missiondb.PointPost{MemberKey: k, Amount: amount, Kind: domain.PointAdjustment,
				Key: fmt.Sprintf("load-grant:%d", k), Reason: "loadjoin", Now: now}); err != nil {
				return fmt.Errorf("grant: %w", err)
			}
		}
		return nil
	})
}

// result is one phase's figures.
type result struct {
	rate     float64 // successful joins per second
	lost     int64
	p50, p99 time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("%.0f joins/s, p50=%v p99=%v, gave up %d", r.rate, r.p50, r.p99, r.lost)
}

// phase runs clients goroutines taking joins 0..n-1 in order and returns
// the figures; any error but errLost stops it.
func phase(clients, n int, join func(k int) error) (result, error) {
	var (
		mu      sync.Mutex
		lat     []time.Duration
		firstEr error
		next    atomic.Int64
		ok      atomic.Int64
		lost    atomic.Int64
		wg      sync.WaitGroup
	)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			var local []time.Duration
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			for {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				t0 := time.Now()
				err := join(k)
				local = append(local, time.Since(t0))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, errLost):
					lost.Add(1)
				default:
					mu.Lock()
					if firstEr == nil {
						firstEr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))].Round(10 * time.Microsecond)
	}
	return result{rate: float64(ok.Load()) / elapsed.Seconds(), lost: lost.Load(), p50: q(0.5), p99: q(0.99)}, firstEr
}
