package missiondb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// transitionEpoch is the tests' "now": transitions depend on nothing but the
// instant handed in.
var transitionEpoch = time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)

// missionMembers creates n members and returns their row ids.
func missionMembers(t *testing.T, bdb bun.IDB, prefix string, n int) []int64 {
	t.Helper()
	out := make([]int64, n)
	for i := range out {
		m := dbtest.MustCreateMember(t, bdb, dbtest.NewMember(fmt.Sprintf("%s%d@example.com", prefix, i), fmt.Sprintf("%s%d", prefix, i)))
		out[i] = dbtest.MemberKey(t, bdb, m.ID)
	}
	return out
}

// transition runs Missions.Transition in a transaction.
func transition(t *testing.T, bdb *bun.DB, key int64, now time.Time) *missiondb.MissionTransition {
	t.Helper()
	var tr *missiondb.MissionTransition
	err := db.RunInTx(context.Background(), bdb, func(ctx context.Context, tx bun.Tx) error {
		var err error
		tr, err = (missiondb.Missions{}).Transition(ctx, tx, key, now)
		return err
	})
	if err != nil {
		t.Fatalf("transition mission %d: %v", key, err)
	}
	return tr
}

// ledger returns the mission's entries as "kind:member:amount" counts.
func ledger(t *testing.T, bdb bun.IDB, mission int64) map[string]int {
	t.Helper()
	out := map[string]int{}
	for k, amounts := range dbtest.MissionEntries(t, bdb, mission) {
		for _, a := range amounts {
			out[fmt.Sprintf("%s:%d", k, a)]++
		}
	}
	return out
}

// TestMissionStartAndCancel: an OPEN mission with two members starts at its
// start and not a second earlier; one with the host alone is cancelled and
// the host's stake refunded, once however often it runs.
func TestMissionStartAndCancel(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		ms := missionMembers(t, bdb, "s", 3)
		start := transitionEpoch.Add(time.Hour)
		seed := func(members ...int64) int64 {
			s := dbtest.MissionFixture{Status: domain.MissionOpen, StartsAt: start, Weeks: 1, DaysPerWeek: 7, PerDay: 1,
				Windows: []domain.MissionWindow{{Start: 0, End: 1440}}}
			for _, k := range members {
				s.Members = append(s.Members, dbtest.MissionMemberSeed{Key: k})
			}
			return dbtest.MustSeedMission(t, bdb, s, transitionEpoch)
		}
		pair, alone := seed(ms[0], ms[1]), seed(ms[2])

		if tr := transition(t, bdb, pair, start.Add(-time.Second)); tr.To != 0 {
			t.Errorf("a second early: moved to %v", tr.To)
		}
		tr := transition(t, bdb, pair, start)
		if tr.To != domain.MissionOngoing || len(tr.Members) != 2 {
			t.Fatalf("pair: to %v with %d members; want ONGOING with 2", tr.To, len(tr.Members))
		}
		if st, v := dbtest.MissionStatus(t, bdb, pair); st != domain.MissionOngoing || v != 2 {
			t.Errorf("pair: %v version %d; want ONGOING version 2", st, v)
		}
		if l := ledger(t, bdb, pair); len(l) != 0 {
			t.Errorf("a start posted %v", l)
		}

		for range 2 {
			transition(t, bdb, alone, start.Add(3*time.Hour))
		}
		if st, _ := dbtest.MissionStatus(t, bdb, alone); st != domain.MissionCancelled {
			t.Errorf("alone: %v, want CANCELLED", st)
		}
		want := fmt.Sprintf("REFUND:%d:1000", ms[2])
		if l := ledger(t, bdb, alone); len(l) != 1 || l[want] != 1 {
			t.Errorf("alone: ledger %v, want %s once", l, want)
		}
		if b, _ := (missiondb.Points{}).Balance(ctx, bdb, ms[2]); b != 1000 {
			t.Errorf("host's balance %d, want 1000", b)
		}
		dbtest.CheckBalances(t, bdb)
	})
}

