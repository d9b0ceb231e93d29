package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/httprate"
	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/domain"
)

// Rate is a request limit: at most Requests in any Window (a sliding window
// over two fixed ones, as httprate counts). Requests 0 means no limit.
type Rate struct {
	Requests int
	Window   time.Duration
}

// RateLimits are the limits on the unauthenticated auth endpoints.
type RateLimits struct {
	SignupPerIP  Rate
	LoginPerIP   Rate
	RefreshPerIP Rate
	// LoginFailuresPerAccount is how many wrong passwords an e-mail address
	// takes at full speed from each trust class (README "Login limits");
	// its Window is how long the count lasts after the last attempt.
	LoginFailuresPerAccount Rate
	// LoginFailuresPerIP is the same for a client IP over all addresses.
	LoginFailuresPerIP Rate
	// LoginDelay is the wait after the free failures, doubled with each
	// further one up to LoginMaxDelay. Zero means DefaultLoginDelay and
	// DefaultLoginMaxDelay.
	LoginDelay, LoginMaxDelay time.Duration
	// DeviceTTL is how long a successful login marks the client as a known
	// device of the member; 0 sets no cookie.
	DeviceTTL time.Duration
}

// Defaults of RateLimits.LoginDelay and LoginMaxDelay.
const (
	DefaultLoginDelay    = time.Second
	DefaultLoginMaxDelay = 5 * time.Minute
)

// rateLimitPrefix namespaces the counters in Redis.
const rateLimitPrefix = "moim:ratelimit:"

// redisCounter is an httprate.LimitCounter in Redis, so every API instance
// counts against the same limit. httprate's interface carries no context,
// so each call gets its own short deadline.
//
// A Redis failure lets the request through (and is logged): the limits slow
// down guessing, and refusing every login because a counter cannot be read
// would turn a cache outage into a full one.
type redisCounter struct {
	rdb    redis.UniversalClient
	name   string
	window time.Duration
	logger *slog.Logger
}

// counterTimeout bounds one counter round trip. It is short: httprate
// holds one lock per limit across the calls, so a slow Redis would queue
// every login of the instance behind it.
const counterTimeout = 200 * time.Millisecond

func (c *redisCounter) Config(_ int, window time.Duration) { c.window = window }

func (c *redisCounter) key(key string, window time.Time) string {
	return rateLimitPrefix + c.name + ":" + key + ":" + strconv.FormatInt(window.Unix(), 10)
}

func (c *redisCounter) Increment(key string, window time.Time) error {
	return c.IncrementBy(key, window, 1)
}

func (c *redisCounter) IncrementBy(key string, window time.Time, amount int) error {
	ctx, cancel := context.WithTimeout(context.Background(), counterTimeout)
	defer cancel()
	k := c.key(key, window)
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.IncrBy(ctx, k, int64(amount))
		// The previous window is read until the end of the current one.
		p.PExpire(ctx, k, 2*c.window+time.Second)
		return nil
	})
	if err != nil {
		c.logger.Warn("rate limit counter unavailable", slog.String("limit", c.name), slog.Any("err", err))
	}
	return nil
}

func (c *redisCounter) Get(key string, current, previous time.Time) (int, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), counterTimeout)
	defer cancel()
	vals, err := c.rdb.MGet(ctx, c.key(key, current), c.key(key, previous)).Result()
	if err != nil {
		c.logger.Warn("rate limit counter unavailable", slog.String("limit", c.name), slog.Any("err", err))
		return 0, 0, nil
	}
	return counterValue(vals[0]), counterValue(vals[1]), nil
}

func counterValue(v any) int {
	s, ok := v.(string)
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(s)
	return n
}

// limiter is one named limit; nil means unlimited.
type limiter struct {
	rl *httprate.RateLimiter
}

// newLimiter returns the limiter for rate, or nil when rate is off.
func (s *server) newLimiter(name string, rate Rate) *limiter {
	if rate.Requests <= 0 {
		return nil
	}
	c := &redisCounter{rdb: s.redis, name: name, window: rate.Window, logger: s.logger}
	return &limiter{rl: httprate.NewRateLimiter(rate.Requests, rate.Window, httprate.WithLimitCounter(c))}
}

// allow counts one request under key and reports whether it is within the
// limit; when it is not, the 429 has been written (with Retry-After).
func (s *server) allow(l *limiter, w http.ResponseWriter, r *http.Request, key string) bool {
	if l == nil {
		return true
	}
	if l.rl.OnLimit(w, r, key) {
		s.writeError(w, r, domain.Errorf(codeRateLimited, "Too many requests; try again later."))
		return false
	}
	return true
}

// limitByIP is middleware applying l per client IP (an IPv6 client counts
// by its /64, which it controls whole).
func (s *server) limitByIP(l *limiter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if l == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.allow(l, w, r, "ip:"+httprate.CanonicalizeIP(clientIP(r.Context()))) {
				next.ServeHTTP(w, r)
			}
		})
	}
}

// emailKey is the rate-limit key of an e-mail address: hashed, so addresses
// do not sit in Redis key names.
func emailKey(email string) string {
	sum := sha256.Sum256([]byte(email))
	return "email:" + hex.EncodeToString(sum[:16])
}
