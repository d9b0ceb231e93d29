package httpapi_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
)

// TestLoginLimits: strangers guessing from many IPs never lock the owner
// out; one IP guessing is slowed down; only wrong passwords count.
func TestLoginLimits(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		clock := &roomClock{now: roomsStart}
		e := newEnv(t, bdb)
		s := newServer(t, e, func(d *httpapi.Deps) {
			d.NowFunc = clock.Now
			d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			d.DeviceKey = []byte("test-device-key-0123456789-0123456789")
			d.RateLimits = httpapi.RateLimits{
				LoginFailuresPerAccount: httpapi.Rate{Requests: 3, Window: time.Hour},
				LoginFailuresPerIP:      httpapi.Rate{Requests: 5, Window: time.Hour},
				LoginDelay:              time.Second,
				LoginMaxDelay:           8 * time.Second,
				DeviceTTL:               24 * time.Hour,
			}
		}, nil)
		s.signup(t, "mina@example.com", "mina")
		login := func(ip, password, cookie string) (*http.Response, []byte) {
			t.Helper()
			h := map[string]string{"X-Forwarded-For": ip}
			if cookie != "" {
				h["Cookie"] = "moim_device=" + cookie
			}
			return s.do(t, request{method: http.MethodPost, path: "/v1/auth/login", header: h,
				body: fmt.Sprintf(`{"email":"mina@example.com","password":%q}`, password)})
		}
		const good, bad = "correct horse battery", "wrong password"
		wantStatus := func(what string, resp *http.Response, body []byte, want int) {
			t.Helper()
			if resp.StatusCode != want {
				t.Fatalf("%s: status = %d, want %d (body %s)", what, resp.StatusCode, want, body)
			}
		}
		retryAfter := func(resp *http.Response) time.Duration {
			t.Helper()
			n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || n <= 0 {
				t.Fatalf("Retry-After = %q", resp.Header.Get("Retry-After"))
			}
			return time.Duration(n) * time.Second
		}

		// The owner logs in at home: that IP and this device become known.
		resp, body := login("192.0.2.10", good, "")
		wantStatus("owner at home", resp, body, http.StatusOK)
		device := findCookie(t, resp, "moim_device").Value

		// Successes do not count: many in a row from a fresh IP pass.
		for i := range 6 {
			resp, body := login("192.0.2.20", good, "")
			wantStatus(fmt.Sprintf("success %d", i), resp, body, http.StatusOK)
		}

		// A stranger guesses from many IPs, one guess each: the first three
		// pass at full speed, then the unknown class must wait.
		for i := range 3 {
			resp, body := login(fmt.Sprintf("198.51.100.%d", i+1), bad, "")
			wantStatus(fmt.Sprintf("guess %d", i), resp, body, http.StatusUnauthorized)
		}
		resp, body = login("198.51.100.50", bad, "")
		checkError(t, resp, body, http.StatusTooManyRequests, "rate_limited", "")
		if d := retryAfter(resp); d != time.Second {
			t.Errorf("first wait = %s, want 1s", d)
		}
		// The owner is not locked out: by device cookie from anywhere, and
		// from the IP of an earlier session without a cookie.
		resp, body = login("203.0.113.7", good, device)
		wantStatus("owner's device from a new IP", resp, body, http.StatusOK)
		resp, body = login("192.0.2.10", good, "")
		wantStatus("owner from a known IP", resp, body, http.StatusOK)
		// A forged or foreign cookie is no known device.
		resp, body = login("198.51.100.51", good, device+"x")
		checkError(t, resp, body, http.StatusTooManyRequests, "rate_limited", "")

		// The waits double per failure up to the cap: 1s, 2s, 4s, 8s, 8s.
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
			clock.Advance(want)
			resp, body := login(fmt.Sprintf("198.51.100.%d", 60+i), bad, "")
			wantStatus(fmt.Sprintf("guess after %s", want), resp, body, http.StatusUnauthorized)
			resp, body = login(fmt.Sprintf("198.51.100.%d", 80+i), bad, "")
			checkError(t, resp, body, http.StatusTooManyRequests, "rate_limited", "")
			if i < 4 {
				if got, next := retryAfter(resp), 2*want; got != min(next, 8*time.Second) {
					t.Errorf("wait after guess %d = %s, want %s", i, got, min(next, 8*time.Second))
				}
			}
		}
		// Once the stranger stops, the owner on a new device and IP gets in
		// after at most the cap.
		clock.Advance(8 * time.Second)
		resp, body = login("203.0.113.99", good, "")
		wantStatus("owner from a fresh IP after the cap", resp, body, http.StatusOK)

		// One IP guessing at many addresses: five failures, then it waits.
		for i := range 5 {
			resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
				header: map[string]string{"X-Forwarded-For": "198.51.100.200"},
				body:   fmt.Sprintf(`{"email":"user%d@example.com","password":"x"}`, i)})
			wantStatus(fmt.Sprintf("spray %d", i), resp, body, http.StatusUnauthorized)
		}
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
			header: map[string]string{"X-Forwarded-For": "198.51.100.200"},
			body:   `{"email":"user9@example.com","password":"x"}`})
		checkError(t, resp, body, http.StatusTooManyRequests, "rate_limited", "")
		// The owner's device on that IP is not held back by it.
		resp, body = login("198.51.100.200", good, device)
		wantStatus("owner's device on the sprayer's IP", resp, body, http.StatusOK)
	})
}
