package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/jobstest"
)

const prefix = "moim:auth:"

type sessionsBundle struct {
	s     *auth.Sessions
	db    *bun.DB
	rdb   *redis.Client
	clock *jobstest.Clock
}

// newRedis connects to a Redis database of the test's own.
func newRedis(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(jobstest.RedisURL(t))
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// setupSessions gives a test its own SQLite database, Redis database and
// Sessions with the given refresh TTL on a clock that moves only when told
// to.
func setupSessions(t testing.TB, ttl time.Duration) sessionsBundle {
	t.Helper()
	return setupSessionsOn(t, dbtest.Open(t, dbtest.SQLite), ttl)
}

// setupSessionsOn is setupSessions on the database bdb.
func setupSessionsOn(t testing.TB, bdb *bun.DB, ttl time.Duration) sessionsBundle {
	t.Helper()
	rdb := newRedis(t)
	c := jobstest.NewClock(time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC))
	s, err := auth.NewSessions(auth.SessionParams{Store: db.SessionStore{DB: bdb}, Redis: rdb, TTL: ttl, NowFunc: c.Now})
	if err != nil {
		t.Fatalf("NewSessions: %v", err)
	}
	return sessionsBundle{s: s, db: bdb, rdb: rdb, clock: c}
}

func create(t *testing.T, b sessionsBundle, member, ua, ip string) (auth.Session, string) {
	t.Helper()
	sess, tok, err := b.s.Create(context.Background(), member, ua, ip)
	if err != nil {
		t.Fatalf("Create(%s): %v", member, err)
	}
	return sess, tok
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := domain.ErrorCode(err); got != code {
		t.Fatalf("%s: error = %v (code %q), want code %q", what, err, got, code)
	}
}

func wantMessage(t *testing.T, what string, err error, msg string) {
	t.Helper()
	if got := domain.ErrorMessage(err); got != msg {
		t.Errorf("%s: message = %q, want %q", what, got, msg)
	}
}

func TestSessionCreateAndRotate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		b := setupSessionsOn(t, bdb, time.Hour)
		ctx := context.Background()
		created := b.clock.Now()

		sess, tok1, err := b.s.Create(ctx, "m_alice", "Firefox", "192.0.2.1")
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		want := auth.Session{ID: sess.ID, MemberID: "m_alice", UserAgent: "Firefox", IP: "192.0.2.1", CreatedAt: created, LastUsedAt: created}
		if diff := cmp.Diff(want, sess); diff != "" {
			t.Errorf("Create (-want +got):\n%s", diff)
		}
		sid, secret, _ := strings.Cut(tok1, ".")
		if sid != sess.ID || len(sid) != 26 || strings.ToLower(sid) != sid || len(secret) != 43 {
			t.Errorf("token %q: want <26 lower-case base32>.<43 base64url> with the session id", tok1)
		}
		if got, err := b.s.Get(ctx, sess.ID); err != nil || !cmp.Equal(got, sess) {
			t.Errorf("Get = %+v, %v; want %+v", got, err, sess)
		}
		if got, err := b.s.Lookup(ctx, tok1); err != nil || !cmp.Equal(got, sess) {
			t.Errorf("Lookup = %+v, %v; want %+v", got, err, sess)
		}

		b.clock.Advance(time.Minute)
		rotated, tok2, err := b.s.Rotate(ctx, tok1, "Chrome", "198.51.100.7")
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		want = auth.Session{ID: sess.ID, MemberID: "m_alice", UserAgent: "Chrome", IP: "198.51.100.7", CreatedAt: created, LastUsedAt: created.Add(time.Minute)}
		if diff := cmp.Diff(want, rotated); diff != "" {
			t.Errorf("Rotate (-want +got):\n%s", diff)
		}
		if got, err := b.s.Get(ctx, sess.ID); err != nil || !cmp.Equal(got, rotated) {
			t.Errorf("Get after Rotate = %+v, %v; want %+v", got, err, rotated)
		}
		if !strings.HasPrefix(tok2, sess.ID+".") || tok2 == tok1 {
			t.Errorf("rotated token %q: want the same session id and a new secret", tok2)
		}

		// Lookup tells an old token apart but revokes nothing.
		_, err = b.s.Lookup(ctx, tok1)
		wantCode(t, "Lookup(old)", err, domain.ETOKENREVOKED)
		wantMessage(t, "Lookup(old)", err, "Refresh token was already used.")
		if _, err := b.s.Lookup(ctx, tok2); err != nil {
			t.Fatalf("Lookup(new) after Lookup(old): %v", err)
		}

		// Replaying the old token ends the session: the new token dies too.
		// The error comes with the session's id and member for the log.
		replayed, _, err := b.s.Rotate(ctx, tok1, "Evil", "203.0.113.66")
		wantCode(t, "Rotate(old)", err, domain.ETOKENREVOKED)
		wantMessage(t, "Rotate(old)", err, "Refresh token was already used; the session has been revoked.")
		if replayed.ID != sess.ID || replayed.MemberID != "m_alice" {
			t.Errorf("Rotate(old) session = %+v, want its id and member", replayed)
		}
		_, _, err = b.s.Rotate(ctx, tok2, "Chrome", "198.51.100.7")
		wantCode(t, "Rotate(new) after replay", err, domain.EINVALIDTOKEN)
		wantMessage(t, "Rotate(new) after replay", err, "Refresh token is invalid or expired.")
		_, err = b.s.Get(ctx, sess.ID)
		wantCode(t, "Get after replay", err, domain.ENOTFOUND)
		if !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Get after replay: %v is not domain.ErrNotFound", err)
		}
		wantCode(t, "Check after replay", b.s.Check(ctx, "some-jti", sess.ID, sess.MemberID), domain.ETOKENREVOKED)
	})
}