// TestMissionClosePayouts: the close pays by rate (100 % the stake, 85 %
// 80 % of it, 50 % nothing), a member who left gets nothing and does not
// spoil a perfect team, a perfect team gets 105 % with the 5 % as a BONUS,
// rates and payouts land on the member rows, and a rerun pays nothing.
func TestMissionClosePayouts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		ms := missionMembers(t, bdb, "c", 7)
		start := transitionEpoch.AddDate(0, 0, -14)
		// required = 2 weeks × 5 days × 2 a day = 20.
		seed := func(members ...dbtest.MissionMemberSeed) int64 {
			return dbtest.MustSeedMission(t, bdb, dbtest.MissionFixture{Status: domain.MissionOngoing, StartsAt: start,
				Weeks: 2, DaysPerWeek: 5, PerDay: 2, Windows: []domain.MissionWindow{{Start: 0, End: 1440}},
				Members: members}, transitionEpoch)
		}
		left := domain.MissionMemberLeft
		mixed := seed(
			dbtest.MissionMemberSeed{Key: ms[0], Days: dbtest.VerificationDays(20, 2)},
			dbtest.MissionMemberSeed{Key: ms[1], Days: dbtest.VerificationDays(17, 2)},
			dbtest.MissionMemberSeed{Key: ms[2], Days: dbtest.VerificationDays(10, 2)},
			dbtest.MissionMemberSeed{Key: ms[3], Status: left, Days: dbtest.VerificationDays(20, 2)},
		)
		perfect := seed(
			dbtest.MissionMemberSeed{Key: ms[4], Days: dbtest.VerificationDays(20, 2)},
			dbtest.MissionMemberSeed{Key: ms[5], Days: dbtest.VerificationDays(20, 2)},
			dbtest.MissionMemberSeed{Key: ms[6], Status: left},
		)

		if tr := transition(t, bdb, mixed, start.AddDate(0, 0, 14).Add(-time.Microsecond)); tr.To != 0 {
			t.Errorf("before the end: moved to %v", tr.To)
		}
		tr := transition(t, bdb, mixed, transitionEpoch)
		if tr.To != domain.MissionClose || tr.TeamPerfect {
			t.Fatalf("mixed: to %v, perfect %v", tr.To, tr.TeamPerfect)
		}
		wantRate := map[int64][2]int64{ms[0]: {10_000, 1000}, ms[1]: {8500, 800}, ms[2]: {5000, 0}, ms[3]: {10_000, 0}}
		for _, mm := range tr.Members {
			w := wantRate[mm.Key]
			if int64(mm.Payout.RateBP) != w[0] || mm.Amount() != w[1] {
				t.Errorf("member %d: rate %d amount %d; want %v", mm.Key, mm.Payout.RateBP, mm.Amount(), w)
			}
		}
		if l := ledger(t, bdb, mixed); len(l) != 2 || l[fmt.Sprintf("REFUND:%d:1000", ms[0])] != 1 || l[fmt.Sprintf("REFUND:%d:800", ms[1])] != 1 {
			t.Errorf("mixed ledger %v", l)
		}
		m, err := (missiondb.Missions{}).FindByKey(ctx, bdb, mixed)
		if err != nil {
			t.Fatal(err)
		}
		if m.Status != domain.MissionClose || !m.ClosedAt.Equal(transitionEpoch) {
			t.Errorf("mixed: %v closed at %v", m.Status, m.ClosedAt)
		}
		members, err := (missiondb.Missions{}).Members(ctx, bdb, m)
		if err != nil {
			t.Fatal(err)
		}
		stored := map[string][2]int64{"c0": {10_000, 1000}, "c1": {8500, 800}, "c2": {5000, 0}, "c3": {10_000, 0}}
		for _, mm := range members {
			if w := stored[mm.Nickname]; int64(mm.RateBP) != w[0] || mm.Payout != w[1] {
				t.Errorf("member %s: stored rate %d payout %d; want %v", mm.Nickname, mm.RateBP, mm.Payout, w)
			}
		}

		tr = transition(t, bdb, perfect, transitionEpoch)
		if !tr.TeamPerfect {
			t.Errorf("perfect team (and one who left) not perfect")
		}
		l := ledger(t, bdb, perfect)
		for _, k := range ms[4:6] {
			if l[fmt.Sprintf("REFUND:%d:1000", k)] != 1 || l[fmt.Sprintf("BONUS:%d:50", k)] != 1 {
				t.Errorf("perfect: member %d: ledger %v", k, l)
			}
		}
		if len(l) != 4 {
			t.Errorf("perfect: ledger %v, want 4 entries", l)
		}
		if b, _ := (missiondb.Points{}).Balance(ctx, bdb, ms[4]); b != 1050 {
			t.Errorf("balance %d, want 1050", b)
		}

		// A rerun, and a transition from a stale read, pay nothing more.
		for _, k := range []int64{mixed, perfect} {
			if tr := transition(t, bdb, k, transitionEpoch.Add(time.Hour)); tr.To != 0 {
				t.Errorf("rerun of %d moved to %v", k, tr.To)
			}
		}
		if len(ledger(t, bdb, mixed)) != 2 || len(ledger(t, bdb, perfect)) != 4 {
			t.Errorf("a rerun posted")
		}
		dbtest.CheckBalances(t, bdb)
	})
}

