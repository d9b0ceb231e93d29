package auth

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/domain"
)

// DefaultPrefix starts every Redis key of SessionParams when Prefix is empty.
const DefaultPrefix = "moim:auth:"

// DefaultSessionCacheTTL is how long Redis may answer for a session without
// asking SQL, when SessionParams.CacheTTL is zero.
const DefaultSessionCacheTTL = time.Minute

// Limits of what a session records about its device. Both come from the
// client, so they are capped before they are stored.
const (
	MaxUserAgentLen = 256 // bytes
	MaxIPLen        = 64  // bytes; an IPv6 address with a zone fits
)

// Sizes of the parts of a refresh token "<sid>.<secret>".
const (
	sessionIDBytes = 16 // 26 base32 characters
	secretBytes    = 32 // 256 bits, 43 base64url characters
)

const (
	// hashLen is the length of hashSecret's result.
	hashLen = 2 * sha256.Size
	// replayMemory is how many rotated-away secrets a session remembers
	// (their hashes, 4 KiB at most). A token up to that many rotations old
	// is a replay and ends the session; an older one can no longer be told
	// from a forged one and is merely invalid.
	replayMemory = 64
)

// Values of a session's cache entry in Redis: an alive session's names its
// member, so Check can tell a token whose sid is another member's without
// asking SQL. Any other value (the bare "1" of earlier releases) is a miss.
const (
	cachedAlivePrefix = "m:"
	cachedEnded       = "0"
)

// Client-facing messages of the session errors.
const (
	msgRefreshInvalid  = "Refresh token is invalid or expired."
	msgRefreshReused   = "Refresh token was already used; the session has been revoked."
	msgRefreshStale    = "Refresh token was already used."
	msgAccessRevoked   = "Access token has been revoked."
	msgSessionNotFound = "Session not found."
)

// SessionStore is where sessions live: the SQL database, the truth
// (db.SessionStore). Times it is given are UTC.
type SessionStore interface {
	// CreateSession inserts a new session.
	CreateSession(ctx context.Context, s *domain.Session) error
	// FindSession returns a session alive or not, or ENOTFOUND.
	FindSession(ctx context.Context, id string) (*domain.Session, error)
	// RotateSession applies rot if the session is alive at rot.LastUsedAt
	// and its current hash is still presentedHash; of concurrent calls
	// with one hash at most one sees true.
	RotateSession(ctx context.Context, id, presentedHash string, rot domain.SessionRotation) (bool, error)
	// RevokeSession ends a session alive at now that is memberID's (""
	// for any member's) and reports whether it did.
	RevokeSession(ctx context.Context, id, memberID string, now time.Time) (bool, error)
	// RevokeSessions ends the member's sessions alive at now but except
	// and returns their ids.
	RevokeSessions(ctx context.Context, memberID, except string, now time.Time) ([]string, error)
	// ListSessions returns the member's sessions alive at now, most
	// recently used first.
	ListSessions(ctx context.Context, memberID string, now time.Time) ([]domain.Session, error)
}

// SessionParams configure Sessions.
type SessionParams struct {
	// Store keeps the sessions; it is the truth.
	Store SessionStore
	// Redis caches whether a session is alive and holds the access-token
	// deny-list. Losing what it holds logs nobody out.
	Redis redis.UniversalClient
	// TTL is the refresh token lifetime, counted from the last rotation.
	TTL time.Duration
	// CacheTTL is how long Redis may say a session is alive or ended
	// without asking Store; zero means DefaultSessionCacheTTL. It bounds
	// how long a revocation that could not reach Redis goes unseen.
	CacheTTL time.Duration
	// Leeway is how long after exp Parse still accepts an access token, so
	// it must equal TokenParams.Leeway; zero means DefaultLeeway, as there.
	Leeway  time.Duration
	Prefix  string           // DefaultPrefix when empty
	Logger  *slog.Logger     // Redis failures that Sessions rides out; discarded when nil
	NowFunc func() time.Time // time.Now when nil
}

