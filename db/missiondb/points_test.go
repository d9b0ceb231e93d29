package missiondb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// pointsEpoch is a whole-microsecond time, which every dialect keeps exactly.
var pointsEpoch = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// memberRowID is the row id Post wants for a member's public id.
func memberRowID(t *testing.T, bdb bun.IDB, publicID string) int64 {
	t.Helper()
	var id int64
	if err := bdb.NewSelect().Table("members").Column("id").Where("public_id = ?", publicID).Scan(context.Background(), &id); err != nil {
		t.Fatalf("member %s: %v", publicID, err)
	}
	return id
}

// post runs one Post in its own transaction.
func post(ctx context.Context, bdb *bun.DB, p missiondb.PointPost) (posted bool, err error) {
	err = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		posted, err = (missiondb.Points{}).Post(ctx, tx, p)
		return err
	})
	return posted, err
}

func mustPost(t *testing.T, bdb *bun.DB, p missiondb.PointPost) {
	t.Helper()
	if posted, err := post(context.Background(), bdb, p); err != nil || !posted {
		t.Fatalf("post %+v: posted %v, err %v", p, posted, err)
	}
}

func countEntries(t *testing.T, bdb *bun.DB) int {
	t.Helper()
	return dbtest.CountRows(t, bdb, "point_entries")
}

// checkConsistent fails unless Check finds every balance equal to its sum.
func checkConsistent(t *testing.T, bdb *bun.DB) missiondb.PointCheck {
	t.Helper()
	c, err := (missiondb.Points{}).Check(context.Background(), bdb)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(c.Mismatches) > 0 {
		t.Errorf("Check found mismatches: %+v", c.Mismatches)
	}
	return c
}

func TestPointsPostIdempotent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("alice@example.com", "Alice"))
		key := memberRowID(t, bdb, alice.ID)
		p := missiondb.PointPost{MemberKey: key, Amount: 500, Kind: domain.PointCharge, Key: "payment:p1", Now: pointsEpoch}
		mustPost(t, bdb, p)
		// The same key again, even with another amount: no second entry.
		p.Amount = 900
		if posted, err := post(ctx, bdb, p); err != nil || posted {
			t.Fatalf("second post: posted %v, err %v; want false, nil", posted, err)
		}
		if n := countEntries(t, bdb); n != 1 {
			t.Errorf("%d entries, want 1", n)
		}
		if b, err := (missiondb.Points{}).Balance(ctx, bdb, key); err != nil || b != 500 {
			t.Errorf("balance = %d, %v; want 500", b, err)
		}
		checkConsistent(t, bdb)

		// A debit past the balance is refused and, rolled back, leaves
		// nothing; a member who never had points cannot be debited.
		_, err := post(ctx, bdb, missiondb.PointPost{MemberKey: key, Amount: -501, Kind: domain.PointStake, Key: "stake:1", Now: pointsEpoch})
		dbtest.CheckCode(t, err, domain.EINSUFFICIENTPOINTS, "")
		bob := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("bob@example.com", "Bob"))
		_, err = post(ctx, bdb, missiondb.PointPost{MemberKey: memberRowID(t, bdb, bob.ID), Amount: -1, Kind: domain.PointStake, Key: "stake:2", Now: pointsEpoch})
		dbtest.CheckCode(t, err, domain.EINSUFFICIENTPOINTS, "")
		if n := countEntries(t, bdb); n != 1 {
			t.Errorf("%d entries after refused debits, want 1", n)
		}
		// Exactly the balance may be spent.
		mustPost(t, bdb, missiondb.PointPost{MemberKey: key, Amount: -500, Kind: domain.PointStake, Key: "stake:3", Now: pointsEpoch})
		if c := checkConsistent(t, bdb); c.Members != 1 {
			t.Errorf("Check counted %d members, want 1", c.Members)
		}

		for _, bad := range []missiondb.PointPost{
			{MemberKey: key, Amount: 0, Kind: domain.PointCharge, Key: "k"},
			{MemberKey: key, Amount: domain.PointAmountMax + 1, Kind: domain.PointCharge, Key: "k"},
			{MemberKey: key, Amount: 1, Kind: 0, Key: "k"},
			{MemberKey: key, Amount: 1, Kind: domain.PointCharge, Key: ""},
			// No such member: an error on every dialect, not a silent no-op.
			{MemberKey: key + 1000, Amount: 1, Kind: domain.PointCharge, Key: "payment:nobody"},
		} {
			if _, err := post(ctx, bdb, bad); err == nil {
				t.Errorf("post %+v succeeded", bad)
			}
		}
	})
}

