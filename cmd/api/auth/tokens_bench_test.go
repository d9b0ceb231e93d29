package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// BenchmarkVerifyAccessToken is the per-request cost of authentication:
// verifying an access token's signature and claims, then one Redis round
// trip for the deny-list and the session's cache entry. It runs on MOIM_TEST_REDIS_URL when
// set, else on the in-memory Redis.
func BenchmarkVerifyAccessToken(b *testing.B) {
	rdb := newRedis(b)
	sessions, err := auth.NewSessions(auth.SessionParams{Store: db.SessionStore{DB: dbtest.Open(b, dbtest.SQLite)}, Redis: rdb, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	toks, err := auth.NewTokens(auth.TokenParams{Key: randomKey(b), TTL: 15 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	sess, _, err := sessions.Create(ctx, "m_bench", "bench", "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := toks.Issue("m_bench", domain.RoleMember, sess.ID)
	if err != nil {
		b.Fatal(err)
	}
	verify := func() error {
		c, err := toks.Parse(tok)
		if err != nil {
			return err
		}
		return sessions.Check(ctx, c.ID, c.SessionID, c.MemberID)
	}

	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := verify(); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Requests arrive concurrently; go-redis pools connections.
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := verify(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("parse-only", func(b *testing.B) {
		for b.Loop() {
			if _, err := toks.Parse(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