// Session is one login on one device: the family of refresh tokens that
// rotation derives from it.
type Session struct {
	ID         string
	MemberID   string
	UserAgent  string
	IP         string
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// Sessions keeps refresh sessions in SQL, with Redis as a cache in front
// of the per-request check and as the access-token deny-list. A refresh
// token is "<sid>.<secret>"; only the SHA-256 of the current secret and of
// the last replayMemory ones are stored, so reading the database or Redis
// does not yield a usable token. Without Redis every operation still works
// from SQL: Check then asks SQL on each request. It is safe for concurrent
// use.
type Sessions struct {
	store    SessionStore
	rdb      redis.UniversalClient
	ttl      time.Duration
	cacheTTL time.Duration
	leeway   time.Duration
	prefix   string
	logger   *slog.Logger
	now      func() time.Time
}

// NewSessions checks p and returns Sessions using it.
func NewSessions(p SessionParams) (*Sessions, error) {
	var errs []error
	if p.Store == nil {
		errs = append(errs, errors.New("sessions need a store"))
	}
	if p.Redis == nil {
		errs = append(errs, errors.New("sessions need a Redis client"))
	}
	if p.TTL <= 0 {
		errs = append(errs, fmt.Errorf("refresh TTL %s is not positive", p.TTL))
	}
	if p.CacheTTL < 0 {
		errs = append(errs, fmt.Errorf("session cache TTL %s is negative", p.CacheTTL))
	}
	if p.Leeway < 0 {
		errs = append(errs, fmt.Errorf("token leeway %s is negative", p.Leeway))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Sessions{
		store:    p.Store,
		rdb:      p.Redis,
		ttl:      p.TTL,
		cacheTTL: cmp.Or(p.CacheTTL, DefaultSessionCacheTTL),
		leeway:   cmp.Or(p.Leeway, DefaultLeeway),
		prefix:   cmp.Or(p.Prefix, DefaultPrefix),
		logger:   p.Logger,
		now:      p.NowFunc,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// TTL returns the refresh token lifetime.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// clock is now in UTC at the millisecond, the precision sessions report.
func (s *Sessions) clock() time.Time { return time.UnixMilli(s.now().UnixMilli()).UTC() }

// Create starts a session for the member and returns it with its first
// refresh token. A RevokeAll running meanwhile may miss it: a caller that
// must not leave a session behind a concurrent RevokeAll re-checks its
// reason after Create returns (login re-reads the member).
func (s *Sessions) Create(ctx context.Context, memberID, userAgent, ip string) (Session, string, error) {
	if memberID == "" {
		return Session{}, "", errors.New("create session: member id is required")
	}
	now := s.clock()
	secret := newSecret()
	rec := &domain.Session{
		ID:         newSessionID(),
		MemberID:   memberID,
		UserAgent:  cut(userAgent, MaxUserAgentLen),
		IP:         cut(ip, MaxIPLen),
		SecretHash: hashSecret(secret),
		CreatedAt:  now,
		LastUsedAt: now,
		ExpiresAt:  now.Add(s.ttl),
	}
	if err := s.store.CreateSession(ctx, rec); err != nil {
		return Session{}, "", fmt.Errorf("create session: %w", err)
	}
	return view(rec), rec.ID + "." + secret, nil
}

// Rotate exchanges a refresh token for a new one; the old one stops
// working. A malformed, unknown or expired token gives EINVALIDTOKEN, and
// so does a secret the session never had: knowing a session id (every
// access token carries it) must not be enough to end the session. A secret
// the session had in one of its last 64 rotations (replayMemory) was
// replayed, perhaps stolen, so the whole session is revoked (every token of
// it stops working) and the error is ETOKENREVOKED; an older one is merely
// invalid. Of concurrent rotations of one token exactly one succeeds; the
// others are replays. The session's last use, IP and user agent are updated
// and its lifetime starts again.
//
// On ETOKENREVOKED, and on EINVALIDTOKEN for a session that exists, the
// returned Session is partly filled: only ID and MemberID, for the
// caller's log. On other errors it is empty.
func (s *Sessions) Rotate(ctx context.Context, refreshToken, userAgent, ip string) (Session, string, error) {
	sid, secret, ok := splitRefreshToken(refreshToken)
	if !ok {
		return Session{}, "", refreshInvalid(errors.New("malformed refresh token"))
	}
	rec, err := s.find(ctx, sid)
	if err != nil {
		return Session{}, "", fmt.Errorf("rotate session: %w", err)
	}
	now := s.clock()
	if rec == nil || !rec.Alive(now) {
		return Session{}, "", refreshInvalid(errors.New("no such session"))
	}
	known := Session{ID: sid, MemberID: rec.MemberID}
	presented := hashSecret(secret)
	if subtle.ConstantTimeCompare([]byte(rec.SecretHash), []byte(presented)) == 1 {
		next := newSecret()
		rot := domain.SessionRotation{
			SecretHash: hashSecret(next),
			PrevHashes: rememberHash(presented, rec.PrevHashes),
			UserAgent:  cut(userAgent, MaxUserAgentLen),
			IP:         cut(ip, MaxIPLen),
			LastUsedAt: now,
			ExpiresAt:  now.Add(s.ttl),
		}
		rotated, err := s.store.RotateSession(ctx, sid, presented, rot)
		if err != nil {
			return Session{}, "", fmt.Errorf("rotate session: %w", err)
		}
		if rotated {
			return Session{
				ID:         sid,
				MemberID:   rec.MemberID,
				UserAgent:  rot.UserAgent,
				IP:         rot.IP,
				CreatedAt:  rec.CreatedAt,
				LastUsedAt: now,
			}, sid + "." + next, nil
		}
		// Another rotation of this secret won meanwhile (or the session
		// ended): read again to tell which.
		if rec, err = s.find(ctx, sid); err != nil {
			return Session{}, "", fmt.Errorf("rotate session: %w", err)
		}
		if rec == nil || !rec.Alive(now) {
			return known, "", refreshInvalid(errors.New("no such session"))
		}
	}
	if !rotatedAway(rec.PrevHashes, presented) {
		return known, "", refreshInvalid(errors.New("secret unknown to the session"))
	}
	if _, err := s.store.RevokeSession(ctx, sid, "", now); err != nil {
		return Session{}, "", fmt.Errorf("revoke replayed session: %w", err)
	}
	s.markEnded(ctx, sid)
	return known, "", &domain.Error{Code: domain.ETOKENREVOKED, Message: msgRefreshReused,
		Err: errors.New("refresh token reused")}
}

// Lookup returns the session of a refresh token without rotating it, for
// uses such as logging out with the token. It fails like Rotate
// (EINVALIDTOKEN; ETOKENREVOKED for a token rotated away in the last
// replayMemory rotations, which Rotate would take as a replay) but never
// revokes anything.
func (s *Sessions) Lookup(ctx context.Context, refreshToken string) (Session, error) {
	sid, secret, ok := splitRefreshToken(refreshToken)
	if !ok {
		return Session{}, refreshInvalid(errors.New("malformed refresh token"))
	}
	rec, err := s.find(ctx, sid)
	if err != nil {
		return Session{}, fmt.Errorf("look up session: %w", err)
	}
	if rec == nil || !rec.Alive(s.clock()) {
		return Session{}, refreshInvalid(errors.New("no such session"))
	}
	presented := hashSecret(secret)
	switch {
	case subtle.ConstantTimeCompare([]byte(rec.SecretHash), []byte(presented)) == 1:
		return view(rec), nil
	case rotatedAway(rec.PrevHashes, presented):
		// Not "has been revoked": Lookup leaves the session alone.
		return Session{}, &domain.Error{Code: domain.ETOKENREVOKED, Message: msgRefreshStale,
			Err: errors.New("refresh token was rotated away")}
	default:
		return Session{}, refreshInvalid(errors.New("secret unknown to the session"))
	}
}

// Get returns a live session by id, or ENOTFOUND.
func (s *Sessions) Get(ctx context.Context, sessionID string) (Session, error) {
	if !validSessionID(sessionID) {
		return Session{}, sessionNotFound()
	}
	rec, err := s.find(ctx, sessionID)
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	if rec == nil || !rec.Alive(s.clock()) {
		return Session{}, sessionNotFound()
	}
	return view(rec), nil
}

// List returns the member's live sessions, most recently used first.
func (s *Sessions) List(ctx context.Context, memberID string) ([]Session, error) {
	recs, err := s.store.ListSessions(ctx, memberID, s.clock())
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	var out []Session
	for i := range recs {
		out = append(out, view(&recs[i]))
	}
	return out, nil
}

// Revoke ends one of the member's sessions: its refresh token stops working
// at once, its access tokens at their next Check. A session that does not
// exist, has ended or is another member's gives ENOTFOUND.
func (s *Sessions) Revoke(ctx context.Context, memberID, sessionID string) error {
	if !validSessionID(sessionID) || memberID == "" {
		return sessionNotFound()
	}
	ok, err := s.store.RevokeSession(ctx, sessionID, memberID, s.clock())
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if !ok {
		return sessionNotFound()
	}
	s.markEnded(ctx, sessionID)
	return nil
}

// RevokeAll ends every session of the member except the one with id except
// ("" ends them all), as after a password change. One created concurrently
// may be missed, so a caller that must not leave a session behind a
// concurrent RevokeAll re-checks its reason after Create returns.
func (s *Sessions) RevokeAll(ctx context.Context, memberID, except string) error {
	ids, err := s.store.RevokeSessions(ctx, memberID, except, s.clock())
	if err != nil {
		return fmt.Errorf("revoke all sessions: %w", err)
	}
	s.markEnded(ctx, ids...)
	return nil
}

// Deny puts an access token's jti on the deny-list until exp plus the
// leeway, the last moment Parse accepts the token; past that it does
// nothing. The deny-list lives in Redis only: every caller also revokes
// the token's session in SQL, which Check sees when Redis has lost the
// entry.
func (s *Sessions) Deny(ctx context.Context, jti string, exp time.Time) error {
	if jti == "" {
		return errors.New("deny access token: jti is empty")
	}
	ttl := exp.Add(s.leeway).Sub(s.now())
	if ttl <= 0 {
		return nil
	}
	// Rounded up to Redis's millisecond so the entry never ends before
	// the token does.
	ttl = (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
	if err := s.rdb.Set(ctx, s.denyKey(jti), "1", ttl).Err(); err != nil {
		return fmt.Errorf("deny access token: %w", err)
	}
	return nil
}

// Check is the per-request test of a parsed access token: is its jti
// denied, and is its session still alive. Either gives ETOKENREVOKED. A
// session that is not memberID's (the token's sub) gives EINVALIDTOKEN: a
// token naming someone else's session was not made by Issue. One
// Redis round trip answers it while the session's cache entry lives; a
// miss asks SQL and fills the entry. When Redis fails, SQL answers alone:
// the session's revocation covers every denied token, since each Deny
// comes with one. An error only when SQL fails too.
func (s *Sessions) Check(ctx context.Context, jti, sessionID, memberID string) error {
	var denied *redis.IntCmd
	var cached *redis.StringCmd
	_, rerr := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		denied = p.Exists(ctx, s.denyKey(jti))
		cached = p.Get(ctx, s.sessionKey(sessionID))
		return nil
	})
	if rerr != nil && !errors.Is(rerr, redis.Nil) {
		s.logger.WarnContext(ctx, "session check falls back to SQL", slog.Any("err", rerr))
	} else {
		if denied.Val() != 0 {
			return accessRevoked(errors.New("jti is on the deny-list"))
		}
		switch v := cached.Val(); {
		case v == cachedAlivePrefix+memberID:
			return nil
		case v == cachedEnded:
			return accessRevoked(errors.New("session has ended"))
		case strings.HasPrefix(v, cachedAlivePrefix):
			return sessionMismatch()
		}
	}
	rec, err := s.find(ctx, sessionID)
	if err != nil {
		return fmt.Errorf("check access token: %w", err)
	}
	now := s.clock()
	alive := rec != nil && rec.Alive(now)
	if rerr == nil || errors.Is(rerr, redis.Nil) {
		s.cache(ctx, sessionID, rec, alive, now)
	}
	if rec != nil && rec.MemberID != memberID {
		return sessionMismatch()
	}
	if !alive {
		return accessRevoked(errors.New("session has ended"))
	}
	return nil
}

// find reads a session from the store; nil when there is none.
func (s *Sessions) find(ctx context.Context, sid string) (*domain.Session, error) {
	rec, err := s.store.FindSession(ctx, sid)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, nil
	}
	return rec, err
}

// cache records what SQL said of a session for CacheTTL, or until the
// session expires if that is sooner. SETNX, so that an answer read before
// a revocation never overwrites the ended mark the revocation wrote.
func (s *Sessions) cache(ctx context.Context, sid string, rec *domain.Session, alive bool, now time.Time) {
	val, ttl := cachedEnded, s.cacheTTL
	if alive {
		val, ttl = cachedAlivePrefix+rec.MemberID, min(ttl, rec.ExpiresAt.Sub(now))
	}
	if err := s.rdb.SetNX(ctx, s.sessionKey(sid), val, ttl).Err(); err != nil {
		s.logger.WarnContext(ctx, "cache session", slog.Any("err", err))
	}
}

// markEnded overwrites the cache entries of sessions just ended in SQL, so
// their access tokens fail their next Check. If Redis cannot be reached,
// an entry saying alive outlives the revocation by at most CacheTTL; SQL
// already says the truth, so the revocation itself stands.
func (s *Sessions) markEnded(ctx context.Context, sids ...string) {
	if len(sids) == 0 {
		return
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sid := range sids {
			p.Set(ctx, s.sessionKey(sid), cachedEnded, s.cacheTTL)
		}
		return nil
	})
	if err != nil {
		s.logger.WarnContext(ctx, "mark sessions ended in the cache",
			slog.Int("sessions", len(sids)), slog.Any("err", err))
	}
}

func (s *Sessions) sessionKey(sid string) string { return s.prefix + "session:" + sid }
func (s *Sessions) denyKey(jti string) string    { return s.prefix + "deny:" + jti }

// view is what callers see of a stored session: no hashes.
func view(rec *domain.Session) Session {
	return Session{
		ID:         rec.ID,
		MemberID:   rec.MemberID,
		UserAgent:  rec.UserAgent,
		IP:         rec.IP,
		CreatedAt:  rec.CreatedAt.UTC(),
		LastUsedAt: rec.LastUsedAt.UTC(),
	}
}

// rememberHash puts hash in front of the rotated-away hashes prev, keeping
// the newest replayMemory.
func rememberHash(hash, prev string) string {
	all := hash + prev
	return all[:min(len(all), replayMemory*hashLen)]
}

// rotatedAway reports whether hash is one of the end-to-end hashes in prev.
func rotatedAway(prev, hash string) bool {
	for i := 0; i+hashLen <= len(prev); i += hashLen {
		if subtle.ConstantTimeCompare([]byte(prev[i:i+hashLen]), []byte(hash)) == 1 {
			return true
		}
	}
	return false
}

// sidEncoding spells session ids: base32, no padding. It is upper case;
// ids are lower-cased after encoding.
func sidEncoding() *base32.Encoding { return base32.StdEncoding.WithPadding(base32.NoPadding) }

func newSessionID() string {
	b := make([]byte, sessionIDBytes)
	_, _ = rand.Read(b) // never fails; it crashes the program instead
	return strings.ToLower(sidEncoding().EncodeToString(b))
}

func newSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // never fails; it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// validSessionID reports whether sid is a session id as newSessionID spells
// it; re-encoding rejects upper case and stray trailing bits, so an id has
// one spelling.
func validSessionID(sid string) bool {
	b, err := sidEncoding().DecodeString(strings.ToUpper(sid))
	return err == nil && len(b) == sessionIDBytes && strings.ToLower(sidEncoding().EncodeToString(b)) == sid
}

// splitRefreshToken checks the shape of "<sid>.<secret>" before anything
// reaches Redis.
func splitRefreshToken(tok string) (sid, secret string, ok bool) {
	sid, secret, found := strings.Cut(tok, ".")
	if !found || !validSessionID(sid) {
		return "", "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(b) != secretBytes {
		return "", "", false
	}
	return sid, secret, true
}

// hashSecret is what Redis stores in place of a secret. One unsalted SHA-256
// is enough: the secret has 256 random bits, nothing to guess.
func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func refreshInvalid(cause error) error {
	return &domain.Error{Code: domain.EINVALIDTOKEN, Message: msgRefreshInvalid, Err: cause}
}

func accessRevoked(cause error) error {
	return &domain.Error{Code: domain.ETOKENREVOKED, Message: msgAccessRevoked, Err: cause}
}

// sessionMismatch is a signed access token whose sid is another member's
// session: only a forgery (a leaked key) makes one.
func sessionMismatch() error {
	return &domain.Error{Code: domain.EINVALIDTOKEN, Message: "Access token is invalid.",
		Err: errors.New("session belongs to another member")}
}

func sessionNotFound() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: msgSessionNotFound, Err: domain.ErrNotFound}
}
