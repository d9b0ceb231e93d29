package jobs_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

// taskWorld is a catalogue, a customer and a way to add helpers and tasks.
type taskWorld struct {
	t        *testing.T
	db       *bun.DB
	clock    *jobstest.Clock
	customer *domain.Member
	small    map[string]int64
	big      map[string]int64
	ability  map[string]int64
}

func newTaskWorld(t *testing.T, bdb *bun.DB) *taskWorld {
	t.Helper()
	c, err := (taskdb.Skills{}).Catalogue(context.Background(), bdb)
	if err != nil {
		t.Fatal(err)
	}
	w := &taskWorld{t: t, db: bdb, clock: jobstest.NewClock(clocktest.Now().UTC().Truncate(time.Second)),
		small: map[string]int64{}, big: map[string]int64{}, ability: map[string]int64{}}
	for _, x := range c.Categories {
		if x.Big() {
			w.big[x.Name] = x.ID
		} else {
			w.small[x.Name] = x.ID
		}
	}
	for _, a := range c.Abilities {
		w.ability[a.Name] = a.ID
	}
	w.customer = newMember(t, bdb, "customer", nil)
	return w
}

// helper adds a member offering work with abilities (names).
func (w *taskWorld) helper(nickname, work string, abilities ...string) *domain.Member {
	w.t.Helper()
	m := newMember(w.t, w.db, nickname, nil)
	w.setSkills(m, work, abilities...)
	return m
}

func (w *taskWorld) setSkills(m *domain.Member, work string, abilities ...string) {
	w.t.Helper()
	ids := []int64{}
	for _, a := range abilities {
		ids = append(ids, w.ability[a])
	}
	if err := (taskdb.Skills{}).SetMemberSkills(context.Background(), w.db, m.ID, []int64{w.small[work]}, ids); err != nil {
		w.t.Fatal(err)
	}
}

// task posts a translation task wanting n helpers with abilities and
// starts its matching.
func (w *taskWorld) task(n int, abilities ...string) *domain.Task {
	w.t.Helper()
	ctx := context.Background()
	task := &domain.Task{CustomerID: w.customer.ID, Title: "계약서 번역", Details: "10쪽",
		BigCategoryID: w.big["통번역"], SmallCategoryID: w.small["초벌 번역"], HelpersWanted: n, CreatedAt: w.clock.Now()}
	for _, a := range abilities {
		task.AbilityIDs = append(task.AbilityIDs, w.ability[a])
	}
	if err := (taskdb.Tasks{}).Create(ctx, w.db, task); err != nil {
		w.t.Fatal(err)
	}
	if err := (taskdb.Tasks{}).SetStatus(ctx, w.db, task, domain.TaskMatching, w.clock.Now()); err != nil {
		w.t.Fatal(err)
	}
	return task
}

func (w *taskWorld) rounds(size int) *jobs.TaskRoundHandler {
	return &jobs.TaskRoundHandler{DB: w.db, Params: jobs.TaskRoundParams{Size: size, TTL: time.Hour}, NowFunc: w.clock.Now}
}

// notified returns the members notified of type typ, one entry per
// notification, sorted.
func (w *taskWorld) notified(typ domain.NotificationType) []string {
	w.t.Helper()
	var ids []string
	if err := w.db.NewSelect().Table("notifications").ColumnExpr("m.public_id").
		Join("JOIN members AS m ON m.id = notifications.member_id").
		Where("notifications.type = ?", int(typ)).Scan(context.Background(), &ids); err != nil {
		w.t.Fatal(err)
	}
	sort.Strings(ids)
	return ids
}

func sortedIDs(ms ...*domain.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	sort.Strings(out)
	return out
}

