package taskdb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/domain"
)

// TestTaskCandidatesUseIndexes: on PostgreSQL, with 10,000 helpers spread
// over the small categories, the candidate query of an invitation round
// finds a category's helpers through member_possible_work's index and
// the invitations already sent through their unique key, instead of
// scanning those tables.
func TestTaskCandidatesUseIndexes(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, dbtest.Postgres)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO members (public_id, nickname, created_at, updated_at)
		 SELECT 'h' || g, 'h' || g, ?, ? FROM generate_series(1, 10000) AS g`,
		`INSERT INTO member_possible_work (member_id, category_id)
		 SELECT m.id, c.id FROM members AS m JOIN skill_categories AS c ON c.big_id <> 0 AND m.id % 7 = c.id % 7`,
		`INSERT INTO member_abilities (member_id, ability_id)
		 SELECT m.id, a.id FROM members AS m JOIN skill_abilities AS a ON m.id % 4 <> a.id % 4`,
		`INSERT INTO helper_stats (member_id, last_invited_at, invitations) SELECT id, ?, 0 FROM members`,
		// 500 other tasks with 100 invitations each.
		`INSERT INTO tasks (public_id, customer_id, title, details, big_category_id, small_category_id, helpers_wanted, status, created_at, updated_at)
		 SELECT 't' || g, 1, 't', 'd', c.big_id, c.id, 1, 2, ?, ? FROM generate_series(1, 500) AS g
		 JOIN skill_categories AS c ON c.id = (SELECT MAX(id) FROM skill_categories WHERE big_id <> 0)`,
		`INSERT INTO task_invitations (public_id, task_id, helper_id, status, invited_at, expires_at)
		 SELECT 'i' || t.id || '-' || m.id, t.id, m.id, 1, ?, ? FROM tasks AS t JOIN members AS m ON m.id % 100 = t.id % 100`,
		`ANALYZE members`, `ANALYZE member_possible_work`, `ANALYZE member_abilities`, `ANALYZE helper_stats`,
	} {
		var args []any
		switch {
		case strings.HasPrefix(q, "INSERT INTO members"), strings.HasPrefix(q, "INSERT INTO tasks"),
			strings.HasPrefix(q, "INSERT INTO task_invitations"):
			args = []any{dbtest.MemberEpoch, dbtest.MemberEpoch}
		case strings.HasPrefix(q, "INSERT INTO helper_stats"):
			args = []any{dbtest.MemberEpoch}
		}
		if _, err := bdb.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	customer := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("customer@example.com", "customer"))
	cats, abs := dbtest.CatalogueIDs(t, bdb)
	task := &domain.Task{CustomerID: customer.ID, Title: "번역", Details: "10쪽", BigCategoryID: cats["통번역"],
		SmallCategoryID: cats["초벌 번역"], AbilityIDs: []int64{abs["영어"], abs["중국어"]}, HelpersWanted: 3, CreatedAt: dbtest.MemberEpoch}
	if err := (taskdb.Tasks{}).Create(ctx, bdb, task); err != nil {
		t.Fatal(err)
	}
	first, err := (taskdb.Tasks{}).Candidates(ctx, bdb, task, 100)
	if err != nil || len(first) != 100 {
		t.Fatalf("Candidates = %d, %v; want 100", len(first), err)
	}
	if _, err := (taskdb.Tasks{}).Invite(ctx, bdb, task, first, dbtest.MemberEpoch, dbtest.MemberEpoch.Add(24*60*60*1e9)); err != nil {
		t.Fatal(err)
	}
	if _, err := bdb.ExecContext(ctx, "ANALYZE task_invitations"); err != nil {
		t.Fatal(err)
	}

	capture := &dbtest.PlanCapture{}
	bdb.AddQueryHook(capture)
	next, err := (taskdb.Tasks{}).Candidates(ctx, bdb, task, 20)
	if err != nil || len(next) != 20 {
		t.Fatalf("Candidates = %d, %v; want 20", len(next), err)
	}
	for _, c := range next {
		for _, f := range first {
			if c.Key == f.Key {
				t.Fatalf("%s offered again after its invitation", c.ID)
			}
		}
	}
	var lines []string
	if err := bdb.NewRaw("EXPLAIN "+capture.Last()).Scan(ctx, &lines); err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	t.Logf("%s\n%s", capture.Last(), plan)
	for _, idx := range []string{"member_possible_work_category_id_member_id_idx", "task_invitations_task_id_helper_id_key"} {
		if !strings.Contains(plan, idx) {
			t.Errorf("plan does not use %s", idx)
		}
	}
	for _, table := range []string{"member_possible_work", "task_invitations", "member_abilities"} {
		if strings.Contains(plan, "Seq Scan on "+table) {
			t.Errorf("plan scans %s", table)
		}
	}
}

// TestTaskVersionChecks: a write of a task read before another write
// changed it is refused as a conflict and changes nothing, on every
// dialect; so is a change once the task left STANDBY.
func TestTaskVersionChecks(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		customer := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("customer@example.com", "customer"))
		cats, abs := dbtest.CatalogueIDs(t, bdb)
		task := &domain.Task{CustomerID: customer.ID, Title: "번역", Details: "10쪽", BigCategoryID: cats["통번역"],
			SmallCategoryID: cats["초벌 번역"], AbilityIDs: []int64{abs["영어"]}, HelpersWanted: 1, CreatedAt: dbtest.MemberEpoch}
		if err := (taskdb.Tasks{}).Create(ctx, bdb, task); err != nil {
			t.Fatal(err)
		}
		stale := *task
		task.Title = "새 제목"
		if err := (taskdb.Tasks{}).Update(ctx, bdb, task, dbtest.MemberEpoch); err != nil {
			t.Fatal(err)
		}
		stale.Title = "늦은 제목"
		if err := (taskdb.Tasks{}).Update(ctx, bdb, &stale, dbtest.MemberEpoch); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("stale update: %v, want conflict", err)
		}
		if err := (taskdb.Tasks{}).SetStatus(ctx, bdb, &stale, domain.TaskMatching, dbtest.MemberEpoch); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("stale status change: %v, want conflict", err)
		}
		if err := (taskdb.Tasks{}).SetStatus(ctx, bdb, task, domain.TaskMatching, dbtest.MemberEpoch); err != nil {
			t.Fatal(err)
		}
		if err := (taskdb.Tasks{}).Delete(ctx, bdb, task, dbtest.MemberEpoch); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("delete in MATCHING: %v, want conflict", err)
		}
		got, err := (taskdb.Tasks{}).FindByID(ctx, bdb, task.ID)
		if err != nil || got.Title != "새 제목" || got.Status != domain.TaskMatching || got.Version != 3 ||
			got.Customer != "customer" || len(got.AbilityIDs) != 1 {
			t.Errorf("task = %+v, %v", got, err)
		}
		// A helper counts in only at the version read.
		helper := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("helper@example.com", "helper"))
		old := *got
		if err := (taskdb.Tasks{}).AddHelper(ctx, bdb, got, helper.ID, dbtest.MemberEpoch); err != nil || got.Status != domain.TaskMatched {
			t.Fatalf("AddHelper = %v, status %s", err, got.Status)
		}
		if err := (taskdb.Tasks{}).AddHelper(ctx, bdb, &old, helper.ID, dbtest.MemberEpoch); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("stale AddHelper: %v, want conflict", err)
		}
	})
}
