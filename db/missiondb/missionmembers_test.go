package missiondb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// missionTime is the mission tests' "now".
var missionTime = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)

// missionMember creates a member with balance points (an ADJUSTMENT) and
// returns its public id and row id.
func missionMember(t *testing.T, bdb *bun.DB, name string, balance int64) (string, int64) {
	t.Helper()
	m := dbtest.MustCreateMember(t, bdb, dbtest.NewMember(name+"@example.com", name))
	key := missionMemberKey(t, bdb, m.ID)
	if balance > 0 {
		if _, err := (missiondb.Points{}).Post(context.Background(), bdb, missiondb.PointPost{MemberKey: key, Amount: balance,
			Kind: domain.PointAdjustment, Key: "grant:" + m.ID, Reason: "test", Now: missionTime}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
	return m.ID, key
}

func missionMemberKey(t *testing.T, bdb bun.IDB, id string) int64 {
	t.Helper()
	var key int64
	if err := bdb.NewSelect().Table("members").Column("id").Where("public_id = ?", id).Scan(context.Background(), &key); err != nil {
		t.Fatalf("member key %s: %v", id, err)
	}
	return key
}

func missionBalance(t *testing.T, bdb bun.IDB, key int64) int64 {
	t.Helper()
	b, err := (missiondb.Points{}).Balance(context.Background(), bdb, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkLedger fails unless every balance equals the sum of its entries.
func checkLedger(t *testing.T, bdb bun.IDB) {
	t.Helper()
	var bad []struct {
		MemberID int64 `bun:"member_id"`
		Balance  int64 `bun:"balance"`
		Sum      int64 `bun:"total"`
	}
	err := bdb.NewSelect().TableExpr("point_balances AS pb").
		ColumnExpr("pb.member_id, pb.balance").
		ColumnExpr("(SELECT COALESCE(SUM(pe.amount), 0) FROM point_entries AS pe WHERE pe.member_id = pb.member_id) AS total").
		Scan(context.Background(), &bad)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		if b.Balance != b.Sum || b.Balance < 0 {
			t.Errorf("member %d: balance %d, entries sum to %d", b.MemberID, b.Balance, b.Sum)
		}
	}
}

// readyMission is a valid mission of host starting a day after missionTime
// with its schedule and one window.
func readyMission(host string, stake int64, capacity int) *domain.Mission {
	s := domain.MissionSchedule{StartsAt: missionTime.Add(24 * time.Hour), Weeks: 2, DaysPerWeek: 5, PerDay: 1}
	return &domain.Mission{HostID: host, Title: "매일 만보 걷기", Type: domain.MissionExercise,
		Description: "하루 만 보씩 걸어요", Stake: stake, Capacity: capacity, Schedule: s,
		EndsAt: s.EndsAt(time.UTC), Windows: []domain.MissionWindow{{Start: 6 * 60, End: 9 * 60}}, CreatedAt: missionTime}
}

func mustCreateMission(t *testing.T, bdb *bun.DB, m *domain.Mission) *domain.Mission {
	t.Helper()
	if err := db.RunInTx(context.Background(), bdb, func(ctx context.Context, tx bun.Tx) error {
		return (missiondb.Missions{}).Create(ctx, tx, m)
	}); err != nil {
		t.Fatalf("create mission: %v", err)
	}
	return m
}

// joinMission is the API's join.
func joinMission(ctx context.Context, bdb *bun.DB, id, member, code string, now time.Time) error {
	_, err := (missiondb.Missions{}).JoinRetrying(ctx, bdb, missiondb.MissionJoin{MissionID: id, Code: code, MemberID: member},
		func() time.Time { return now })
	return err
}

func mustFindMission(t *testing.T, bdb bun.IDB, id string) *domain.Mission {
	t.Helper()
	m, err := (missiondb.Missions{}).FindByID(context.Background(), bdb, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMissionCreate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host, hostKey := missionMember(t, bdb, "host", 1000)
		m := mustCreateMission(t, bdb, readyMission(host, 300, 4))
		if m.Status != domain.MissionOpen || m.MemberCount != 1 || m.Version != 1 || m.Host != "host" ||
			len(m.Windows) != 1 || m.ID == "" || m.Key == 0 {
			t.Errorf("created %+v", m)
		}
		if len(m.Code) != domain.MissionCodeLen || strings.Trim(m.Code, domain.MissionCodeAlphabet) != "" {
			t.Errorf("code %q", m.Code)
		}
		if got := missionBalance(t, bdb, hostKey); got != 700 {
			t.Errorf("host balance = %d, want 700", got)
		}
		if got, err := (missiondb.Missions{}).FindByCode(ctx, bdb, m.Code); err != nil || got.ID != m.ID {
			t.Errorf("FindByCode = %v, %v", got, err)
		}
		members, err := (missiondb.Missions{}).Members(ctx, bdb, m)
		if err != nil || len(members) != 1 || !members[0].Host || members[0].Stake != 300 ||
			members[0].Status != domain.MissionMemberActive {
			t.Errorf("members %+v, %v", members, err)
		}

		draft := readyMission(host, 300, 4)
		draft.Schedule, draft.EndsAt = domain.MissionSchedule{}, time.Time{}
		draft = mustCreateMission(t, bdb, draft)
		if draft.Status != domain.MissionUnactivated || !draft.Schedule.StartsAt.IsZero() {
			t.Errorf("draft %+v", draft)
		}
		if draft.Code == m.Code {
			t.Error("two missions share a code")
		}

		// 400 left: a third at 500 is refused, and nothing of it stays.
		entries := countEntries(t, bdb)
		var count int64
		err = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			return (missiondb.Missions{}).Create(ctx, tx, readyMission(host, 500, 4))
		})
		dbtest.CheckCode(t, err, domain.EINSUFFICIENTPOINTS, "")
		if count, err = bdb.NewSelect().Table("missions").Count(ctx); err != nil || count != 2 {
			t.Errorf("missions = %d, %v; want 2", count, err)
		}
		if got := countEntries(t, bdb); got != entries {
			t.Errorf("entries %d → %d", entries, got)
		}
		if got := missionBalance(t, bdb, hostKey); got != 400 {
			t.Errorf("host balance = %d, want 400", got)
		}
		checkLedger(t, bdb)
	})
}