// TestTaskRoundsInvitePageByPage: rounds invite only qualified helpers,
// best first (manner points, then least recently invited), a page at a
// time and nobody twice; once everyone was invited and every invitation
// expired, the customer is told once that the task is short.
func TestTaskRoundsInvitePageByPage(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		w := newTaskWorld(t, bdb)
		var q []*domain.Member
		for i := range 5 {
			q = append(q, w.helper(fmt.Sprintf("q%d", i), "초벌 번역", "영어", "언어역량", "기획력"))
		}
		if _, err := bdb.NewUpdate().Table("members").Set("manner_points = 80").Where("public_id = ?", q[4].ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		partial := w.helper("partial", "초벌 번역", "영어")
		otherWork := w.helper("otherwork", "논문검색", "영어", "언어역량")
		gone := w.helper("gone", "초벌 번역", "영어", "언어역량")
		if err := (db.Members{}).Delete(ctx, bdb, gone.ID, w.clock.Now()); err != nil {
			t.Fatal(err)
		}
		w.setSkills(w.customer, "초벌 번역", "영어", "언어역량")
		newMember(t, bdb, "noskills", nil)
		task := w.task(3, "영어", "언어역량")
		rounds := w.rounds(2)

		want := [][]*domain.Member{{q[4], q[0]}, {q[1], q[2]}, {q[3]}, {}}
		var all []*domain.Member
		for i, page := range want {
			n, err := rounds.Round(ctx, task.ID)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if got := w.notified(domain.NotifyTaskInvitation); n != len(page) || fmt.Sprint(got) != fmt.Sprint(sortedIDs(all...)) {
				t.Fatalf("round %d invited %d; invitations went to %v, want %v", i+1, n, got, sortedIDs(all...))
			}
			w.clock.Advance(time.Minute)
		}
		for _, m := range []*domain.Member{partial, otherWork, gone, w.customer} {
			for _, id := range w.notified(domain.NotifyTaskInvitation) {
				if id == m.ID {
					t.Errorf("%s was invited", m.Nickname)
				}
			}
		}
		// Invitations are open: the customer is not told yet.
		if got := w.notified(domain.NotifyTaskShortOfHelpers); len(got) != 0 {
			t.Fatalf("short told while invitations are open: %v", got)
		}
		w.clock.Advance(time.Hour)
		if n, err := (taskdb.Tasks{}).ExpireInvitations(ctx, bdb, w.clock.Now(), 100); err != nil || n != 5 {
			t.Fatalf("ExpireInvitations = %d, %v; want 5", n, err)
		}
		for range 3 {
			if _, err := rounds.Round(ctx, task.ID); err != nil {
				t.Fatal(err)
			}
		}
		if got := w.notified(domain.NotifyTaskShortOfHelpers); fmt.Sprint(got) != fmt.Sprint([]string{w.customer.ID}) {
			t.Errorf("short told to %v, want the customer once", got)
		}

		// A second task: equal manner points go least recently invited
		// first, never invited before all (q4's 80 points still lead).
		second := w.task(1, "영어")
		cands, err := (taskdb.Tasks{}).Candidates(ctx, bdb, second, 10)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, c := range cands {
			order = append(order, c.Nickname)
		}
		if fmt.Sprint(order) != "[q4 partial q0 q1 q2 q3]" {
			t.Errorf("candidates = %v, want [q4 partial q0 q1 q2 q3]", order)
		}
		// A task not in MATCHING gets no round.
		if err := (taskdb.Tasks{}).SetStatus(ctx, bdb, second, domain.TaskStandby, w.clock.Now()); err != nil {
			t.Fatal(err)
		}
		if n, err := rounds.Round(ctx, second.ID); err != nil || n != 0 {
			t.Errorf("round of a STANDBY task = %d, %v", n, err)
		}
	})
}

// TestTaskRoundsAtOnceInviteNobodyTwice: rounds of one task running at
// the same time (two workers) never invite a helper twice nor mail one
// twice, and together they invite everyone.
func TestTaskRoundsAtOnceInviteNobodyTwice(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		w := newTaskWorld(t, bdb)
		const helpers = 30
		for i := range helpers {
			w.helper(fmt.Sprintf("h%02d", i), "초벌 번역", "영어")
		}
		task := w.task(3, "영어")
		rounds := w.rounds(20)
		for range 3 {
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for range 2 {
				wg.Go(func() {
					_, err := rounds.Round(ctx, task.ID)
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		got := w.notified(domain.NotifyTaskInvitation)
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Errorf("%s invited twice", id)
			}
			seen[id] = true
		}
		n, err := bdb.NewSelect().Table("task_invitations").Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != helpers || n != helpers {
			t.Errorf("%d invitation mails, %d invitations; want %d each", len(got), n, helpers)
		}
	})
}

// TestTaskInvitationsTick: the tick expires invitations past their time
// and enqueues one round per task in MATCHING under the task's id, so a
// repeated tick adds none while they wait.
func TestTaskInvitationsTick(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, dbtest.SQLite)
	ctx := context.Background()
	w := newTaskWorld(t, bdb)
	w.helper("helper", "초벌 번역", "영어")
	first, second := w.task(1, "영어"), w.task(1, "영어")
	standby := &domain.Task{CustomerID: w.customer.ID, Title: "draft", BigCategoryID: w.big["통번역"],
		SmallCategoryID: w.small["초벌 번역"], HelpersWanted: 1, CreatedAt: w.clock.Now()}
	if err := (taskdb.Tasks{}).Create(ctx, bdb, standby); err != nil {
		t.Fatal(err)
	}
	if n, err := w.rounds(5).Round(ctx, first.ID); err != nil || n != 1 {
		t.Fatalf("round = %d, %v", n, err)
	}

	opt := jobstest.RedisOpt(t)
	client, insp := asynq.NewClient(opt), asynq.NewInspector(opt)
	t.Cleanup(func() { _ = client.Close(); _ = insp.Close() })
	tick := &jobs.TaskInvitationsHandler{DB: bdb, Client: client, Inspector: insp, NowFunc: w.clock.Now}
	w.clock.Advance(2 * time.Hour)
	for range 2 {
		if err := tick.ProcessTask(ctx, tickTask(t, jobs.TypeTaskInvitations, w.clock.Now())); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := insp.ListPendingTasks(jobs.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range pending {
		if p.Type == jobs.TypeTaskRound {
			ids = append(ids, p.ID)
		}
	}
	sort.Strings(ids)
	want := []string{"task:round:" + first.ID, "task:round:" + second.ID}
	sort.Strings(want)
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("rounds enqueued %v, want %v", ids, want)
	}
	var status []int
	if err := bdb.NewSelect().Table("task_invitations").Column("status").Scan(ctx, &status); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(status) != fmt.Sprint([]int{int(domain.InvitationExpired)}) {
		t.Errorf("invitation statuses = %v, want one EXPIRED", status)
	}
}