func TestSessionRotateChain(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ctx := context.Background()
	_, tok := create(t, b, "m_alice", "ua", "ip")
	first := tok
	for i := range 5 {
		var err error
		if _, tok, err = b.s.Rotate(ctx, tok, "ua", "ip"); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
	}
	// A token several generations old is a replay as much as the last.
	_, _, err := b.s.Rotate(ctx, first, "ua", "ip")
	wantCode(t, "Rotate(first)", err, domain.ETOKENREVOKED)
	_, _, err = b.s.Rotate(ctx, tok, "ua", "ip")
	wantCode(t, "Rotate(latest) after replay", err, domain.EINVALIDTOKEN)
}

// randomSecret returns a well-formed refresh secret no session has.
func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// A session id is no secret (every access token carries it), so a secret the
// session never had must not end the session: it is merely invalid.
func TestSessionRotateUnknownSecret(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ctx := context.Background()
	sess, tok1 := create(t, b, "m_alice", "ua", "ip")
	_, tok2, err := b.s.Rotate(ctx, tok1, "ua", "ip")
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	before, err := b.s.Get(ctx, sess.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}

	forged := sess.ID + "." + randomSecret(t)
	for range 3 {
		got, next, err := b.s.Rotate(ctx, forged, "Evil", "203.0.113.66")
		wantCode(t, "Rotate(forged)", err, domain.EINVALIDTOKEN)
		wantMessage(t, "Rotate(forged)", err, "Refresh token is invalid or expired.")
		if diff := cmp.Diff(auth.Session{ID: sess.ID, MemberID: "m_alice"}, got); diff != "" || next != "" {
			t.Errorf("Rotate(forged) gave token %q and session (-want +got):\n%s", next, diff)
		}
		_, err = b.s.Lookup(ctx, forged)
		wantCode(t, "Lookup(forged)", err, domain.EINVALIDTOKEN)
		wantMessage(t, "Lookup(forged)", err, "Refresh token is invalid or expired.")
	}

	// Untouched: live, unchanged, and its holder can still rotate.
	if err := b.s.Check(ctx, "jti", sess.ID, sess.MemberID); err != nil {
		t.Errorf("Check after forged tokens = %v, want nil", err)
	}
	if got, err := b.s.Get(ctx, sess.ID); err != nil || !cmp.Equal(got, before) {
		t.Errorf("Get after forged tokens = %+v, %v; want %+v", got, err, before)
	}
	_, tok3, err := b.s.Rotate(ctx, tok2, "ua", "ip")
	if err != nil {
		t.Fatalf("Rotate(current) after forged tokens: %v", err)
	}

	// A token the session really had is still a replay.
	got, _, err := b.s.Rotate(ctx, tok1, "Evil", "203.0.113.66")
	wantCode(t, "Rotate(first)", err, domain.ETOKENREVOKED)
	if got.ID != sess.ID || got.MemberID != "m_alice" {
		t.Errorf("Rotate(first) session = %+v, want its id and member", got)
	}
	wantCode(t, "Check after replay", b.s.Check(ctx, "jti", sess.ID, sess.MemberID), domain.ETOKENREVOKED)
	_, err = b.s.Lookup(ctx, tok3)
	wantCode(t, "Lookup(latest) after replay", err, domain.EINVALIDTOKEN)
}