func TestMissionJoinLeave(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host, _ := missionMember(t, bdb, "host", 1000)
		alice, aliceKey := missionMember(t, bdb, "alice", 1000)
		bob, bobKey := missionMember(t, bdb, "bob", 1000)
		poor, poorKey := missionMember(t, bdb, "poor", 299)
		m := mustCreateMission(t, bdb, readyMission(host, 300, 3))

		if err := joinMission(ctx, bdb, m.ID, alice, "", missionTime); err != nil {
			t.Fatal(err)
		}
		if got := missionBalance(t, bdb, aliceKey); got != 700 {
			t.Errorf("alice balance = %d, want 700", got)
		}
		dbtest.CheckCode(t, joinMission(ctx, bdb, m.ID, alice, "", missionTime), domain.EALREADYJOINED, "")
		entries := countEntries(t, bdb)
		dbtest.CheckCode(t, joinMission(ctx, bdb, m.ID, poor, "", missionTime), domain.EINSUFFICIENTPOINTS, "")
		if got := missionBalance(t, bdb, poorKey); got != 299 {
			t.Errorf("poor balance = %d, want 299", got)
		}
		if got := countEntries(t, bdb); got != entries {
			t.Errorf("entries %d → %d after a refused join", entries, got)
		}
		if got := mustFindMission(t, bdb, m.ID); got.MemberCount != 2 || got.Version != 2 {
			t.Errorf("after joins: count %d version %d", got.MemberCount, got.Version)
		}

		// A stale read loses.
		stale := mustFindMission(t, bdb, m.ID)
		if err := joinMission(ctx, bdb, m.ID, bob, "", missionTime); err != nil {
			t.Fatal(err)
		}
		if _, _, err := (missiondb.Missions{}).Join(ctx, bdb, stale, poor, missionTime); !errors.Is(err, db.ErrStale) &&
			domain.ErrorCode(err) != domain.EINSUFFICIENTPOINTS {
			t.Errorf("stale join: %v", err)
		}
		carol, _ := missionMember(t, bdb, "carol", 1000)
		dbtest.CheckCode(t, joinMission(ctx, bdb, m.ID, carol, "", missionTime), domain.EMISSIONFULL, "")

		// Leaving before the start refunds; the seat is free again.
		cur := mustFindMission(t, bdb, m.ID)
		refund, balance, err := (missiondb.Missions{}).Leave(ctx, bdb, cur, bob, missionTime)
		if err != nil || refund != 300 || balance != 1000 {
			t.Errorf("leave = %d, %d, %v", refund, balance, err)
		}
		if got := missionBalance(t, bdb, bobKey); got != 1000 {
			t.Errorf("bob balance = %d, want 1000", got)
		}
		_, _, err = (missiondb.Missions{}).Leave(ctx, bdb, mustFindMission(t, bdb, m.ID), bob, missionTime)
		dbtest.CheckCode(t, err, domain.ENOTPARTICIPATING, "")
		_, _, err = (missiondb.Missions{}).Leave(ctx, bdb, mustFindMission(t, bdb, m.ID), host, missionTime)
		dbtest.CheckCode(t, err, domain.EHOSTCANNOTLEAVE, "")
		// Joining again is a new stake, refundable again.
		if err := joinMission(ctx, bdb, m.ID, bob, "", missionTime); err != nil {
			t.Fatal(err)
		}
		if _, err := (missiondb.Missions{}).Remove(ctx, bdb, mustFindMission(t, bdb, m.ID), bob, missionTime); err != nil {
			t.Fatal(err)
		}
		if got := missionBalance(t, bdb, bobKey); got != 1000 {
			t.Errorf("bob balance after removal = %d, want 1000", got)
		}

		// After the start: nobody joins; once ONGOING a leave forfeits.
		start := m.Schedule.StartsAt
		dbtest.CheckCode(t, joinMission(ctx, bdb, m.ID, carol, "", start), domain.EMISSIONNOTOPEN, "")
		_, _, err = (missiondb.Missions{}).Leave(ctx, bdb, mustFindMission(t, bdb, m.ID), alice, start)
		dbtest.CheckCode(t, err, domain.EMISSIONNOTOPEN, "")
		if _, err := bdb.NewUpdate().Table("missions").Set("status = ?", int16(domain.MissionOngoing)).
			Set("version = version + 1").Where("public_id = ?", m.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		refund, balance, err = (missiondb.Missions{}).Leave(ctx, bdb, mustFindMission(t, bdb, m.ID), alice, start.Add(time.Hour))
		if err != nil || refund != 0 || balance != 700 {
			t.Errorf("leave after start = %d, %d, %v", refund, balance, err)
		}
		members, err := (missiondb.Missions{}).Members(ctx, bdb, m)
		if err != nil || len(members) != 2 || members[1].Status != domain.MissionMemberLeft || members[1].LeftAt.IsZero() {
			t.Errorf("members %+v, %v", members, err)
		}
		if got := mustFindMission(t, bdb, m.ID); got.MemberCount != 1 {
			t.Errorf("count %d after a forfeit", got.MemberCount)
		}
		_, err = (missiondb.Missions{}).Cancel(ctx, bdb, mustFindMission(t, bdb, m.ID), start.Add(time.Hour))
		dbtest.CheckCode(t, err, domain.EMISSIONNOTOPEN, "")
		checkLedger(t, bdb)
	})
}

