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
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/domain"
)

// DefaultPrefix starts every Redis key of SessionParams when Prefix is empty.
const DefaultPrefix = "moim:auth:"

// Limits of what a session records about its device. Both come from the
// client, so they are capped before they reach Redis.
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
	// indexSlack is how much longer than a session the member's index
	// lives. Rotate renews the index a round trip before the session, and
	// an index that expired first would hide a live session from List and
	// RevokeAll; a minute is far more than that round trip.
	indexSlack = time.Minute
)

// Client-facing messages of the session errors.
const (
	msgRefreshInvalid  = "Refresh token is invalid or expired."
	msgRefreshReused   = "Refresh token was already used; the session has been revoked."
	msgRefreshStale    = "Refresh token was already used."
	msgAccessRevoked   = "Access token has been revoked."
	msgSessionNotFound = "Session not found."
)

// Each script changes one session key only, so it is atomic and runs on
// Redis Cluster. Commands that touch the member index are sent before or
// after the script, never put inside it; Create and Rotate say why in that
// order.
const (
	// createScript: KEYS[1] session; ARGV member, ua, ip, now ms,
	// secret hash, ttl ms. 0 means the id is taken (128 random bits make
	// that a broken random source, not bad luck).
	createScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'member', ARGV[1], 'ua', ARGV[2], 'ip', ARGV[3],
	'created', ARGV[4], 'used', ARGV[4], 'cur', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1`

	// rotateScript: KEYS[1] session; ARGV presented hash, new hash, now ms,
	// ua, ip, ttl ms, hash length, replayMemory. 'prev' holds the hashes of
	// the secrets rotated away, newest first, end to end. 1 rotated, 0 no
	// such session, -1 the presented secret was rotated away: a replay, so
	// the session is deleted; -2 the session never had it: left alone, or
	// anyone who knows a session id could end it. Comparing hashes in
	// variable time leaks nothing usable: their preimages are 256-bit
	// secrets an attacker cannot steer.
	rotateScript = `
local cur, prev = unpack(redis.call('HMGET', KEYS[1], 'cur', 'prev'))
if not cur then return 0 end
local n = tonumber(ARGV[7])
if cur == ARGV[1] then
	prev = string.sub(cur .. (prev or ''), 1, n * tonumber(ARGV[8]))
	redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'prev', prev, 'used', ARGV[3], 'ua', ARGV[4], 'ip', ARGV[5])
	redis.call('PEXPIRE', KEYS[1], ARGV[6])
	return 1
end
if prev then
	for i = 1, #prev, n do
		if string.sub(prev, i, i + n - 1) == ARGV[1] then
			redis.call('DEL', KEYS[1])
			return -1
		end
	end
end
return -2`

	// revokeScript: KEYS[1] session; ARGV member. Deletes the session only
	// if it is that member's: 1 deleted, 0 not found or not theirs.
	revokeScript = `
