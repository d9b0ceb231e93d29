package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

// missionNotes returns the notifications of type typ as
// "mission/member" → their args, one entry per notification.
func missionNotes(t *testing.T, bdb *bun.DB, typ domain.NotificationType) map[string][]domain.NotificationArgs {
	t.Helper()
	var rows []struct {
		Member string `bun:"member"`
		Args   string `bun:"args"`
	}
	err := bdb.NewSelect().TableExpr("notifications AS n").
		ColumnExpr("m.public_id AS member").ColumnExpr("n.args").
		Join("JOIN members AS m ON m.id = n.member_id").
		Where("n.type = ?", int(typ)).Scan(context.Background(), &rows)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]domain.NotificationArgs{}
	for _, r := range rows {
		var a domain.NotificationArgs
		if err := json.Unmarshal([]byte(r.Args), &a); err != nil {
			t.Fatal(err)
		}
		out[a.MissionID+"/"+r.Member] = append(out[a.MissionID+"/"+r.Member], a)
	}
	return out
}

// publicMission returns the public id of mission key.
func publicMission(t *testing.T, bdb *bun.DB, key int64) string {
	t.Helper()
	m, err := (missiondb.Missions{}).FindByKey(context.Background(), bdb, key)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// TestMissionTransitionsExactlyOnce: 100 missions due to close (a third
// with a perfect team, half with a member who left), a few due to start
// and a few to be cancelled. A worker is cancelled again and again in the
// middle of its work; then two schedulers tick at once, two workers run
// the tasks, and the tick repeats: every mission moves once, every payout
// and refund is posted exactly once, every member is told once, with the
// rate and amount, and a later rerun changes nothing.
func TestMissionTransitionsExactlyOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		now := clocktest.Now().UTC().Truncate(time.Second)
		var members []*domain.Member
		var keys []int64
		for i := range 4 {
			m := newMember(t, bdb, fmt.Sprintf("mm%d", i), nil)
			members = append(members, m)
			keys = append(keys, dbtest.MemberKey(t, bdb, m.ID))
		}
		const closes, starts, cancels = 100, 10, 5
		var all []int64
		perfect := map[int64]bool{}
		for i := range closes {
			// Required: 1 week × 7 days × 1 = 7. Ends up to 100 minutes ago.
			s := dbtest.MissionFixture{Status: domain.MissionOngoing, Weeks: 1, DaysPerWeek: 7, PerDay: 1,
				StartsAt: now.AddDate(0, 0, -7).Add(-time.Duration(i) * time.Minute)}
			if i%3 == 0 {
				s.Members = []dbtest.MissionMemberSeed{{Key: keys[0], Days: dbtest.VerificationDays(7, 1)},
					{Key: keys[1], Days: dbtest.VerificationDays(7, 1)}, {Key: keys[2], Days: dbtest.VerificationDays(7, 1)}}
			} else {
				s.Members = []dbtest.MissionMemberSeed{{Key: keys[0], Days: dbtest.VerificationDays(7, 1)},
					{Key: keys[1], Days: dbtest.VerificationDays(6, 1)}, {Key: keys[2], Days: dbtest.VerificationDays(3, 1)}}
			}
			if i%2 == 0 {
				s.Members = append(s.Members, dbtest.MissionMemberSeed{Key: keys[3], Status: domain.MissionMemberLeft, Days: dbtest.VerificationDays(7, 1)})
			}
			k := dbtest.MustSeedMission(t, bdb, s, now)
			perfect[k] = i%3 == 0
			all = append(all, k)
		}
		var started, cancelled []int64
		for i := range starts + cancels {
			s := dbtest.MissionFixture{Status: domain.MissionOpen, Weeks: 1, DaysPerWeek: 7, PerDay: 1,
				StartsAt: now.Add(-time.Duration(i) * time.Hour), Members: []dbtest.MissionMemberSeed{{Key: keys[3]}}}
			if i < starts {
				s.Members = append(s.Members, dbtest.MissionMemberSeed{Key: keys[2]})
			}
			k := dbtest.MustSeedMission(t, bdb, s, now)
			if i < starts {
				started = append(started, k)
			} else {
				cancelled = append(cancelled, k)
			}
			all = append(all, k)
		}
		// Not due: nothing may happen to these.
		later := dbtest.MustSeedMission(t, bdb, dbtest.MissionFixture{Status: domain.MissionOpen, Weeks: 1, DaysPerWeek: 7, PerDay: 1,
			StartsAt: now.Add(time.Minute), Members: []dbtest.MissionMemberSeed{{Key: keys[0]}}}, now)

		logger := slog.New(slog.DiscardHandler)
		clock := func() time.Time { return now }
		worker := &jobs.MissionTransitionHandler{DB: bdb, Logger: logger, NowFunc: clock}
		// A worker killed at random points of its work: each kill rolls
		// back the mission it was in.
		for i := range 6 {
			cctx, cancel := context.WithTimeout(ctx, time.Duration(i+1)*25*time.Millisecond)
			for _, k := range all {
				if _, err := worker.Transition(cctx, k); err != nil {
					break
				}
			}
			cancel()
		}

		opt := jobstest.RedisOpt(t)
		client := asynq.NewClient(opt)
		insp := asynq.NewInspector(opt)
		t.Cleanup(func() { _ = client.Close(); _ = insp.Close() })
		tick := func() *jobs.MissionTransitionsHandler {
			return &jobs.MissionTransitionsHandler{DB: bdb, Client: client, Inspector: insp, Logger: logger, NowFunc: clock}
		}
		// Two schedulers' ticks of the same slot enqueue each due mission once.
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for range 2 {
			wg.Go(func() {
				n, err := tick().Run(ctx)
				if err != nil {
					t.Errorf("tick: %v", err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		wg.Wait()
		due := dueCount(t, bdb, now)
		q, err := insp.GetQueueInfo(jobs.QueueDefault)
		if due > 0 && (err != nil || q.Pending != due || total != due) {
			t.Fatalf("two ticks: enqueued %d, queue %+v (%v); want %d tasks", total, q, err, due)
		}
		t.Logf("%d of %d missions left due by the cancelled worker", due, len(all))

		// Two workers, and the tick repeated while they run.
		for range 2 {
			wl, buf := newTestLogger()
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(buf.String())
				}
			})
			mux, err := jobs.NewMux(jobs.Deps{DB: bdb, Logger: wl, Client: client, Inspector: insp, NowFunc: clock})
			if err != nil {
				t.Fatal(err)
			}
			startServer(t, opt, mux, 4, logger)
		}
		for range 3 {
			if _, err := tick().Run(ctx); err != nil {
				t.Errorf("repeated tick: %v", err)
			}
		}
		eventuallyMsg(t, 3*time.Minute, "every due mission moved on", func() bool {
			if dueCount(t, bdb, now) > 0 {
				return false
			}
			if names, err := insp.Queues(); err == nil && !slices.Contains(names, jobs.QueueDefault) {
				// Nothing was ever enqueued: the killed worker had done it all.
				return true
			}
			q, err := insp.GetQueueInfo(jobs.QueueDefault)
			return err == nil && q.Pending == 0 && q.Active == 0 && q.Retry == 0
		}, func() string {
			q, err := insp.GetQueueInfo(jobs.QueueDefault)
			return fmt.Sprintf("queue %+v, %v", q, err)
		})
		// The started missions are ONGOING and not due; a rerun of every
		// mission (a late retry, a third worker) changes nothing.
		if n, err := tick().Run(ctx); err != nil || n != 0 {
			t.Errorf("tick after the work: enqueued %d, %v", n, err)
		}
		for _, k := range all {
			if _, err := worker.Transition(ctx, k); err != nil {
				t.Errorf("rerun of %d: %v", k, err)
			}
		}

		closed := missionNotes(t, bdb, domain.NotifyMissionClosed)
		for _, k := range all[:closes] {
			id := publicMission(t, bdb, k)
			if st, v := dbtest.MissionStatus(t, bdb, k); st != domain.MissionClose || v != 2 {
				t.Errorf("mission %d: %v version %d; want CLOSE version 2", k, st, v)
			}
			got := dbtest.MissionEntries(t, bdb, k)
			want := map[string][]int64{}
			refund := func(m int, amount int64, rate int) {
				want[fmt.Sprintf("REFUND:%d", keys[m])] = []int64{amount}
				if perfect[k] {
					want[fmt.Sprintf("BONUS:%d", keys[m])] = []int64{50}
					amount += 50
				}
				notes := closed[id+"/"+members[m].ID]
				if len(notes) != 1 || notes[0].Amount != amount || notes[0].RateBP == nil || *notes[0].RateBP != rate {
					t.Errorf("mission %d member %d: closed notes %+v; want one with rate %d amount %d", k, m, notes, rate, amount)
				}
			}
			if perfect[k] {
				refund(0, 1000, 10_000)
				refund(1, 1000, 10_000)
				refund(2, 1000, 10_000)
			} else {
				refund(0, 1000, 10_000)
				refund(1, 800, 8571)
				// 3 of 7: nothing back, but told so with the rate.
				if notes := closed[id+"/"+members[2].ID]; len(notes) != 1 || notes[0].Amount != 0 || notes[0].RateBP == nil || *notes[0].RateBP != 4285 {
					t.Errorf("mission %d: the 42 %% member's notes %+v", k, notes)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("mission %d ledger %v; want %v", k, got, want)
			}
			if len(closed[id+"/"+members[3].ID]) != 0 {
				t.Errorf("mission %d: the member who left was told", k)
			}
		}
		startedNotes := missionNotes(t, bdb, domain.NotifyMissionStarted)
		for _, k := range started {
			id := publicMission(t, bdb, k)
			if st, _ := dbtest.MissionStatus(t, bdb, k); st != domain.MissionOngoing {
				t.Errorf("mission %d: %v, want ONGOING", k, st)
			}
			if len(dbtest.MissionEntries(t, bdb, k)) != 0 || len(startedNotes[id+"/"+members[2].ID]) != 1 || len(startedNotes[id+"/"+members[3].ID]) != 1 {
				t.Errorf("started mission %d: entries %v, notes %v", k, dbtest.MissionEntries(t, bdb, k), startedNotes)
			}
		}
		cancelNotes := missionNotes(t, bdb, domain.NotifyMissionCancelled)
		for _, k := range cancelled {
			id := publicMission(t, bdb, k)
			if st, _ := dbtest.MissionStatus(t, bdb, k); st != domain.MissionCancelled {
				t.Errorf("mission %d: %v, want CANCELLED", k, st)
			}
			got := dbtest.MissionEntries(t, bdb, k)
			if len(got) != 1 || fmt.Sprint(got[fmt.Sprintf("REFUND:%d", keys[3])]) != "[1000]" {
				t.Errorf("cancelled mission %d: ledger %v; want the host's stake back once", k, got)
			}
			if n := cancelNotes[id+"/"+members[3].ID]; len(n) != 1 || n[0].Amount != 1000 {
				t.Errorf("cancelled mission %d: notes %+v", k, n)
			}
		}
		if st, v := dbtest.MissionStatus(t, bdb, later); st != domain.MissionOpen || v != 1 {
			t.Errorf("the mission not due yet: %v version %d", st, v)
		}
		dbtest.CheckBalances(t, bdb)
	})
}

// dueCount is how many missions are due to move on at now.
func dueCount(t *testing.T, bdb *bun.DB, now time.Time) int {
	t.Helper()
	n := 0
	for _, st := range []domain.MissionStatus{domain.MissionOpen, domain.MissionOngoing} {
		due, err := (missiondb.Missions{}).DueMissions(context.Background(), bdb, st, now, missiondb.DueMission{}, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		n += len(due)
	}
	return n
}

// TestMissionCatchUp: a mission whose start and end both passed while no
// scheduler ran is started and closed by the next tick's one task, and
// its members are told both.
func TestMissionCatchUp(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		now := clocktest.Now().UTC().Truncate(time.Second)
		a, b := newMember(t, bdb, "ca", nil), newMember(t, bdb, "cb", nil)
		k := dbtest.MustSeedMission(t, bdb, dbtest.MissionFixture{Status: domain.MissionOpen, Weeks: 1, DaysPerWeek: 1, PerDay: 1,
			StartsAt: now.AddDate(0, 0, -10), Members: []dbtest.MissionMemberSeed{
				{Key: dbtest.MemberKey(t, bdb, a.ID), Days: []int{0}}, {Key: dbtest.MemberKey(t, bdb, b.ID), Days: []int{0}}}}, now)
		h := &jobs.MissionTransitionHandler{DB: bdb, Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
		trs, err := h.Transition(context.Background(), k)
		if err != nil || len(trs) != 2 || trs[0].To != domain.MissionOngoing || trs[1].To != domain.MissionClose || !trs[1].TeamPerfect {
			t.Fatalf("catch-up: %+v, %v; want a start, then a perfect close", trs, err)
		}
		id := publicMission(t, bdb, k)
		if n := missionNotes(t, bdb, domain.NotifyMissionStarted); len(n[id+"/"+a.ID]) != 1 {
			t.Errorf("started notes %v", n)
		}
		if n := missionNotes(t, bdb, domain.NotifyMissionClosed); len(n[id+"/"+b.ID]) != 1 || n[id+"/"+b.ID][0].Amount != 1050 {
			t.Errorf("closed notes %v", n)
		}
	})
}

// TestMissionVerifyReminders: 30 minutes (the configured offset) before a
// window closes, members who have not verified that day get one reminder
// per window, whatever the tick repeats or races; those who verified, and
// ticks outside the offset, get none. Days and windows are Seoul's,
// whatever the machine's zone.
func TestMissionVerifyReminders(t *testing.T) {
	t.Parallel()
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		// Today in Seoul at the test's instant; the mission began two
		// days before, at midnight there.
		today := clocktest.Now().In(seoul)
		day0 := time.Date(today.Year(), today.Month(), today.Day()-2, 0, 0, 0, 0, seoul)
		at := func(h, m int) time.Time {
			return time.Date(today.Year(), today.Month(), today.Day(), h, m, 0, 0, seoul)
		}
		var ids []string
		var ms []dbtest.MissionMemberSeed
		for i := range 3 {
			m := newMember(t, bdb, fmt.Sprintf("vr%d", i), nil)
			ids = append(ids, m.ID)
			ms = append(ms, dbtest.MissionMemberSeed{Key: dbtest.MemberKey(t, bdb, m.ID)})
		}
		ms[1].Days = []int{2} // posted today
		ms[2].Days = []int{0, 1}
		k := dbtest.MustSeedMission(t, bdb, dbtest.MissionFixture{Status: domain.MissionOngoing, Weeks: 1, DaysPerWeek: 7, PerDay: 1,
			StartsAt: day0, Windows: []domain.MissionWindow{{Start: 7 * 60, End: 9 * 60}, {Start: 12 * 60, End: 13 * 60}},
			Members: ms}, day0)
		id := publicMission(t, bdb, k)
		clock := at(8, 0)
		var mu sync.Mutex
		h := func() *jobs.MissionRemindersHandler {
			return &jobs.MissionRemindersHandler{DB: bdb, Location: seoul, Before: 30 * time.Minute,
				Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }}
		}
		set := func(t time.Time) { mu.Lock(); clock = t; mu.Unlock() }
		for _, c := range []time.Time{at(8, 29), at(9, 0), at(11, 45)} {
			set(c)
			if n, err := h().Run(ctx); err != nil || n != 0 {
				t.Errorf("%v: sent %d, %v; outside the offset", c, n, err)
			}
		}
		set(at(8, 30))
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if _, err := h().Run(ctx); err != nil {
					t.Errorf("tick: %v", err)
				}
			})
		}
		wg.Wait()
		set(at(8, 45))
		if n, err := h().Run(ctx); err != nil || n != 0 {
			t.Errorf("repeated tick sent %d, %v", n, err)
		}
		notes := missionNotes(t, bdb, domain.NotifyMissionVerifyReminder)
		if len(notes) != 2 || len(notes[id+"/"+ids[0]]) != 1 || len(notes[id+"/"+ids[2]]) != 1 {
			t.Fatalf("reminders %v; want one each to the two who have not posted today", notes)
		}
		if a := notes[id+"/"+ids[0]][0]; !a.StartsAt.Equal(at(9, 0)) || a.Title == "" {
			t.Errorf("reminder args %+v; want the close at 09:00 Seoul", a)
		}
		// The next window of the same day: reminded again, once.
		set(at(12, 40))
		if n, err := h().Run(ctx); err != nil || n != 2 {
			t.Errorf("second window: sent %d, %v; want 2", n, err)
		}
	})
}

// eventuallyMsg is eventually, saying why on failure.
func eventuallyMsg(t *testing.T, within time.Duration, what string, cond func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, within, why())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