func TestMissionPrivateCode(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host, _ := missionMember(t, bdb, "host", 1000)
		alice, aliceKey := missionMember(t, bdb, "alice", 1000)
		m := readyMission(host, 300, 3)
		m.Private = true
		m = mustCreateMission(t, bdb, m)
		dbtest.CheckCode(t, joinMission(ctx, bdb, m.ID, alice, "", missionTime), domain.EWRONGCODE, "code")
		dbtest.CheckCode(t, joinMission(ctx, bdb, m.ID, alice, "ABCDEFGH", missionTime), domain.EWRONGCODE, "code")
		if got := missionBalance(t, bdb, aliceKey); got != 1000 {
			t.Errorf("balance %d after refused joins", got)
		}
		if err := joinMission(ctx, bdb, m.ID, alice, strings.ToLower(m.Code), missionTime); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMissionCancelRefundsEveryone(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host, hostKey := missionMember(t, bdb, "host", 1000)
		m := mustCreateMission(t, bdb, readyMission(host, 400, 5))
		var keys []int64
		for i := range 3 {
			id, key := missionMember(t, bdb, fmt.Sprintf("m%d", i), 400)
			keys = append(keys, key)
			if err := joinMission(ctx, bdb, m.ID, id, "", missionTime); err != nil {
				t.Fatal(err)
			}
		}
		var refunded []domain.MissionMember
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			var err error
			refunded, err = (missiondb.Missions{}).Cancel(ctx, tx, mustFindMission(t, tx, m.ID), missionTime)
			return err
		})
		if err != nil || len(refunded) != 4 {
			t.Fatalf("cancel = %d members, %v", len(refunded), err)
		}
		if got := mustFindMission(t, bdb, m.ID); got.Status != domain.MissionCancelled || got.ClosedAt.IsZero() {
			t.Errorf("after cancel %+v", got)
		}
		for _, k := range append(keys, hostKey) {
			want := int64(400)
			if k == hostKey {
				want = 1000
			}
			if got := missionBalance(t, bdb, k); got != want {
				t.Errorf("member %d balance %d, want %d", k, got, want)
			}
		}
		// Twice is refused, and refunds nothing more.
		_, err = (missiondb.Missions{}).Cancel(ctx, bdb, mustFindMission(t, bdb, m.ID), missionTime)
		dbtest.CheckCode(t, err, domain.EMISSIONNOTOPEN, "")
		checkLedger(t, bdb)
	})
}