// A session remembers the secrets of its last 64 rotations; a token older
// than that can no longer be told from a forged one.
func TestSessionReplayMemory(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		b := setupSessionsOn(t, bdb, time.Hour)
		ctx := context.Background()
		const rotations, remembered = 70, 64
		_, tok := create(t, b, "m_alice", "ua", "ip")
		toks := []string{tok}
		for i := range rotations {
			_, next, err := b.s.Rotate(ctx, toks[len(toks)-1], "ua", "ip")
			if err != nil {
				t.Fatalf("rotation %d: %v", i+1, err)
			}
			toks = append(toks, next)
		}
		latest := toks[rotations]
		ago := func(k int) string { return toks[rotations-k] }

		for k := 1; k <= rotations; k++ {
			_, err := b.s.Lookup(ctx, ago(k))
			if k <= remembered {
				wantCode(t, fmt.Sprintf("Lookup(%d ago)", k), err, domain.ETOKENREVOKED)
				wantMessage(t, fmt.Sprintf("Lookup(%d ago)", k), err, "Refresh token was already used.")
			} else {
				wantCode(t, fmt.Sprintf("Lookup(%d ago)", k), err, domain.EINVALIDTOKEN)
			}
		}
		for k := remembered + 1; k <= rotations; k++ {
			_, _, err := b.s.Rotate(ctx, ago(k), "ua", "ip")
			wantCode(t, fmt.Sprintf("Rotate(%d ago)", k), err, domain.EINVALIDTOKEN)
		}
		if _, err := b.s.Lookup(ctx, latest); err != nil {
			t.Fatalf("Lookup(latest) after forgotten tokens: %v", err)
		}
		_, _, err := b.s.Rotate(ctx, ago(remembered), "ua", "ip")
		wantCode(t, fmt.Sprintf("Rotate(%d ago)", remembered), err, domain.ETOKENREVOKED)
		_, err = b.s.Lookup(ctx, latest)
		wantCode(t, "Lookup(latest) after replay", err, domain.EINVALIDTOKEN)
	})
}

func TestSessionBadRefreshTokens(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ctx := context.Background()
	sess, tok := create(t, b, "m_alice", "ua", "ip")
	sid, secret, _ := strings.Cut(tok, ".")
	keysBefore, err := b.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}

	// A well-formed token of a session that does not exist.
	unknownSID := make([]byte, 16)
	unknownSecret := make([]byte, 32)
	_, _ = rand.Read(unknownSID)
	_, _ = rand.Read(unknownSecret)
	unknown := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(unknownSID)) +
		"." + base64.RawURLEncoding.EncodeToString(unknownSecret)

	tests := []struct{ name, token string }{
		{"empty", ""},
		{"no dot", sid + secret},
		{"sid only", sid + "."},
		{"secret only", "." + secret},
		{"unknown session", unknown},
		{"unknown secret of a live session", sid + "." + base64.RawURLEncoding.EncodeToString(unknownSecret)},
		{"upper-case sid", strings.ToUpper(sid) + "." + secret},
		{"sid too short", sid[:25] + "." + secret},
		{"sid too long", sid + "a." + secret},
		{"sid not base32", sid[:25] + "1." + secret},
		{"sid stray bits", sid[:25] + stray(sid[25]) + "." + secret},
		{"secret too short", sid + "." + secret[:42]},
		{"secret too long", sid + "." + secret + "A"},
		{"secret not base64url", sid + "." + secret[:42] + "+"},
		{"secret padded", sid + "." + secret + "="},
		{"secret stray bits", sid + "." + secret[:42] + stray64(secret[42])},
		{"three parts", tok + ".x"},
		{"spaces", " " + tok},
	}
	for _, tt := range tests {
		_, _, err := b.s.Rotate(ctx, tt.token, "ua", "ip")
		wantCode(t, "Rotate("+tt.name+")", err, domain.EINVALIDTOKEN)
		wantMessage(t, "Rotate("+tt.name+")", err, "Refresh token is invalid or expired.")
		_, err = b.s.Lookup(ctx, tt.token)
		wantCode(t, "Lookup("+tt.name+")", err, domain.EINVALIDTOKEN)
	}

	// None of that touched the real session or wrote anything.
	if _, err := b.s.Lookup(ctx, tok); err != nil {
		t.Errorf("Lookup(good) after bad tokens: %v", err)
	}
	keysAfter, err := b.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keysAfter) != len(keysBefore) {
		t.Errorf("keys = %v, want %v: bad tokens must not write", keysAfter, keysBefore)
	}
	if _, err := b.s.Get(ctx, sess.ID); err != nil {
		t.Errorf("Get: %v", err)
	}
}

// stray returns the base32 character that differs from c only in the two
// bits past a 16-byte id's end.
func stray(c byte) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i^1])
}

// stray64 does the same for a 32-byte secret's last base64url character.
func stray64(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i^1])
}