// TestPointsConcurrentDebits races debits on one member whose balance
// covers exactly some of them: those succeed, the rest are refused, and
// the balance never goes below zero nor away from the sum of the entries.
func TestPointsConcurrentDebits(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		m := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("spender@example.com", "Spender"))
		key := memberRowID(t, bdb, m.ID)
		const (
			debits  = 24
			covered = 7
			stake   = 30
		)
		mustPost(t, bdb, missiondb.PointPost{MemberKey: key, Amount: covered * stake, Kind: domain.PointCharge, Key: "payment:fund", Now: pointsEpoch})

		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			ok, poor int
			other    []error
		)
		start := make(chan struct{})
		for i := range debits {
			wg.Go(func() {
				<-start
				_, err := post(ctx, bdb, missiondb.PointPost{MemberKey: key, Amount: -stake, Kind: domain.PointStake,
					Key: fmt.Sprintf("stake:%d", i), Now: pointsEpoch})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case domain.ErrorCode(err) == domain.EINSUFFICIENTPOINTS:
					poor++
				default:
					other = append(other, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(other...); err != nil {
			t.Fatalf("unexpected errors: %v", err)
		}
		if ok != covered || poor != debits-covered {
			t.Errorf("%d debits succeeded and %d were refused, want %d and %d", ok, poor, covered, debits-covered)
		}
		b, err := (missiondb.Points{}).Balance(ctx, bdb, key)
		if err != nil || b != 0 {
			t.Errorf("balance = %d, %v; want 0", b, err)
		}
		if n := countEntries(t, bdb); n != 1+covered {
			t.Errorf("%d entries, want %d (refused debits roll back theirs)", n, 1+covered)
		}
		checkConsistent(t, bdb)
	})
}

func TestPointsList(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		points := missiondb.Points{}
		alice := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("alice@example.com", "Alice"))
		bob := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("bob@example.com", "Bob"))
		carol := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("carol@example.com", "Carol"))
		aliceKey, bobKey := memberRowID(t, bdb, alice.ID), memberRowID(t, bdb, bob.ID)

		// Interleaved with Bob's, so Alice's ids have gaps.
		var want []domain.PointEntry // newest first
		for i := range 12 {
			at := pointsEpoch.Add(time.Duration(i) * time.Second)
			p := missiondb.PointPost{MemberKey: aliceKey, Amount: int64(i + 1), Kind: domain.PointAdjustment,
				Key: fmt.Sprintf("admin:%d", i), Reason: fmt.Sprintf("gift %d", i), Now: at}
			mustPost(t, bdb, p)
			e, err := points.FindByKey(ctx, bdb, p.Key)
			if err != nil {
				t.Fatal(err)
			}
			if e.MemberID != alice.ID || e.Amount != p.Amount || e.Kind != p.Kind || e.Reason != p.Reason || !e.CreatedAt.Equal(at) || e.ID == "" || e.MissionID != "" {
				t.Errorf("entry %d = %+v", i, e)
			}
			want = append([]domain.PointEntry{*e}, want...)
			if i%4 == 0 {
				mustPost(t, bdb, missiondb.PointPost{MemberKey: bobKey, Amount: 7, Kind: domain.PointCharge, Key: fmt.Sprintf("payment:b%d", i), Now: at})
			}
		}

		var (
			got    []domain.PointEntry
			sizes  []int
			cursor string
		)
		for page := 0; ; page++ {
			if page > 5 {
				t.Fatalf("still paging after %d pages", page)
			}
			p, err := points.List(ctx, bdb, alice.ID, cursor, 5)
			if err != nil {
				t.Fatalf("List page %d: %v", page+1, err)
			}
			if p.Balance != 78 {
				t.Errorf("page %d: balance %d, want 78", page+1, p.Balance)
			}
			got = append(got, p.Entries...)
			sizes = append(sizes, len(p.Entries))
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if diff := cmp.Diff([]int{5, 5, 2}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("paged list (-want +got):\n%s", diff)
		}

		empty, err := points.List(ctx, bdb, carol.ID, "", 10)
		if err != nil || empty.Balance != 0 || len(empty.Entries) != 0 || empty.Next != "" {
			t.Errorf("member without points: %+v, %v", empty, err)
		}
		_, err = points.List(ctx, bdb, "nosuchmember", "", 10)
		dbtest.CheckCode(t, err, domain.ENOTFOUND, "")
		// A cursor is bound to its member.
		_, err = points.List(ctx, bdb, bob.ID, want[0].ID, 10)
		dbtest.CheckCode(t, err, domain.EINVALID, "cursor")
		_, err = points.List(ctx, bdb, alice.ID, "'; DROP TABLE point_entries;--", 10)
		dbtest.CheckCode(t, err, domain.EINVALID, "cursor")
		_, err = points.List(ctx, bdb, alice.ID, "", 0)
		dbtest.CheckCode(t, err, domain.EINVALID, "limit")
	})
}