func TestMissionScheduleAndWindows(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host, _ := missionMember(t, bdb, "host", 1000)
		draft := readyMission(host, 300, 4)
		ready := *draft
		draft.Schedule, draft.EndsAt, draft.Windows = domain.MissionSchedule{}, time.Time{}, nil
		m := mustCreateMission(t, bdb, draft)
		if err := (missiondb.Missions{}).SetSchedule(ctx, bdb, m, ready.Schedule, ready.EndsAt, missionTime); err != nil {
			t.Fatal(err)
		}
		if got := mustFindMission(t, bdb, m.ID); got.Status != domain.MissionUnactivated || !got.Schedule.StartsAt.Equal(ready.Schedule.StartsAt) ||
			got.Schedule.Weeks != 2 || !got.EndsAt.Equal(ready.EndsAt) {
			t.Errorf("after schedule %+v", got)
		}
		ws := []domain.MissionWindow{{Start: 60, End: 120}, {Start: 1200, End: 1440}}
		m = mustFindMission(t, bdb, m.ID)
		if err := (missiondb.Missions{}).SetWindows(ctx, bdb, m, ws, missionTime); err != nil {
			t.Fatal(err)
		}
		got := mustFindMission(t, bdb, m.ID)
		if got.Status != domain.MissionOpen || len(got.Windows) != 2 || got.Windows[1] != ws[1] {
			t.Errorf("after windows %+v", got)
		}
		// Replaced, not added to.
		stale := *got
		if err := (missiondb.Missions{}).SetWindows(ctx, bdb, got, ws[:1], missionTime); err != nil {
			t.Fatal(err)
		}
		if got := mustFindMission(t, bdb, m.ID); len(got.Windows) != 1 {
			t.Errorf("windows %+v", got.Windows)
		}
		// A stale edit loses.
		if err := (missiondb.Missions{}).SetWindows(ctx, bdb, &stale, ws, missionTime); !errors.Is(err, db.ErrStale) {
			t.Errorf("stale SetWindows: %v", err)
		}
	})
}

// TestMissionJoinRace: 50 members with exactly the stake join an 8-seat
// mission at once. 7 join (the host is the eighth), 43 are refused with
// their balance untouched, and every balance is the sum of its entries.
func TestMissionJoinRace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host, _ := missionMember(t, bdb, "host", 500)
		m := mustCreateMission(t, bdb, readyMission(host, 500, 8))
		const n = 50
		ids, keys := make([]string, n), make([]int64, n)
		for i := range n {
			ids[i], keys[i] = missionMember(t, bdb, fmt.Sprintf("racer%02d", i), 500)
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = joinMission(ctx, bdb, m.ID, ids[i], "", missionTime)
			})
		}
		close(start)
		wg.Wait()
		joined := 0
		for i, err := range errs {
			want := int64(500)
			switch {
			case err == nil:
				joined++
				want = 0
			case domain.ErrorCode(err) == domain.EMISSIONFULL:
			default:
				t.Errorf("racer %d: %v", i, err)
			}
			if got := missionBalance(t, bdb, keys[i]); got != want {
				t.Errorf("racer %d (err %v): balance %d, want %d", i, err, got, want)
			}
		}
		if joined != 7 {
			t.Errorf("%d joined, want 7", joined)
		}
		got := mustFindMission(t, bdb, m.ID)
		members, err := (missiondb.Missions{}).Members(ctx, bdb, got)
		if err != nil || got.MemberCount != 8 || len(members) != 8 {
			t.Errorf("count %d, %d rows, %v", got.MemberCount, len(members), err)
		}
		checkLedger(t, bdb)
	})
}

// TestMissionJoinTwoAtOnce: a member with points for one stake joins two
// missions at once; exactly one join succeeds.
func TestMissionJoinTwoAtOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host, _ := missionMember(t, bdb, "host", 2000)
		a := mustCreateMission(t, bdb, readyMission(host, 700, 4))
		b := mustCreateMission(t, bdb, readyMission(host, 700, 4))
		for round := range 5 {
			who, key := missionMember(t, bdb, fmt.Sprintf("twice%d", round), 700)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, id := range []string{a.ID, b.ID} {
				wg.Go(func() { errs[i] = joinMission(ctx, bdb, id, who, "", missionTime) })
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
				} else if domain.ErrorCode(err) != domain.EINSUFFICIENTPOINTS {
					t.Errorf("round %d: %v", round, err)
				}
			}
			if ok != 1 || missionBalance(t, bdb, key) != 0 {
				t.Errorf("round %d: %d joins, balance %d (errs %v)", round, ok, missionBalance(t, bdb, key), errs)
			}
			// Free the seat again for the next round.
			for _, id := range []string{a.ID, b.ID} {
				if _, _, err := (missiondb.Missions{}).Leave(ctx, bdb, mustFindMission(t, bdb, id), who, missionTime); err != nil &&
					domain.ErrorCode(err) != domain.ENOTPARTICIPATING {
					t.Fatal(err)
				}
			}
		}
		checkLedger(t, bdb)
	})
}