func TestSessionStoresNoSecret(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ctx := context.Background()
	var tokens []string
	for _, m := range []string{"m_alice", "m_bob"} {
		_, tok := create(t, b, m, "ua", "ip")
		tokens = append(tokens, tok)
		sess, tok, err := b.s.Rotate(ctx, tok, "ua", "ip")
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
		if err := b.s.Check(ctx, "jti-"+m, sess.ID, sess.MemberID); err != nil {
			t.Fatal(err)
		}
	}

	var dump strings.Builder
	iter := b.rdb.Scan(ctx, 0, "*", 0).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		dump.WriteString(key + "\n")
		typ, err := b.rdb.Type(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "hash":
			m, err := b.rdb.HGetAll(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range m {
				dump.WriteString(k + "=" + v + "\n")
			}
		case "set":
			ms, err := b.rdb.SMembers(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			dump.WriteString(strings.Join(ms, "\n") + "\n")
		case "string":
			v, err := b.rdb.Get(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			dump.WriteString(v + "\n")
		default:
			t.Errorf("unexpected %s key %s", typ, key)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	all := dump.String()
	for _, tok := range tokens {
		_, secret, _ := strings.Cut(tok, ".")
		if strings.Contains(all, secret) {
			t.Errorf("Redis holds the secret of %s", tok)
		}
	}
	// Nor does the database: only the hash of the current secret and of
	// the rotated-away ones.
	var rows []struct {
		SecretHash string `bun:"secret_hash"`
		PrevHashes string `bun:"prev_hashes"`
	}
	if err := b.db.NewSelect().Table("sessions").Column("secret_hash", "prev_hashes").Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	var stored strings.Builder
	for _, r := range rows {
		stored.WriteString(r.SecretHash + r.PrevHashes + "\n")
	}
	for _, tok := range tokens {
		_, secret, _ := strings.Cut(tok, ".")
		if strings.Contains(stored.String(), secret) {
			t.Errorf("the database holds the secret of %s", tok)
		}
	}
	sid, secret, _ := strings.Cut(tokens[3], ".")
	sum := sha256.Sum256([]byte(secret))
	var cur string
	if err := b.db.NewSelect().Table("sessions").Column("secret_hash").Where("id = ?", sid).Scan(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	if cur != hex.EncodeToString(sum[:]) {
		t.Errorf("secret_hash = %q, want the hex SHA-256 of the secret", cur)
	}
}

// A session lives TTL from its last rotation: rotating in time keeps it
// going past the first expiry; an hour without one ends it everywhere.
func TestSessionTTLSlides(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ctx := context.Background()
	sess, tok := create(t, b, "m_alice", "ua", "ip")
	b.clock.Advance(50 * time.Minute)
	_, tok, err := b.s.Rotate(ctx, tok, "ua", "ip")
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	b.clock.Advance(50 * time.Minute) // 100 minutes after Create
	if _, err := b.s.Lookup(ctx, tok); err != nil {
		t.Errorf("Lookup 50m after the rotation: %v", err)
	}
	if b.s.TTL() != time.Hour {
		t.Errorf("TTL() = %s, want 1h", b.s.TTL())
	}

	b.clock.Advance(10*time.Minute + time.Millisecond)
	_, _, err = b.s.Rotate(ctx, tok, "ua", "ip")
	wantCode(t, "Rotate(expired)", err, domain.EINVALIDTOKEN)
	_, err = b.s.Lookup(ctx, tok)
	wantCode(t, "Lookup(expired)", err, domain.EINVALIDTOKEN)
	_, err = b.s.Get(ctx, sess.ID)
	wantCode(t, "Get(expired)", err, domain.ENOTFOUND)
	wantCode(t, "Check(expired session)", b.s.Check(ctx, "jti", sess.ID, sess.MemberID), domain.ETOKENREVOKED)
	wantCode(t, "Revoke(expired)", b.s.Revoke(ctx, "m_alice", sess.ID), domain.ENOTFOUND)
	if list, err := b.s.List(ctx, "m_alice"); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want none", list, err)
	}
}

func TestSessionConcurrentRotate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		b := setupSessionsOn(t, bdb, time.Hour)
		ctx := context.Background()
		_, tok := create(t, b, "m_alice", "ua", "ip")

		const n = 20
		var (
			start              sync.WaitGroup
			done               sync.WaitGroup
			wins, revoked, bad atomic.Int32
			mu                 sync.Mutex
			winner             string
			others             []error
		)
		start.Add(1)
		for range n {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				_, next, err := b.s.Rotate(ctx, tok, "ua", "ip")
				switch domain.ErrorCode(err) {
				case "":
					wins.Add(1)
					mu.Lock()
					winner = next
					mu.Unlock()
				case domain.ETOKENREVOKED:
					revoked.Add(1)
				case domain.EINVALIDTOKEN:
					bad.Add(1)
				default:
					mu.Lock()
					others = append(others, err)
					mu.Unlock()
				}
			}()
		}
		start.Done()
		done.Wait()
		if len(others) > 0 {
			t.Fatalf("unexpected errors: %v", others)
		}
		if wins.Load() != 1 || revoked.Load() < 1 || wins.Load()+revoked.Load()+bad.Load() != n {
			t.Fatalf("wins %d, revoked %d, invalid %d; want exactly 1 win, at least 1 revoked, %d in all",
				wins.Load(), revoked.Load(), bad.Load(), n)
		}
		// The losers' replays ended the session, so the winner's token is dead too.
		_, _, err := b.s.Rotate(ctx, winner, "ua", "ip")
		wantCode(t, "Rotate(winner's token)", err, domain.EINVALIDTOKEN)
	})
}