func TestPointsPostFor(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("alice@example.com", "Alice"))
		postFor := func(member string, p missiondb.PointPost) (res missiondb.PointResult, err error) {
			err = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
				res, err = (missiondb.Points{}).PostFor(ctx, tx, member, p)
				return err
			})
			return res, err
		}
		p := missiondb.PointPost{Amount: 40, Kind: domain.PointCharge, Key: "payment:x", Now: pointsEpoch}
		res, err := postFor(alice.ID, p)
		if err != nil || !res.Posted || res.Balance != 40 || res.Entry.Amount != 40 || res.Entry.MemberID != alice.ID {
			t.Fatalf("first PostFor: %+v, %v", res, err)
		}
		again, err := postFor(alice.ID, p)
		if err != nil || again.Posted || again.Balance != 40 || again.Entry != (domain.PointEntry{}) {
			t.Errorf("second PostFor: %+v, %v; want not posted", again, err)
		}
		if e, err := (missiondb.Points{}).FindByKey(ctx, bdb, p.Key); err != nil || *e != res.Entry {
			t.Errorf("FindByKey = %+v, %v; want the first entry", e, err)
		}
		_, err = postFor("nosuchmember", missiondb.PointPost{Amount: 1, Kind: domain.PointCharge, Key: "payment:y", Now: pointsEpoch})
		dbtest.CheckCode(t, err, domain.ENOTFOUND, "member_id")
		if n := countEntries(t, bdb); n != 1 {
			t.Errorf("%d entries, want 1", n)
		}
	})
}

func TestPointsCheckFindsTampering(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("alice@example.com", "Alice"))
		bob := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("bob@example.com", "Bob"))
		carol := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("carol@example.com", "Carol"))
		dbtest.MustCreateMember(t, bdb, dbtest.NewMember("dan@example.com", "Dan")) // no wallet at all
		aliceKey, bobKey, carolKey := memberRowID(t, bdb, alice.ID), memberRowID(t, bdb, bob.ID), memberRowID(t, bdb, carol.ID)
		mustPost(t, bdb, missiondb.PointPost{MemberKey: aliceKey, Amount: 100, Kind: domain.PointCharge, Key: "payment:a", Now: pointsEpoch})
		mustPost(t, bdb, missiondb.PointPost{MemberKey: aliceKey, Amount: -30, Kind: domain.PointStake, Key: "stake:a", Now: pointsEpoch})
		mustPost(t, bdb, missiondb.PointPost{MemberKey: bobKey, Amount: 5, Kind: domain.PointCharge, Key: "payment:b", Now: pointsEpoch})
		mustPost(t, bdb, missiondb.PointPost{MemberKey: carolKey, Amount: 9, Kind: domain.PointCharge, Key: "payment:c", Now: pointsEpoch})
		if c := checkConsistent(t, bdb); c.Members != 3 {
			t.Fatalf("Check counted %d members, want 3", c.Members)
		}

		// Alice's balance edited by hand, Bob's balance row gone.
		if _, err := bdb.NewUpdate().Table("point_balances").Set("balance = balance + 1").Where("member_id = ?", aliceKey).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := bdb.NewDelete().Table("point_balances").Where("member_id = ?", bobKey).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := (missiondb.Points{}).Check(ctx, bdb)
		if err != nil {
			t.Fatal(err)
		}
		want := missiondb.PointCheck{Members: 3, Mismatches: []missiondb.PointMismatch{
			{MemberID: alice.ID, Balance: 71, HasBalance: true, Sum: 70},
			{MemberID: bob.ID, Balance: 0, HasBalance: false, Sum: 5},
		}}
		if diff := cmp.Diff(want, c); diff != "" {
			t.Errorf("Check (-want +got):\n%s", diff)
		}
	})
}

// TestPointsConcurrentSameKey races one payment delivered many times at
// once: one post writes it, the others report a replay without an error.
func TestPointsConcurrentSameKey(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		m := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("payer@example.com", "Payer"))
		key := memberRowID(t, bdb, m.ID)
		const tries = 12
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			posted int
			errs   []error
		)
		start := make(chan struct{})
		for range tries {
			wg.Go(func() {
				<-start
				ok, err := post(ctx, bdb, missiondb.PointPost{MemberKey: key, Amount: 50, Kind: domain.PointCharge, Key: "payment:same", Now: pointsEpoch})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if ok {
					posted++
				}
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("unexpected errors: %v", err)
		}
		if posted != 1 {
			t.Errorf("%d posts wrote the payment, want 1", posted)
		}
		if b, err := (missiondb.Points{}).Balance(ctx, bdb, key); err != nil || b != 50 {
			t.Errorf("balance = %d, %v; want 50", b, err)
		}
		checkConsistent(t, bdb)
	})
}