// killAfterInvites cancels a round's context right after the round's
// k-th invitation insert ran: the worker dies mid-round.
type killAfterInvites struct {
	k      int32
	n      atomic.Int32
	cancel context.CancelFunc
}

func (h *killAfterInvites) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (h *killAfterInvites) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if e.Err == nil && strings.HasPrefix(e.Query, "INSERT") && strings.Contains(e.Query, "task_invitations") && h.n.Add(1) == h.k {
		h.cancel()
	}
}

// TestTaskRoundKilledMidway: a round killed after some of its invitations
// were inserted (or after all of them, before its mails were recorded)
// leaves nothing behind: no invitation, no notification, no outbox row,
// no helper's last invitation time moved. The next round invites the very
// page the killed one was inviting, and the rounds after it go on from
// there: every helper is invited once and mailed once.
func TestTaskRoundKilledMidway(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		w := newTaskWorld(t, bdb)
		const helpers, size = 12, 5
		for i := range helpers {
			w.helper(fmt.Sprintf("h%02d", i), "초벌 번역", "영어")
		}
		task := w.task(3, "영어")
		order, err := (taskdb.Tasks{}).Candidates(ctx, bdb, task, helpers)
		if err != nil || len(order) != helpers {
			t.Fatalf("candidates = %d, %v", len(order), err)
		}
		outbox := func() int {
			n, err := bdb.NewSelect().Table("outbox").Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
		outboxBefore := outbox()

		for _, k := range []int32{1, 3, size} {
			cctx, cancel := context.WithCancel(ctx)
			hook := &killAfterInvites{k: k, cancel: cancel}
			killed := &jobs.TaskRoundHandler{DB: bdb.WithQueryHook(hook), Params: jobs.TaskRoundParams{Size: size, TTL: time.Hour},
				NowFunc: w.clock.Now}
			n, err := killed.Round(cctx, task.ID)
			cancel()
			if err == nil || hook.n.Load() < k {
				t.Fatalf("kill after %d inserts: round = %d, %v after %d inserts; want it killed", k, n, err, hook.n.Load())
			}
			invitations, err := bdb.NewSelect().Table("task_invitations").Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.notified(domain.NotifyTaskInvitation); invitations != 0 || len(got) != 0 || outbox() != outboxBefore {
				t.Fatalf("kill after %d inserts left %d invitations, %d notifications, %d outbox rows", k, invitations, len(got), outbox()-outboxBefore)
			}
			again, err := (taskdb.Tasks{}).Candidates(ctx, bdb, task, helpers)
			if err != nil || fmt.Sprint(again) != fmt.Sprint(order) {
				t.Fatalf("kill after %d inserts moved the order: %v, want %v (%v)", k, again, order, err)
			}
			w.clock.Advance(time.Minute)
		}

		rounds := w.rounds(size)
		var invited []string
		for i, want := range []int{size, size, helpers - 2*size} {
			n, err := rounds.Round(ctx, task.ID)
			if err != nil || n != want {
				t.Fatalf("round %d after the kills = %d, %v; want %d", i+1, n, err, want)
			}
			for _, c := range order[len(invited) : len(invited)+n] {
				invited = append(invited, c.ID)
			}
			sort.Strings(invited)
			if got := w.notified(domain.NotifyTaskInvitation); fmt.Sprint(got) != fmt.Sprint(invited) {
				t.Fatalf("after round %d invitations went to %v, want %v (the candidates in order)", i+1, got, invited)
			}
			w.clock.Advance(time.Minute)
		}
		if n := outbox() - outboxBefore; n != 3 {
			t.Errorf("%d outbox rows for 3 rounds' mails, want 3", n)
		}
		n, err := bdb.NewSelect().Table("task_invitations").Count(ctx)
		if err != nil || n != helpers {
			t.Errorf("%d invitations, want %d (%v)", n, helpers, err)
		}
	})
}