func TestSessionList(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		b := setupSessionsOn(t, bdb, time.Hour)
		ctx := context.Background()

		s1, tok1 := create(t, b, "m_alice", "phone", "ip1")
		b.clock.Advance(time.Minute)
		s2, _ := create(t, b, "m_alice", "laptop", "ip2")
		b.clock.Advance(time.Minute)
		s3, _ := create(t, b, "m_alice", "tablet", "ip3")
		b.clock.Advance(time.Minute)
		create(t, b, "m_bob", "bob's", "ip4")
		b.clock.Advance(time.Minute)
		s1, _, err := b.s.Rotate(ctx, tok1, "phone", "ip5")
		if err != nil {
			t.Fatal(err)
		}

		ids := func(ss []auth.Session) []string {
			var out []string
			for _, s := range ss {
				out = append(out, s.ID)
			}
			return out
		}
		list, err := b.s.List(ctx, "m_alice")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if diff := cmp.Diff([]auth.Session{s1, s3, s2}, list); diff != "" {
			t.Errorf("List (-want +got), want most recently used first:\n%s", diff)
		}
		if list, err := b.s.List(ctx, "m_nobody"); err != nil || len(list) != 0 {
			t.Errorf("List(m_nobody) = %v, %v; want none", list, err)
		}

		// A revoked session is not listed.
		if err := b.s.Revoke(ctx, "m_alice", s3.ID); err != nil {
			t.Fatal(err)
		}
		list, err = b.s.List(ctx, "m_alice")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if diff := cmp.Diff([]string{s1.ID, s2.ID}, ids(list)); diff != "" {
			t.Errorf("List after Revoke (-want +got):\n%s", diff)
		}
	})
}

func TestSessionRevoke(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ctx := context.Background()
	alice, aliceTok := create(t, b, "m_alice", "ua", "ip")
	bob, bobTok := create(t, b, "m_bob", "ua", "ip")

	// Not yours = not found, and nothing happens to it.
	err := b.s.Revoke(ctx, "m_alice", bob.ID)
	wantCode(t, "Revoke(bob's session by alice)", err, domain.ENOTFOUND)
	if _, err := b.s.Lookup(ctx, bobTok); err != nil {
		t.Errorf("bob's session after alice's attempt: %v", err)
	}
	for _, id := range []string{"", "nope", strings.ToUpper(alice.ID), alice.ID + "x"} {
		wantCode(t, "Revoke("+id+")", b.s.Revoke(ctx, "m_alice", id), domain.ENOTFOUND)
	}

	if err := b.s.Revoke(ctx, "m_alice", alice.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	_, _, err = b.s.Rotate(ctx, aliceTok, "ua", "ip")
	wantCode(t, "Rotate after Revoke", err, domain.EINVALIDTOKEN)
	wantCode(t, "Check after Revoke", b.s.Check(ctx, "jti", alice.ID, alice.MemberID), domain.ETOKENREVOKED)
	wantCode(t, "Revoke again", b.s.Revoke(ctx, "m_alice", alice.ID), domain.ENOTFOUND)
	if err := b.s.Check(ctx, "jti", bob.ID, bob.MemberID); err != nil {
		t.Errorf("Check(bob) = %v, want nil", err)
	}
}

func TestSessionRevokeAll(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		b := setupSessionsOn(t, bdb, time.Hour)
		ctx := context.Background()
		var alice []auth.Session
		var aliceToks []string
		for range 3 {
			s, tok := create(t, b, "m_alice", "ua", "ip")
			alice = append(alice, s)
			aliceToks = append(aliceToks, tok)
		}
		bob, _ := create(t, b, "m_bob", "ua", "ip")

		if err := b.s.RevokeAll(ctx, "m_alice", alice[1].ID); err != nil {
			t.Fatalf("RevokeAll(except): %v", err)
		}
		for i, s := range alice {
			err := b.s.Check(ctx, "jti", s.ID, s.MemberID)
			if i == 1 {
				if err != nil {
					t.Errorf("kept session: Check = %v", err)
				}
				if _, err := b.s.Lookup(ctx, aliceToks[i]); err != nil {
					t.Errorf("kept session: Lookup = %v", err)
				}
				continue
			}
			wantCode(t, "Check(revoked)", err, domain.ETOKENREVOKED)
		}
		if err := b.s.Check(ctx, "jti", bob.ID, bob.MemberID); err != nil {
			t.Errorf("bob's session: Check = %v", err)
		}
		list, err := b.s.List(ctx, "m_alice")
		if err != nil || len(list) != 1 || list[0].ID != alice[1].ID {
			t.Errorf("List after RevokeAll(except) = %v, %v; want the kept one", list, err)
		}

		if err := b.s.RevokeAll(ctx, "m_alice", ""); err != nil {
			t.Fatalf("RevokeAll: %v", err)
		}
		wantCode(t, "Check after RevokeAll", b.s.Check(ctx, "jti", alice[1].ID, alice[1].MemberID), domain.ETOKENREVOKED)
		if list, err := b.s.List(ctx, "m_alice"); err != nil || len(list) != 0 {
			t.Errorf("List after RevokeAll = %v, %v; want none", list, err)
		}
		if err := b.s.RevokeAll(ctx, "m_nobody", ""); err != nil {
			t.Errorf("RevokeAll(no sessions) = %v, want nil", err)
		}
	})
}

