// Command loadping measures the latency from the commit of a ping (API →
// outbox, in one transaction) to a worker starting its task, through the
// relay's post-commit wake-up. It runs the all-in-one system in process on
// the configured database and Redis (MOIM_DATABASE_URL, MOIM_REDIS_URL; by
// default a temporary SQLite file and the in-memory Redis), sends -n pings
// one after another and prints p50/p90/p99/max of processed_at − created_at.
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
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moim/moim/cmd/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadping:", err)
		os.Exit(1)
	}
}

type ping struct {
	ID          string     `json:"id"`
	CreatedAt   time.Time  `json:"created_at"`
	ProcessedAt *time.Time `json:"processed_at"`
}

func run() error {
	n := flag.Int("n", 1000, "number of pings")
	gap := flag.Duration("gap", 2*time.Millisecond, "pause between pings (the latency of a lone ping is what is measured)")
	flag.Parse()

	tmp, err := os.MkdirTemp("", "loadping")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	const password = "loadping-admin"
	vars := map[string]string{
		"MOIM_DATABASE_URL":   os.Getenv("MOIM_DATABASE_URL"),
		"MOIM_REDIS_URL":      os.Getenv("MOIM_REDIS_URL"),
		"MOIM_HTTP_ADDR":      "127.0.0.1:0",
		"MOIM_ADMIN_PASSWORD": password,
		"MOIM_LOG_LEVEL":      "error",
	}
	if vars["MOIM_DATABASE_URL"] == "" {
		vars["MOIM_DATABASE_URL"] = "sqlite:" + filepath.Join(tmp, "moim.db")
	}
	backend := strings.SplitN(vars["MOIM_DATABASE_URL"], ":", 2)[0]
	redisKind := "in-memory"
	if vars["MOIM_REDIS_URL"] != "" {
		redisKind = "redis"
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- app.Moim(ctx, app.Env{Getenv: func(k string) string { return vars[k] }, Stdout: outW, Stderr: os.Stderr})
		outW.Close()
	}()
	base, err := apiURL(outR)
	if err != nil {
		return err
	}
	go io.Copy(io.Discard, outR)

	ids := make([]string, 0, *n)
	for i := 0; i < *n; i++ {
		var p ping
		if err := call(http.MethodPost, base+"/v1/admin/pings", password, &p); err != nil {
			return err
		}
		ids = append(ids, p.ID)
		time.Sleep(*gap)
	}
	lat := make([]time.Duration, 0, len(ids))
	deadline := time.Now().Add(60 * time.Second)
	for _, id := range ids {
		for {
			var p ping
			if err := call(http.MethodGet, base+"/v1/admin/pings/"+id, password, &p); err != nil {
				return err
			}
			if p.ProcessedAt != nil {
				lat = append(lat, p.ProcessedAt.Sub(p.CreatedAt))
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("ping %s not processed within 60s", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("pings=%d database=%s redis=%s commit→task start: p50=%v p90=%v p99=%v max=%v\n",
		len(lat), backend, redisKind, q(0.50), q(0.90), q(0.99), lat[len(lat)-1])
	return nil
}

func apiURL(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "API:"); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("moim exited before printing its API URL")
}

func call(method, url, password string, v any) error {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
