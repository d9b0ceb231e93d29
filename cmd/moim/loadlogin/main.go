// Command loadlogin measures the login path under brute force: -attackers
// clients, each from its own address (X-Forwarded-For through a trusted
// proxy), guess the owner's password as fast as the API answers for -d,
// while the owner logs in every -every, from a known device (the cookie of
// an earlier login) and from a fresh address. It prints the guesses the API
// checked and refused per second, and the owner's success rate and latency,
// beside a baseline measured in the same run: password logins per second
// with the login limits off (argon2id is the ceiling of a checked attempt).
// On MOIM_DATABASE_URL / MOIM_REDIS_URL when set, else SQLite and an
// in-memory Redis.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/cmd/internal/loadenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadlogin:", err)
		os.Exit(1)
	}
}

const (
	password = "the owner's real password"
	ownerIP  = "10.0.0.1"
)

func run() error {
	attackers := flag.Int("attackers", 100, "guessing clients, one address each")
	d := flag.Duration("d", 15*time.Second, "how long the attack lasts")
	every := flag.Duration("every", 250*time.Millisecond, "how often the owner logs in")
	flag.Parse()
	ctx := context.Background()
	env, err := loadenv.Open(ctx, "loadlogin")
	if err != nil {
		return err
	}
	defer env.Close()

	// Baseline: the same login with no limits, from 8 clients.
	open, err := env.StartAPIWith(func(deps *httpapi.Deps) {})
	if err != nil {
		return err
	}
	baseEmail, err := signup(open.URL, "base")
	if err != nil {
		return err
	}
	baseRate := loginRate(open.URL, baseEmail, 8, 5*time.Second)

	limited, err := env.StartAPIWith(func(deps *httpapi.Deps) {
		deps.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		deps.DeviceKey = []byte(strings.Repeat("d", 32))
		deps.RateLimits = httpapi.RateLimits{
			LoginFailuresPerAccount: httpapi.Rate{Requests: 5, Window: time.Hour},
			LoginFailuresPerIP:      httpapi.Rate{Requests: 20, Window: time.Hour},
			DeviceTTL:               90 * 24 * time.Hour,
		}
	})
	if err != nil {
		return err
	}
	email, err := signup(limited.URL, "owner")
	if err != nil {
		return err
	}
	// The owner's earlier login: a known address, and the device cookie.
	status, device, _ := login(limited.URL, email, password, ownerIP, "")
	if status != http.StatusOK || device == "" {
		return fmt.Errorf("owner's first login: status %d, device cookie %q", status, device)
	}

	var checked, refused, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range *attackers {
		ip := fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch s, _, _ := login(limited.URL, email, "guess", ip, ""); s {
				case http.StatusUnauthorized:
					checked.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	var known, fresh []time.Duration
	var knownOK, freshOK int
	start := time.Now()
	for time.Since(start) < *d {
		s, _, took := login(limited.URL, email, password, "10.2.0.1", device)
		known = append(known, took)
		if s == http.StatusOK {
			knownOK++
		}
		s, _, took = login(limited.URL, email, password, fmt.Sprintf("10.3.%d.%d", len(fresh)/250, len(fresh)%250+1), "")
		fresh = append(fresh, took)
		if s == http.StatusOK {
			freshOK++
		}
		time.Sleep(*every)
	}
	close(stop)
	wg.Wait()
	secs := time.Since(start).Seconds()

	fmt.Printf("brute force, %d addresses for %v on %s: %.1f guesses/s checked, %.0f/s refused with 429 (%d other answers)\n",
		*attackers, d.Round(time.Second), env.Backend, float64(checked.Load())/secs, float64(refused.Load())/secs, other.Load())
	fmt.Printf("owner from a known device, new address: %d of %d logins succeeded, p50 %v, p99 %v\n",
		knownOK, len(known), pct(known, 50), pct(known, 99))
	fmt.Printf("owner from a fresh address, no cookie: %d of %d logins succeeded, p50 %v\n",
		freshOK, len(fresh), pct(fresh, 50))
	fmt.Printf("baseline (limits off, 8 clients): %.1f password logins/s; guesses checked under attack: %.2f %% of it\n",
		baseRate, 100*float64(checked.Load())/secs/baseRate)
	return nil
}

// signup creates a member with the password and returns its e-mail.
func signup(base, name string) (string, error) {
	email := fmt.Sprintf("%s-%d@example.com", name, time.Now().UnixNano())
	body := fmt.Sprintf(`{"email":%q,"password":%q,"nickname":%q}`, email, password, fmt.Sprintf("%s%d", name, time.Now().UnixNano()%100000))
	resp, err := http.Post(base+"/v1/auth/signup", "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("sign-up: %d %s", resp.StatusCode, b)
	}
	return email, nil
}

// login tries the password as a client at ip with the device cookie (if
// any), and returns the status, the device cookie it was given and the
// time the answer took.
func login(base, email, pw, ip, device string) (int, string, time.Duration) {
	body := fmt.Sprintf(`{"email":%q,"password":%q}`, email, pw)
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/auth/login", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	if device != "" {
		req.Header.Set("Cookie", device)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, "", took
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == "moim_device" {
			cookie = c.Name + "=" + c.Value
		}
	}
	return resp.StatusCode, cookie, took
}

// loginRate is how many successful logins per second clients clients
// make in d.
func loginRate(base, email string, clients int, d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for time.Since(start) < d {
				if s, _, _ := login(base, email, password, "", ""); s == http.StatusOK {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// pct is the p-th percentile of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Millisecond)
}
