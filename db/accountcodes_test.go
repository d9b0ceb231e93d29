package db_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// TestAccountCodeCounts: the send counts are by member and by target in
// the window; codes asked for unknown addresses (no member) count only
// for their address. MarkUsed succeeds once however many race.
func TestAccountCodeCounts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		now := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
		codes := db.AccountCodes{}
		create := func(member, target string, at time.Time) *domain.AccountCode {
			t.Helper()
			c := &domain.AccountCode{ID: db.NewAccountCodeID(), Purpose: domain.CodeReset, MemberID: member,
				Target: target, CodeHash: "h", ExpiresAt: at.Add(time.Hour), CreatedAt: at}
			if err := codes.Create(ctx, bdb, c); err != nil {
				t.Fatal(err)
			}
			return c
		}
		create("m1", "a@example.com", now.Add(-25*time.Hour)) // out of the window
		create("m1", "a@example.com", now.Add(-time.Hour))
		last := create("m1", "b@example.com", now.Add(-time.Minute))
		for range 3 {
			create("", "ghost@example.com", now.Add(-time.Hour))
		}
		create("", "a@example.com", now.Add(-time.Hour))

		since := now.Add(-24 * time.Hour)
		got, err := codes.CountSends(ctx, bdb, domain.CodeReset, "m1", "a@example.com", since)
		if err != nil {
			t.Fatal(err)
		}
		if got.Member != 2 || got.Target != 2 || !got.Last.Equal(last.CreatedAt) {
			t.Errorf("member m1 to a@: %+v, want 2, 2, last %v", got, last.CreatedAt)
		}
		got, err = codes.CountSends(ctx, bdb, domain.CodeReset, "", "nobody@example.com", since)
		if err != nil {
			t.Fatal(err)
		}
		if got != (db.SendCounts{}) {
			t.Errorf("no member to a new address: %+v, want nothing", got)
		}
		got, err = codes.CountSends(ctx, bdb, domain.CodeReset, "", "ghost@example.com", since)
		if err != nil {
			t.Fatal(err)
		}
		if got.Member != 0 || got.Target != 3 || !got.Last.IsZero() {
			t.Errorf("no member to ghost@: %+v, want 0, 3, no last", got)
		}

		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				ok, err := codes.MarkUsed(ctx, bdb, last.ID, now)
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d calls marked the code used, want 1", wins.Load())
		}
	})
}