func TestSessionDeny(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	store := db.SessionStore{DB: dbtest.Open(t, dbtest.SQLite)}
	// The real clock: PTTL counts in Redis's time.
	s, err := auth.NewSessions(auth.SessionParams{Store: store, Redis: rdb, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Parse accepts a token until exp + DefaultLeeway (10s), so the entry
	// lasts that long.
	wantPTTL := func(jti string, lo, hi time.Duration) {
		t.Helper()
		d, err := rdb.PTTL(ctx, prefix+"deny:"+jti).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d <= lo || d > hi {
			t.Errorf("PTTL of %s = %s, want in (%s, %s]", jti, d, lo, hi)
		}
	}
	exp := time.Now().Add(90*time.Second + 300*time.Millisecond)
	if err := s.Deny(ctx, "jti-live", exp); err != nil {
		t.Fatalf("Deny: %v", err)
	}
	wantPTTL("jti-live", 99*time.Second, 100*time.Second+300*time.Millisecond)

	// Expired, but still within the leeway: Parse still accepts it.
	if err := s.Deny(ctx, "jti-leeway", time.Now().Add(-time.Second)); err != nil {
		t.Fatalf("Deny(within leeway): %v", err)
	}
	wantPTTL("jti-leeway", 8*time.Second, 9*time.Second)

	if err := s.Deny(ctx, "jti-past", time.Now().Add(-auth.DefaultLeeway-time.Second)); err != nil {
		t.Fatalf("Deny(past): %v", err)
	}
	if n := rdb.Exists(ctx, prefix+"deny:jti-past").Val(); n != 0 {
		t.Error("an exp past the leeway left a deny-list entry")
	}

	// A leeway of its own, as TokenParams.Leeway may set.
	s30, err := auth.NewSessions(auth.SessionParams{Store: store, Redis: rdb, TTL: time.Hour, Leeway: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s30.Deny(ctx, "jti-30", exp); err != nil {
		t.Fatalf("Deny(leeway 30s): %v", err)
	}
	wantPTTL("jti-30", 119*time.Second, 120*time.Second+300*time.Millisecond)
	if err := s.Deny(ctx, "", exp); err == nil {
		t.Error("Deny(\"\") error = nil, want one")
	}
}

// Parse accepts a token until exp plus its leeway, so denying a token that
// expired a moment ago by the clock must still stop it.
func TestSessionDenyCoversLeeway(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ctx := context.Background()
	toks, err := auth.NewTokens(auth.TokenParams{Key: randomKey(t), TTL: 15 * time.Minute, NowFunc: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sess, _ := create(t, b, "m_alice", "ua", "ip")
	tok, _, err := toks.Issue("m_alice", domain.RoleMember, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(15*time.Minute + 5*time.Second)
	c, err := toks.Parse(tok)
	if err != nil {
		t.Fatalf("Parse 5s after exp: %v; want it accepted within the leeway", err)
	}
	if err := b.s.Deny(ctx, c.ID, c.ExpiresAt); err != nil {
		t.Fatalf("Deny: %v", err)
	}
	wantCode(t, "Check(denied within the leeway)", b.s.Check(ctx, c.ID, c.SessionID, c.MemberID), domain.ETOKENREVOKED)
}

func TestSessionCheck(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ctx := context.Background()
	sess, _ := create(t, b, "m_alice", "ua", "ip")

	if err := b.s.Check(ctx, "jti-fine", sess.ID, sess.MemberID); err != nil {
		t.Fatalf("Check(fine) = %v", err)
	}
	if err := b.s.Deny(ctx, "jti-denied", b.clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	err := b.s.Check(ctx, "jti-denied", sess.ID, sess.MemberID)
	wantCode(t, "Check(denied)", err, domain.ETOKENREVOKED)
	wantMessage(t, "Check(denied)", err, "Access token has been revoked.")
	if err := b.s.Check(ctx, "jti-fine", sess.ID, sess.MemberID); err != nil {
		t.Errorf("Check(other jti) = %v, want nil", err)
	}
	err = b.s.Check(ctx, "jti-fine", "nosuchsessionaaaaaaaaaaaaa", sess.MemberID)
	wantCode(t, "Check(unknown session)", err, domain.ETOKENREVOKED)
	wantMessage(t, "Check(unknown session)", err, "Access token has been revoked.")
	// A token of bob's naming alice's session is refused, whether the
	// answer comes from the cache (filled above) or from SQL.
	err = b.s.Check(ctx, "jti-fine", sess.ID, "m_bob")
	wantCode(t, "Check(another member's session, cached)", err, domain.EINVALIDTOKEN)
	if err := b.rdb.Del(ctx, prefix+"session:"+sess.ID).Err(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "Check(another member's session, from SQL)", b.s.Check(ctx, "jti-fine", sess.ID, "m_bob"), domain.EINVALIDTOKEN)
	if err := b.s.Check(ctx, "jti-fine", sess.ID, sess.MemberID); err != nil {
		t.Errorf("Check(own session) after a mismatch = %v, want nil", err)
	}

	// Without Redis, SQL answers: the live session passes, an ended one
	// does not. The deny-list is out of reach then; every Deny comes
	// with the session's revocation, which SQL sees.
	ended, _ := create(t, b, "m_alice", "ua", "ip")
	if err := b.s.Revoke(ctx, "m_alice", ended.ID); err != nil {
		t.Fatal(err)
	}
	_ = b.rdb.Close()
	if err := b.s.Check(ctx, "jti-fine", sess.ID, sess.MemberID); err != nil {
		t.Errorf("Check(live) with Redis closed = %v, want nil", err)
	}
	wantCode(t, "Check(revoked) with Redis closed", b.s.Check(ctx, "jti-fine", ended.ID, ended.MemberID), domain.ETOKENREVOKED)
	wantCode(t, "Check(unknown) with Redis closed", b.s.Check(ctx, "jti-fine", "nosuchsessionaaaaaaaaaaaaa", sess.MemberID), domain.ETOKENREVOKED)

	// With neither, there is no verdict: an internal error.
	_ = b.db.Close()
	if err := b.s.Check(ctx, "jti-fine", sess.ID, sess.MemberID); err == nil || domain.ErrorCode(err) != domain.EINTERNAL {
		t.Errorf("Check with Redis and SQL closed = %v, want an internal error", err)
	}
}

func TestSessionClientInputCapped(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ua := strings.Repeat("모임", 100) // 600 bytes, 3 per character
	ip := strings.Repeat("1", 100)
	sess, _ := create(t, b, "m_alice", ua, ip)
	if len(sess.UserAgent) != 255 || !utf8.ValidString(sess.UserAgent) || !strings.HasPrefix(ua, sess.UserAgent) {
		t.Errorf("user agent kept as %d bytes (valid %v), want 255 bytes cut at a character",
			len(sess.UserAgent), utf8.ValidString(sess.UserAgent))
	}
	if len(sess.IP) != auth.MaxIPLen {
		t.Errorf("IP kept as %d bytes, want %d", len(sess.IP), auth.MaxIPLen)
	}
	got, err := b.s.Get(context.Background(), sess.ID)
	if err != nil || got.UserAgent != sess.UserAgent || got.IP != sess.IP {
		t.Errorf("Get = %+v, %v; want the capped values stored", got, err)
	}
}

func TestNewSessionsParams(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	store := db.SessionStore{DB: dbtest.Open(t, dbtest.SQLite)}
	for _, tt := range []struct {
		name string
		p    auth.SessionParams
	}{
		{"no store", auth.SessionParams{Redis: rdb, TTL: time.Hour}},
		{"no Redis", auth.SessionParams{Store: store, TTL: time.Hour}},
		{"no TTL", auth.SessionParams{Store: store, Redis: rdb}},
		{"negative leeway", auth.SessionParams{Store: store, Redis: rdb, TTL: time.Hour, Leeway: -time.Second}},
		{"negative cache TTL", auth.SessionParams{Store: store, Redis: rdb, TTL: time.Hour, CacheTTL: -time.Second}},
	} {
		if _, err := auth.NewSessions(tt.p); err == nil {
			t.Errorf("NewSessions(%s): error = nil", tt.name)
		}
	}
	if _, err := auth.NewSessions(auth.SessionParams{Store: store, Redis: rdb, TTL: time.Hour}); err != nil {
		t.Errorf("NewSessions: %v", err)
	}
}

func TestSessionPrefix(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	s, err := auth.NewSessions(auth.SessionParams{Store: db.SessionStore{DB: dbtest.Open(t, dbtest.SQLite)},
		Redis: rdb, TTL: time.Hour, Prefix: "staging:"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sess, _, err := s.Create(ctx, "m_alice", "ua", "ip")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx, "jti", sess.ID, sess.MemberID); err != nil {
		t.Fatal(err)
	}
	if err := s.Deny(ctx, "jti", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "staging:") {
			t.Errorf("key %q lacks the prefix", k)
		}
	}
	if len(keys) != 2 {
		t.Errorf("keys = %v, want a cached session and a deny-list entry", keys)
	}
}

// Redis only caches sessions: a FLUSHALL (or a restart without persistence,
// or a failover to a replica that lagged) logs nobody out and brings no
// ended session back.
func TestSessionSurvivesRedisLoss(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		b := setupSessionsOn(t, bdb, time.Hour)
		ctx := context.Background()
		live, liveTok := create(t, b, "m_alice", "phone", "ip")
		ended, endedTok := create(t, b, "m_alice", "laptop", "ip")
		replayed, replayedTok := create(t, b, "m_bob", "ua", "ip")
		if _, _, err := b.s.Rotate(ctx, replayedTok, "ua", "ip"); err != nil {
			t.Fatal(err)
		}
		for _, s := range []auth.Session{live, ended, replayed} {
			if err := b.s.Check(ctx, "jti", s.ID, s.MemberID); err != nil {
				t.Fatalf("Check(%s) before: %v", s.UserAgent, err)
			}
		}
		if err := b.s.Revoke(ctx, "m_alice", ended.ID); err != nil {
			t.Fatal(err)
		}
		if err := b.s.Deny(ctx, "jti-out", b.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		_, _, err := b.s.Rotate(ctx, replayedTok, "ua", "ip")
		wantCode(t, "Rotate(replay)", err, domain.ETOKENREVOKED)

		// The test's own database only: FLUSHALL would empty every
		// database of the server, under the other tests running beside it.
		if err := b.rdb.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}

		if err := b.s.Check(ctx, "jti", live.ID, live.MemberID); err != nil {
			t.Errorf("Check(live) after FLUSHALL = %v, want nil", err)
		}
		if _, _, err := b.s.Rotate(ctx, liveTok, "phone", "ip"); err != nil {
			t.Errorf("Rotate(live) after FLUSHALL = %v, want a new token", err)
		}
		if list, err := b.s.List(ctx, "m_alice"); err != nil || len(list) != 1 || list[0].ID != live.ID {
			t.Errorf("List after FLUSHALL = %v, %v; want the live session", list, err)
		}
		wantCode(t, "Check(revoked) after FLUSHALL", b.s.Check(ctx, "jti", ended.ID, ended.MemberID), domain.ETOKENREVOKED)
		// The denied token's deny-list entry is gone; its session's
		// revocation is not.
		wantCode(t, "Check(denied, revoked) after FLUSHALL", b.s.Check(ctx, "jti-out", ended.ID, ended.MemberID), domain.ETOKENREVOKED)
		_, _, err = b.s.Rotate(ctx, endedTok, "laptop", "ip")
		wantCode(t, "Rotate(revoked) after FLUSHALL", err, domain.EINVALIDTOKEN)
		wantCode(t, "Check(replayed) after FLUSHALL", b.s.Check(ctx, "jti", replayed.ID, replayed.MemberID), domain.ETOKENREVOKED)
	})
}

// The cache answers for at most CacheTTL: a revocation made by an instance
// that could not reach Redis is seen by the others once the entry lapses,
// and a revocation that reaches Redis is seen at once.
func TestSessionCacheBound(t *testing.T) {
	t.Parallel()
	b := setupSessions(t, time.Hour)
	ctx := context.Background()
	const cacheTTL = 30 * time.Second
	cached, err := auth.NewSessions(auth.SessionParams{Store: db.SessionStore{DB: b.db}, Redis: b.rdb,
		TTL: time.Hour, CacheTTL: cacheTTL, NowFunc: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cut := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = cut.Close() })
	isolated, err := auth.NewSessions(auth.SessionParams{Store: db.SessionStore{DB: b.db}, Redis: cut,
		TTL: time.Hour, CacheTTL: cacheTTL, NowFunc: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := create(t, b, "m_alice", "ua", "ip")
	bob, _ := create(t, b, "m_bob", "ua", "ip")
	for _, sess := range []auth.Session{a, bob} {
		id := sess.ID
		if err := cached.Check(ctx, "jti", id, sess.MemberID); err != nil {
			t.Fatal(err)
		}
		d, err := b.rdb.PTTL(ctx, prefix+"session:"+id).Result()
		if err != nil || d <= 0 || d > cacheTTL {
			t.Fatalf("cache entry PTTL = %s, %v; want within (0, %s]", d, err, cacheTTL)
		}
	}

	// Revoked where Redis is out of reach: SQL has it, the cache does not.
	if err := isolated.Revoke(ctx, "m_alice", a.ID); err != nil {
		t.Fatalf("Revoke without Redis: %v", err)
	}
	if err := cached.Check(ctx, "jti", a.ID, a.MemberID); err != nil {
		t.Errorf("Check within the cache's life = %v; the entry was expected to answer", err)
	}
	if err := b.rdb.Del(ctx, prefix+"session:"+a.ID).Err(); err != nil { // as when the entry lapses
		t.Fatal(err)
	}
	wantCode(t, "Check once the entry lapsed", cached.Check(ctx, "jti", a.ID, a.MemberID), domain.ETOKENREVOKED)

	// Revoked through Redis: at once, whatever the cache said.
	if err := cached.Revoke(ctx, "m_bob", bob.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "Check right after Revoke", cached.Check(ctx, "jti", bob.ID, bob.MemberID), domain.ETOKENREVOKED)
}
