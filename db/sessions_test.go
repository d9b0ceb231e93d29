package db_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// TestDeleteEndedSessions: sessions that expired before the cut-off go,
// revoked or not, a batch at a time; a revoked session that has not yet
// expired stays, so a replay of its token is still recognised.
func TestDeleteEndedSessions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		st := db.SessionStore{DB: bdb}
		for id, expires := range map[string]time.Duration{
			"expired-3h": -3 * time.Hour, "expired-2h": -2 * time.Hour, "expired-1h": -time.Hour,
			"revoked-alive": time.Hour, "alive": time.Hour,
		} {
			s := &domain.Session{ID: id, MemberID: "m1", SecretHash: "h", CreatedAt: now.Add(-24 * time.Hour),
				LastUsedAt: now.Add(-4 * time.Hour), ExpiresAt: now.Add(expires)}
			if err := st.CreateSession(ctx, s); err != nil {
				t.Fatalf("create %s: %v", id, err)
			}
		}
		if ok, err := st.RevokeSession(ctx, "revoked-alive", "m1", now.Add(-time.Hour)); err != nil || !ok {
			t.Fatalf("revoke = %v, %v", ok, err)
		}
		// Two at a time, oldest first: a full batch, then a short one.
		for _, want := range []int{2, 1, 0} {
			n, err := st.DeleteEndedSessions(ctx, now, 2)
			if err != nil || n != want {
				t.Fatalf("DeleteEndedSessions = %d, %v; want %d", n, err, want)
			}
		}
		var ids []string
		if err := bdb.NewSelect().TableExpr("sessions").Column("id").Order("id").Scan(ctx, &ids); err != nil {
			t.Fatalf("read sessions: %v", err)
		}
		if want := []string{"alive", "revoked-alive"}; !slices.Equal(ids, want) {
			t.Errorf("sessions left = %v, want %v", ids, want)
		}
	})
}

// TestHasSessionFromIP: any session row of the member counts, revoked and
// expired ones too; another member's does not, nor another IP.
func TestHasSessionFromIP(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		st := db.SessionStore{DB: bdb}
		for _, s := range []domain.Session{
			{ID: "alive", MemberID: "m1", IP: "192.0.2.1", ExpiresAt: now.Add(time.Hour)},
			{ID: "expired", MemberID: "m1", IP: "192.0.2.2", ExpiresAt: now.Add(-time.Hour)},
			{ID: "revoked", MemberID: "m1", IP: "2001:db8::1", ExpiresAt: now.Add(time.Hour)},
			{ID: "other", MemberID: "m2", IP: "192.0.2.9", ExpiresAt: now.Add(time.Hour)},
		} {
			s.SecretHash, s.CreatedAt, s.LastUsedAt = "h", now.Add(-2*time.Hour), now.Add(-2*time.Hour)
			if err := st.CreateSession(ctx, &s); err != nil {
				t.Fatalf("create %s: %v", s.ID, err)
			}
		}
		if ok, err := st.RevokeSession(ctx, "revoked", "m1", now); err != nil || !ok {
			t.Fatalf("revoke = %v, %v", ok, err)
		}
		for _, tt := range []struct {
			member, ip string
			want       bool
		}{
			{"m1", "192.0.2.1", true},
			{"m1", "192.0.2.2", true},
			{"m1", "2001:db8::1", true},
			{"m1", "192.0.2.9", false},
			{"m2", "192.0.2.1", false},
			{"", "192.0.2.1", false},
			{"m1", "", false},
		} {
			got, err := st.HasSessionFromIP(ctx, tt.member, tt.ip)
			if err != nil || got != tt.want {
				t.Errorf("HasSessionFromIP(%q, %q) = %v, %v; want %v", tt.member, tt.ip, got, err, tt.want)
			}
		}
	})
}
