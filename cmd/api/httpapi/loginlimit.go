package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/httprate"
	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/db"
)

// The login limits (README "Login limits"). Only attempts whose password
// was checked and found wrong count; each counter allows some failures at
// full speed, then makes every further attempt wait for a delay that
// doubles with each failure up to a cap, so guessing slows down but a
// counter never locks anyone out for longer than the cap. An account has
// one counter per trust class, so strangers fill only their own:
//
//   - device: the request carries a known-device cookie of the member, set
//     by an earlier successful login on that browser or app;
//   - ip: the client IP is one a session of the member was last used from;
//   - unknown: anything else, and every attempt on an unknown address.
//
// Besides, each client IP has a counter over all accounts (sprayers), which
// a known device skips.

// deviceCookie names the known-device cookie; it goes only to login.
const (
	deviceCookie     = "moim_device"
	deviceCookiePath = "/v1/auth/login"
)

// loginLimitPrefix namespaces the failure counters in Redis.
const loginLimitPrefix = "moim:login:"

// loginTrust is how well a login attempt's origin is known to the account.
type loginTrust int

const (
	trustUnknown loginTrust = iota
	trustIP
	trustDevice
)

func (t loginTrust) String() string { return [...]string{"unknown", "ip", "device"}[t] }

// admitScript admits an attempt on a failure counter, a hash of f (the
// failures, with admitted attempts still running counted in advance) and n
// (the Unix ms before which no further attempt is admitted). It returns 0
// when admitted, otherwise the ms left to wait. Counting in advance makes
// admission atomic: a burst of concurrent attempts cannot all slip in
// before the first failure is recorded. ARGV: now ms, free failures, first
// delay ms, cap ms, lifetime ms of the counter after its last attempt.
var admitScript = redis.NewScript(`
local now, free = tonumber(ARGV[1]), tonumber(ARGV[2])
local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
if f >= free then
  local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
  if now < n then return n - now end
end
f = redis.call('HINCRBY', KEYS[1], 'f', 1)
if f >= free then
  local d, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
  for i = 1, f - free do
    if d >= cap then break end
    d = d * 2
  end
  if d > cap then d = cap end
  redis.call('HSET', KEYS[1], 'n', string.format('%d', now + d))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0
`)

// releaseScript takes back an admitted attempt that did not fail.
var releaseScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HINCRBY', KEYS[1], 'f', -1) < 0 then
  redis.call('HSET', KEYS[1], 'f', 0)
end
return 0
`)

// loginLimits applies the rule above.
type loginLimits struct {
	rdb        redis.UniversalClient
	sessions   db.SessionStore
	perAccount Rate
	perIP      Rate
	delay      time.Duration
	maxDelay   time.Duration
	deviceTTL  time.Duration // 0: no known-device cookie
	deviceKey  []byte
	logger     *slog.Logger
	now        func() time.Time
}

// loginAttempt is an admitted attempt: the counters it was counted on in
// advance, which a success gives back.
type loginAttempt struct {
	keys []string
}

// trust classifies a login attempt on memberID ("" for an unknown address,
// which still costs the same query).
func (l *loginLimits) trust(ctx context.Context, r *http.Request, memberID, ip string) (loginTrust, error) {
	if memberID != "" && l.knownDevice(r, memberID) {
		return trustDevice, nil
	}
	known, err := l.sessions.HasSessionFromIP(ctx, memberID, ip)
	if err != nil {
		return trustUnknown, err
	}
	if known {
		return trustIP, nil
	}
	return trustUnknown, nil
}

// admit counts an attempt on email from ip in advance on the counters that
// apply, or returns how long to wait when one of them says not yet.
func (l *loginLimits) admit(ctx context.Context, email string, trust loginTrust, ip string) (loginAttempt, time.Duration) {
	var a loginAttempt
	if trust != trustDevice && l.perIP.Requests > 0 {
		key := loginLimitPrefix + "ip:" + httprate.CanonicalizeIP(ip)
		if wait := l.take(ctx, key, l.perIP); wait > 0 {
			return a, wait
		}
		a.keys = append(a.keys, key)
	}
	if l.perAccount.Requests > 0 {
		key := loginLimitPrefix + "account:" + trust.String() + ":" + emailKey(email)
		if wait := l.take(ctx, key, l.perAccount); wait > 0 {
			l.release(ctx, a)
			return loginAttempt{}, wait
		}
		a.keys = append(a.keys, key)
	}
	return a, 0
}

// take runs admitScript on key; a Redis failure admits (and is logged), as
// the request limits do: a cache outage must not refuse every login.
func (l *loginLimits) take(ctx context.Context, key string, rate Rate) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, counterTimeout)
	defer cancel()
	wait, err := admitScript.Run(ctx, l.rdb, []string{key}, l.now().UnixMilli(), rate.Requests,
		l.delay.Milliseconds(), l.maxDelay.Milliseconds(), rate.Window.Milliseconds()).Int64()
	if err != nil {
		l.logger.WarnContext(ctx, "login failure counter unavailable", slog.Any("err", err))
		return 0
	}
	return time.Duration(wait) * time.Millisecond
}

// release gives back an attempt that did not turn out a failure: a success,
// or one that ended in an error of ours.
func (l *loginLimits) release(ctx context.Context, a loginAttempt) {
	if len(a.keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), counterTimeout)
	defer cancel()
	for _, key := range a.keys {
		if err := releaseScript.Run(ctx, l.rdb, []string{key}).Err(); err != nil {
			l.logger.WarnContext(ctx, "login failure counter unavailable", slog.Any("err", err))
		}
	}
}

// deviceMAC signs a known-device payload; the label keeps the key's use
// apart from any other.
func (l *loginLimits) deviceMAC(payload string) []byte {
	m := hmac.New(sha256.New, l.deviceKey)
	m.Write([]byte("moim login device v1\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// deviceValue is the cookie value "<payload>.<mac>", payload being the
// member id and the Unix second of the login, both unpadded base64url.
func (l *loginLimits) deviceValue(memberID string, at time.Time) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(memberID + " " + strconv.FormatInt(at.Unix(), 10)))
	return payload + "." + base64.RawURLEncoding.EncodeToString(l.deviceMAC(payload))
}

// knownDevice reports whether r carries a valid, unexpired device cookie of
// memberID.
func (l *loginLimits) knownDevice(r *http.Request, memberID string) bool {
	if l.deviceTTL <= 0 {
		return false
	}
	c, err := r.Cookie(deviceCookie)
	if err != nil {
		return false
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return false
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(mac, l.deviceMAC(payload)) {
		return false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return false
	}
	id, at, ok := strings.Cut(string(raw), " ")
	sec, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id != memberID {
		return false
	}
	return l.now().Before(time.Unix(sec, 0).Add(l.deviceTTL))
}

// setDevice marks the client as a known device of the member, for
// deviceTTL from now.
func (l *loginLimits) setDevice(w http.ResponseWriter, memberID string) {
	if l.deviceTTL <= 0 {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     deviceCookie,
		Value:    l.deviceValue(memberID, l.now()),
		Path:     deviceCookiePath,
		MaxAge:   int(l.deviceTTL.Seconds()),
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteStrictMode,
	})
}