if redis.call('HGET', KEYS[1], 'member') == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`
)

// SessionParams configure Sessions.
type SessionParams struct {
	Redis redis.UniversalClient
	// TTL is the refresh token lifetime, counted from the last rotation.
	TTL time.Duration
	// Leeway is how long after exp Parse still accepts an access token, so
	// it must equal TokenParams.Leeway; zero means DefaultLeeway, as there.
	Leeway  time.Duration
	Prefix  string           // DefaultPrefix when empty
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

// Sessions keeps refresh sessions and the access token deny-list in Redis.
// A refresh token is "<sid>.<secret>"; Redis holds only the SHA-256 of the
// current secret and of the last replayMemory ones, so reading Redis does
// not yield a usable token. It is safe for concurrent use.
type Sessions struct {
	rdb    redis.UniversalClient
	ttl    time.Duration
	leeway time.Duration
	prefix string
	now    func() time.Time
	create *redis.Script
	rotate *redis.Script
	revoke *redis.Script
}

// NewSessions checks p and returns Sessions using it.
func NewSessions(p SessionParams) (*Sessions, error) {
	var errs []error
	if p.Redis == nil {
		errs = append(errs, errors.New("sessions need a Redis client"))
	}
	if p.TTL <= 0 {
		errs = append(errs, fmt.Errorf("refresh TTL %s is not positive", p.TTL))
	}
	if p.Leeway < 0 {
		errs = append(errs, fmt.Errorf("token leeway %s is negative", p.Leeway))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Sessions{
		rdb:    p.Redis,
		ttl:    p.TTL,
		leeway: cmp.Or(p.Leeway, DefaultLeeway),
		prefix: cmp.Or(p.Prefix, DefaultPrefix),
		now:    p.NowFunc,
		create: redis.NewScript(createScript),
		rotate: redis.NewScript(rotateScript),
		revoke: redis.NewScript(revokeScript),
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// TTL returns the refresh token lifetime.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// Create starts a session for the member and returns it with its first
// refresh token. The session is written before its id enters the member's
// index, so a RevokeAll running meanwhile may miss it: a caller that must
// not leave a session behind a concurrent RevokeAll re-checks its reason
// after Create returns (login re-reads the member).
func (s *Sessions) Create(ctx context.Context, memberID, userAgent, ip string) (Session, string, error) {
	if memberID == "" {
		return Session{}, "", errors.New("create session: member id is required")
	}
	now := time.UnixMilli(s.now().UnixMilli()).UTC()
	sess := Session{
		ID:         newSessionID(),
		MemberID:   memberID,
		UserAgent:  cut(userAgent, MaxUserAgentLen),
		IP:         cut(ip, MaxIPLen),
		CreatedAt:  now,
		LastUsedAt: now,
	}
	secret := newSecret()
	key := s.sessionKey(sess.ID)
	// The session before the index: List drops ids whose session is
	// missing, which is safe only if an id in the index always has (or
	// had) a session. The other order let a concurrent List drop a session
	// being created, hiding it from List and RevokeAll for good.
	created, err := s.create.Run(ctx, s.rdb, []string{key},
		memberID, sess.UserAgent, sess.IP, now.UnixMilli(), hashSecret(secret), s.ttl.Milliseconds()).Int64()
	if err != nil {
		return Session{}, "", fmt.Errorf("create session: %w", err)
	}
	if created != 1 {
		return Session{}, "", errors.New("create session: session id already in use")
	}
	if err := s.touchIndex(ctx, memberID, sess.ID); err != nil {
		// Not in the index, the session would escape RevokeAll; its token
		// is never handed out, so nothing is lost by deleting it. Without
		// the caller's cancellation, which may be what failed the index.
		if derr := s.rdb.Del(context.WithoutCancel(ctx), key).Err(); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete unindexed session: %w", derr))
		}
		return Session{}, "", fmt.Errorf("create session: %w", err)
	}
	return sess, sess.ID + "." + secret, nil
}

// Rotate exchanges a refresh token for a new one; the old one stops
// working. A malformed, unknown or expired token gives EINVALIDTOKEN, and
// so does a secret the session never had: knowing a session id (every
// access token carries it) must not be enough to end the session. A secret
// the session had in one of its last 64 rotations (replayMemory) was
// replayed, perhaps stolen, so the whole session is deleted (every token of
// it stops working) and the error is ETOKENREVOKED; an older one is merely
// invalid. Of concurrent rotations of one token exactly one succeeds. The
// session's last use, IP and user agent are updated and its lifetime starts
// again.
//
// On ETOKENREVOKED, and on EINVALIDTOKEN for a session that exists, the
// returned Session is partly filled: only ID and MemberID, for the
// caller's log. On other errors it is empty.
func (s *Sessions) Rotate(ctx context.Context, refreshToken, userAgent, ip string) (Session, string, error) {
	sid, secret, ok := splitRefreshToken(refreshToken)
	if !ok {
		return Session{}, "", refreshInvalid(errors.New("malformed refresh token"))
	}
	key := s.sessionKey(sid)
	vals, err := s.rdb.HMGet(ctx, key, "member", "created", "cur").Result()
	if err != nil {
		return Session{}, "", fmt.Errorf("rotate session: %w", err)
	}
	memberID, _ := vals[0].(string)
	createdStr, _ := vals[1].(string)
	cur, _ := vals[2].(string)
	if memberID == "" {
		return Session{}, "", refreshInvalid(errors.New("no such session"))
	}
	known := Session{ID: sid, MemberID: memberID}
	presented := hashSecret(secret)
	// The index is renewed before the session, and in a separate command
	// since the two keys may live on different cluster nodes: a failure
	// between them leaves the index the longer-lived, never the session
	// (indexSlack covers the round trip between them). The order cannot
	// make List drop this live session: List drops only ids whose session
	// is missing, and a missing session never comes back, as ids are not
	// reused and the script writes only to a session that exists. A
	// secret that is not current now never becomes current, so stale and
	// forged tokens skip the index and write nothing there.
	if subtle.ConstantTimeCompare([]byte(cur), []byte(presented)) == 1 {
		if err := s.touchIndex(ctx, memberID, sid); err != nil {
			return Session{}, "", fmt.Errorf("rotate session: %w", err)
		}
	}
	now := time.UnixMilli(s.now().UnixMilli()).UTC()
	userAgent, ip = cut(userAgent, MaxUserAgentLen), cut(ip, MaxIPLen)
	next := newSecret()
	res, err := s.rotate.Run(ctx, s.rdb, []string{key},
		presented, hashSecret(next), now.UnixMilli(), userAgent, ip, s.ttl.Milliseconds(), hashLen, replayMemory).Int64()
	if err != nil {
		return Session{}, "", fmt.Errorf("rotate session: %w", err)
	}
	switch res {
	case 1:
	case -1:
		// The index entry stays behind; List prunes it.
		return known, "", &domain.Error{Code: domain.ETOKENREVOKED, Message: msgRefreshReused,
			Err: errors.New("refresh token reused")}
	case -2:
		return known, "", refreshInvalid(errors.New("secret unknown to the session"))
	default:
		// Ended since it was read: expired, revoked or replayed.
		return known, "", refreshInvalid(errors.New("no such session"))
	}
	created, _ := strconv.ParseInt(createdStr, 10, 64)
	return Session{
		ID:         sid,
		MemberID:   memberID,
		UserAgent:  userAgent,
		IP:         ip,
		CreatedAt:  time.UnixMilli(created).UTC(),
		LastUsedAt: now,
	}, sid + "." + next, nil
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
	vals, err := s.rdb.HMGet(ctx, s.sessionKey(sid), sessionFields("cur", "prev")...).Result()
	if err != nil {
		return Session{}, fmt.Errorf("look up session: %w", err)
	}
	sess, ok := sessionFromFields(sid, vals)
	if !ok {
		return Session{}, refreshInvalid(errors.New("no such session"))
	}
	cur, _ := vals[len(vals)-2].(string)
	prev, _ := vals[len(vals)-1].(string)
	presented := hashSecret(secret)
	switch {
	case subtle.ConstantTimeCompare([]byte(cur), []byte(presented)) == 1:
		return sess, nil
	case rotatedAway(prev, presented):
		// Not "has been revoked": Lookup leaves the session alone.
		return Session{}, &domain.Error{Code: domain.ETOKENREVOKED, Message: msgRefreshStale,
			Err: errors.New("refresh token was rotated away")}
	default:
		return Session{}, refreshInvalid(errors.New("secret unknown to the session"))
	}
}

// Get returns a session by id, or ENOTFOUND.
func (s *Sessions) Get(ctx context.Context, sessionID string) (Session, error) {
	if !validSessionID(sessionID) {
		return Session{}, sessionNotFound()
	}
	vals, err := s.rdb.HMGet(ctx, s.sessionKey(sessionID), sessionFields()...).Result()
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	sess, ok := sessionFromFields(sessionID, vals)
	if !ok {
		return Session{}, sessionNotFound()
	}
	return sess, nil
}

// List returns the member's live sessions, most recently used first. Ids of
// sessions that have expired or were revoked are dropped from the index on
// the way; that never drops a live session, since Create writes a session
// before its id enters the index and a session that is gone stays gone.
func (s *Sessions) List(ctx context.Context, memberID string) ([]Session, error) {
	ikey := s.memberKey(memberID)
	sids, err := s.rdb.SMembers(ctx, ikey).Result()
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	if len(sids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(sids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sid := range sids {
			cmds[i] = p.HMGet(ctx, s.sessionKey(sid), sessionFields()...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	var out []Session
	var gone []any
	for i, sid := range sids {
		sess, ok := sessionFromFields(sid, cmds[i].Val())
		if !ok || sess.MemberID != memberID {
			gone = append(gone, sid)
			continue
		}
		out = append(out, sess)
	}
	if len(gone) > 0 {
		if err := s.rdb.SRem(ctx, ikey, gone...).Err(); err != nil {
			return nil, fmt.Errorf("prune session index: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b Session) int {
		return cmp.Or(b.LastUsedAt.Compare(a.LastUsedAt), b.CreatedAt.Compare(a.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Revoke ends one of the member's sessions: its refresh token stops working
// at once, its access tokens at their next Check. A session that does not
// exist or is another member's gives ENOTFOUND.
func (s *Sessions) Revoke(ctx context.Context, memberID, sessionID string) error {
	if !validSessionID(sessionID) || memberID == "" {
		return sessionNotFound()
	}
	n, err := s.revoke.Run(ctx, s.rdb, []string{s.sessionKey(sessionID)}, memberID).Int64()
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if n != 1 {
		return sessionNotFound()
	}
	// The session is already gone; a failure here leaves an index entry
	// that List prunes.
	if err := s.rdb.SRem(ctx, s.memberKey(memberID), sessionID).Err(); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// RevokeAll ends every session of the member except the one with id except
// ("" ends them all), as after a password change. It ends the sessions in
// the member's index, which a session enters only once written, just before
// its Create returns; one created concurrently may be missed, so a caller
// that must not leave a session behind a concurrent RevokeAll re-checks its
// reason after Create returns.
func (s *Sessions) RevokeAll(ctx context.Context, memberID, except string) error {
	ikey := s.memberKey(memberID)
	sids, err := s.rdb.SMembers(ctx, ikey).Result()
	if err != nil {
		return fmt.Errorf("revoke all sessions: %w", err)
	}
	var ended []any
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sid := range sids {
			if sid == except {
				continue
			}
			// The index holds only ids Create made for this member,
			// so no ownership check is needed.
			p.Del(ctx, s.sessionKey(sid))
			ended = append(ended, sid)
		}
		if len(ended) > 0 {
			p.SRem(ctx, ikey, ended...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke all sessions: %w", err)
	}
	return nil
}

// Deny puts an access token's jti on the deny-list until exp plus the
// leeway, the last moment Parse accepts the token; past that it does
// nothing.
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

// Check is the per-request test of a parsed access token: one round trip
// asking whether its jti is denied and whether its session still exists.
// Either gives ETOKENREVOKED; a Redis failure is returned as an internal
// error.
func (s *Sessions) Check(ctx context.Context, jti, sessionID string) error {
	var denied, alive *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		denied = p.Exists(ctx, s.denyKey(jti))
		alive = p.Exists(ctx, s.sessionKey(sessionID))
		return nil
	})
	if err != nil {
		return fmt.Errorf("check access token: %w", err)
	}
	switch {
	case denied.Val() != 0:
		return accessRevoked(errors.New("jti is on the deny-list"))
	case alive.Val() == 0:
		return accessRevoked(errors.New("session has ended"))
	}
	return nil
}

// touchIndex adds sid to the member's index and gives the index a full
// refresh TTL plus indexSlack, which outlasts every session written so far
// and the one Rotate is about to renew.
func (s *Sessions) touchIndex(ctx context.Context, memberID, sid string) error {
	ikey := s.memberKey(memberID)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, ikey, sid)
		p.PExpire(ctx, ikey, s.ttl+indexSlack)
		return nil
	})
	if err != nil {
		return fmt.Errorf("update session index: %w", err)
	}
	return nil
}

func (s *Sessions) sessionKey(sid string) string { return s.prefix + "session:" + sid }
func (s *Sessions) memberKey(memberID string) string {
	return s.prefix + "member:" + memberID + ":sessions"
}
func (s *Sessions) denyKey(jti string) string { return s.prefix + "deny:" + jti }

// sessionFields names the hash fields a Session is built from, then extra.
// Reading them rather than the whole hash leaves out the up to 4 KiB of
// rotated-away hashes.
func sessionFields(extra ...string) []string {
	return append([]string{"member", "ua", "ip", "created", "used"}, extra...)
}

// sessionFromFields builds a Session from the values of sessionFields, in
// that order; false when the session does not exist or lacks its member.
func sessionFromFields(sid string, vals []any) (Session, bool) {
	str := func(i int) string { v, _ := vals[i].(string); return v }
	if str(0) == "" {
		return Session{}, false
	}
	created, _ := strconv.ParseInt(str(3), 10, 64)
	used, _ := strconv.ParseInt(str(4), 10, 64)
	return Session{
		ID:         sid,
		MemberID:   str(0),
		UserAgent:  str(1),
		IP:         str(2),
		CreatedAt:  time.UnixMilli(created).UTC(),
		LastUsedAt: time.UnixMilli(used).UTC(),
	}, true
}

// rotatedAway reports whether hash is one of the end-to-end hashes in prev,
// as rotateScript keeps them.
func rotatedAway(prev, hash string) bool {
	for i := 0; i+hashLen <= len(prev); i += hashLen {
		if prev[i:i+hashLen] == hash {
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

func sessionNotFound() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: msgSessionNotFound, Err: domain.ErrNotFound}
}