// TestDueMissions: every due mission is found however late, in pages,
// nothing early, nothing of another status.
func TestDueMissions(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		ms := missionMembers(t, bdb, "d", 1)
		seed := func(st domain.MissionStatus, start time.Time) int64 {
			return dbtest.MustSeedMission(t, bdb, dbtest.MissionFixture{Status: st, StartsAt: start, Weeks: 1, DaysPerWeek: 7, PerDay: 1,
				Members: []dbtest.MissionMemberSeed{{Key: ms[0]}}}, transitionEpoch)
		}
		var wantOpen, wantOngoing []int64
		for i := range 7 {
			// Due for hours, days, or exactly now.
			wantOpen = append(wantOpen, seed(domain.MissionOpen, transitionEpoch.Add(-time.Duration(i*i)*time.Hour)))
			wantOngoing = append(wantOngoing, seed(domain.MissionOngoing, transitionEpoch.AddDate(0, 0, -7-i)))
		}
		seed(domain.MissionOpen, transitionEpoch.Add(time.Second))          // not yet
		seed(domain.MissionOngoing, transitionEpoch.AddDate(0, 0, -6))      // ends tomorrow
		seed(domain.MissionUnactivated, transitionEpoch.Add(-48*time.Hour)) // never starts
		seed(domain.MissionClose, transitionEpoch.AddDate(0, 0, -30))       // done
		seed(domain.MissionCancelled, transitionEpoch.Add(-48*time.Hour))   // done
		for st, want := range map[domain.MissionStatus][]int64{domain.MissionOpen: wantOpen, domain.MissionOngoing: wantOngoing} {
			var got []int64
			var after missiondb.DueMission
			for {
				page, err := (missiondb.Missions{}).DueMissions(ctx, bdb, st, transitionEpoch, after, 3)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range page {
					got = append(got, d.Key)
				}
				if len(page) < 3 {
					break
				}
				after = page[len(page)-1]
			}
			seen := map[int64]bool{}
			for _, k := range got {
				seen[k] = true
			}
			if len(got) != len(want) || len(seen) != len(want) {
				t.Errorf("%v: due %v, want %v", st, got, want)
			}
			for _, k := range want {
				if !seen[k] {
					t.Errorf("%v: %d not found", st, k)
				}
			}
		}
	})
}

// TestVerifyRemindersDue: in the zone of the missions, a window is due from
// reminder_before before its close (and not before it opens) until it
// closes; a member who verified that day, or was reminded, or left, is not
// marked; a concurrent mark of the same window is a conflict.
func TestVerifyRemindersDue(t *testing.T) {
	t.Parallel()
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		ms := missionMembers(t, bdb, "r", 4)
		// Started two days ago at Seoul midnight; windows 07:00–09:00 and
		// 20:00–24:00 Seoul.
		startDay := time.Date(2026, 12, 5, 0, 0, 0, 0, seoul)
		key := dbtest.MustSeedMission(t, bdb, dbtest.MissionFixture{Status: domain.MissionOngoing, StartsAt: startDay,
			Weeks: 1, DaysPerWeek: 7, PerDay: 1,
			Windows: []domain.MissionWindow{{Start: 7 * 60, End: 9 * 60}, {Start: 20 * 60, End: 24 * 60}},
			Members: []dbtest.MissionMemberSeed{
				{Key: ms[0]},
				{Key: ms[1], Days: []int{2}}, // verified today (day 2)
				{Key: ms[2], Days: []int{0, 1}},
				{Key: ms[3], Status: domain.MissionMemberLeft},
			}}, transitionEpoch)
		at := func(h, m int) time.Time { return time.Date(2026, 12, 7, h, m, 0, 0, seoul) }
		due := func(now time.Time) []missiondb.VerifyReminder {
			t.Helper()
			rs, err := (missiondb.Missions{}).VerifyRemindersDue(ctx, bdb, now, seoul, 30*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return rs
		}
		for _, now := range []time.Time{at(8, 29), at(9, 0), at(19, 59), at(6, 50)} {
			if rs := due(now); len(rs) != 0 {
				t.Errorf("%v: due %+v", now, rs)
			}
		}
		for _, c := range []struct {
			now    time.Time
			window int
		}{{at(8, 30), 0}, {at(8, 59), 0}, {at(23, 45), 1}, {at(23, 30), 1}} {
			rs := due(c.now)
			if len(rs) != 1 || rs[0].Mission.Key != key || rs[0].Window != c.window || rs[0].Day != 2 {
				t.Errorf("%v: due %+v; want window %d of day 2", c.now, rs, c.window)
			}
		}
		rs := due(at(8, 40))
		if len(rs) != 1 || !rs[0].ClosesAt.Equal(at(9, 0)) {
			t.Fatalf("due %+v", rs)
		}
		var to []string
		if err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			var err error
			to, err = (missiondb.Missions{}).MarkVerifyReminder(ctx, tx, &rs[0], at(8, 40))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(to) != 2 {
			t.Errorf("marked %v; want the two who have not verified today", to)
		}
		again, err := (missiondb.Missions{}).MarkVerifyReminder(ctx, bdb, &rs[0], at(8, 50))
		if err != nil || len(again) != 0 {
			t.Errorf("second mark: %v, %v", again, err)
		}
	})
}
