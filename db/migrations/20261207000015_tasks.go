package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of helper requests (easytask); see the foundation
// migration for why MySQL has its own.
//
// skill_categories: the catalogue of kinds of work. A big category has
// big_id 0 (not NULL, so that (big_id, name) is unique on every dialect);
// a small category names its big one. skill_abilities: the catalogue of
// abilities. Both are seeded with easytask's sample names and grow by the
// admin route.
//
// member_possible_work and member_abilities: a helper's small categories
// and abilities, one row each. Their (category_id, member_id) and unique
// (member_id, ability_id) keys serve the candidate query: the helpers of
// a small category, then whether each holds every required ability.
//
// helper_stats: one row per member who has set skills; last_invited_at
// orders the candidates (least recently invited first among equals), so
// the same few helpers do not get every invitation. It starts at the
// epoch rather than NULL because the dialects sort NULLs differently.
//
// tasks: status is domain.TaskStatus; helper_count is the number of
// task_helpers rows, and every change of it or of the status bumps
// version, so an accept's `helper_count < helpers_wanted AND version = ?`
// tells whether the task moved since it was read. short_notified_at marks
// that the customer was told that every qualified helper was invited and
// the task is still short (told once per matching). A deleted task keeps
// its row (deleted_at), since invitations and notifications point at it.
//
// task_abilities: the abilities a task requires, 1–10 of them.
// task_helpers: the helpers matched to a task, MATCHED then DOING then
// DONE (domain.TaskHelperStatus).
//
// task_invitations: one row per (task, helper), never two: a round inserts
// with insert-ignore, so two rounds of the same task at once cannot invite
// a helper twice, and a round that dies before its commit leaves nothing
// behind. status is domain.InvitationStatus; the (status, expires_at)
// index serves the expiry, (task_id, status) the count of open ones.
//
// task_reviews and task_review_scores: the customer's review of each
// helper of a DONE task, once per (task, helper), with a 1–5 score per
// required ability.

type skillCategories20261207 struct {
	bun.BaseModel `bun:"table:skill_categories"`

	ID        int64     `bun:"id,pk,autoincrement"`
	BigID     int64     `bun:"big_id,notnull,default:0,unique:skill_categories_big_id_name_key"`
	Name      string    `bun:"name,type:varchar(64),notnull,unique:skill_categories_big_id_name_key"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

type skillCategories20261207MySQL struct {
	bun.BaseModel `bun:"table:skill_categories"`

	ID        int64     `bun:"id,pk,autoincrement"`
	BigID     int64     `bun:"big_id,notnull,default:0,unique:skill_categories_big_id_name_key"`
	Name      string    `bun:"name,type:varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:skill_categories_big_id_name_key"`
	CreatedAt time.Time `bun:"created_at,type:datetime(6),notnull"`
}

type skillAbilities20261207 struct {
	bun.BaseModel `bun:"table:skill_abilities"`

	ID        int64     `bun:"id,pk,autoincrement"`
	Name      string    `bun:"name,type:varchar(64),notnull,unique:skill_abilities_name_key"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

type skillAbilities20261207MySQL struct {
	bun.BaseModel `bun:"table:skill_abilities"`

	ID        int64     `bun:"id,pk,autoincrement"`
	Name      string    `bun:"name,type:varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:skill_abilities_name_key"`
	CreatedAt time.Time `bun:"created_at,type:datetime(6),notnull"`
}

type memberPossibleWork20261207 struct {
	bun.BaseModel `bun:"table:member_possible_work"`

	ID         int64 `bun:"id,pk,autoincrement"`
	MemberID   int64 `bun:"member_id,notnull,unique:member_possible_work_member_id_category_id_key"`
	CategoryID int64 `bun:"category_id,notnull,unique:member_possible_work_member_id_category_id_key"`
}

type memberAbilities20261207 struct {
	bun.BaseModel `bun:"table:member_abilities"`

	ID        int64 `bun:"id,pk,autoincrement"`
	MemberID  int64 `bun:"member_id,notnull,unique:member_abilities_member_id_ability_id_key"`
	AbilityID int64 `bun:"ability_id,notnull,unique:member_abilities_member_id_ability_id_key"`
}

type helperStats20261207 struct {
	bun.BaseModel `bun:"table:helper_stats"`

	MemberID      int64     `bun:"member_id,pk"`
	LastInvitedAt time.Time `bun:"last_invited_at,notnull"`
	Invitations   int32     `bun:"invitations,type:integer,notnull,default:0"`
}

type helperStats20261207MySQL struct {
	bun.BaseModel `bun:"table:helper_stats"`

	MemberID      int64     `bun:"member_id,pk"`
	LastInvitedAt time.Time `bun:"last_invited_at,type:datetime(6),notnull"`
	Invitations   int32     `bun:"invitations,type:integer,notnull,default:0"`
}

type tasks20261207 struct {
	bun.BaseModel `bun:"table:tasks"`

	ID              int64     `bun:"id,pk,autoincrement"`
	PublicID        string    `bun:"public_id,type:varchar(32),notnull,unique:tasks_public_id_key"`
	CustomerID      int64     `bun:"customer_id,notnull"`
	Title           string    `bun:"title,type:varchar(255),notnull"`
	Details         string    `bun:"details,type:text,notnull"`
	BigCategoryID   int64     `bun:"big_category_id,notnull"`
	SmallCategoryID int64     `bun:"small_category_id,notnull"`
	HelpersWanted   int16     `bun:"helpers_wanted,type:smallint,notnull"`
	HelperCount     int16     `bun:"helper_count,type:smallint,notnull,default:0"`
	Status          int16     `bun:"status,type:smallint,notnull"`
	DueAt           time.Time `bun:"due_at,nullzero"`
	Version         int64     `bun:"version,type:bigint,notnull,default:1"`
	MatchingAt      time.Time `bun:"matching_at,nullzero"`
	ShortNotifiedAt time.Time `bun:"short_notified_at,nullzero"`
	CreatedAt       time.Time `bun:"created_at,notnull"`
	UpdatedAt       time.Time `bun:"updated_at,notnull"`
	DeletedAt       time.Time `bun:"deleted_at,nullzero"`
}

type tasks20261207MySQL struct {
	bun.BaseModel `bun:"table:tasks"`

	ID              int64     `bun:"id,pk,autoincrement"`
	PublicID        string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:tasks_public_id_key"`
	CustomerID      int64     `bun:"customer_id,notnull"`
	Title           string    `bun:"title,type:varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	Details         string    `bun:"details,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	BigCategoryID   int64     `bun:"big_category_id,notnull"`
	SmallCategoryID int64     `bun:"small_category_id,notnull"`
	HelpersWanted   int16     `bun:"helpers_wanted,type:smallint,notnull"`
	HelperCount     int16     `bun:"helper_count,type:smallint,notnull,default:0"`
	Status          int16     `bun:"status,type:smallint,notnull"`
	DueAt           time.Time `bun:"due_at,type:datetime(6),nullzero"`
	Version         int64     `bun:"version,type:bigint,notnull,default:1"`
	MatchingAt      time.Time `bun:"matching_at,type:datetime(6),nullzero"`
	ShortNotifiedAt time.Time `bun:"short_notified_at,type:datetime(6),nullzero"`
	CreatedAt       time.Time `bun:"created_at,type:datetime(6),notnull"`
	UpdatedAt       time.Time `bun:"updated_at,type:datetime(6),notnull"`
	DeletedAt       time.Time `bun:"deleted_at,type:datetime(6),nullzero"`
}

type taskAbilities20261207 struct {
	bun.BaseModel `bun:"table:task_abilities"`

	ID        int64 `bun:"id,pk,autoincrement"`
	TaskID    int64 `bun:"task_id,notnull,unique:task_abilities_task_id_ability_id_key"`
	AbilityID int64 `bun:"ability_id,notnull,unique:task_abilities_task_id_ability_id_key"`
}

type taskHelpers20261207 struct {
	bun.BaseModel `bun:"table:task_helpers"`

	ID        int64     `bun:"id,pk,autoincrement"`
	TaskID    int64     `bun:"task_id,notnull,unique:task_helpers_task_id_helper_id_key"`
	HelperID  int64     `bun:"helper_id,notnull,unique:task_helpers_task_id_helper_id_key"`
	Status    int16     `bun:"status,type:smallint,notnull"`
	MatchedAt time.Time `bun:"matched_at,notnull"`
	StartedAt time.Time `bun:"started_at,nullzero"`
	DoneAt    time.Time `bun:"done_at,nullzero"`
}

type taskHelpers20261207MySQL struct {
	bun.BaseModel `bun:"table:task_helpers"`

	ID        int64     `bun:"id,pk,autoincrement"`
	TaskID    int64     `bun:"task_id,notnull,unique:task_helpers_task_id_helper_id_key"`
	HelperID  int64     `bun:"helper_id,notnull,unique:task_helpers_task_id_helper_id_key"`
	Status    int16     `bun:"status,type:smallint,notnull"`
	MatchedAt time.Time `bun:"matched_at,type:datetime(6),notnull"`
	StartedAt time.Time `bun:"started_at,type:datetime(6),nullzero"`
	DoneAt    time.Time `bun:"done_at,type:datetime(6),nullzero"`
}

type taskInvitations20261207 struct {
	bun.BaseModel `bun:"table:task_invitations"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,type:varchar(32),notnull,unique:task_invitations_public_id_key"`
	TaskID     int64     `bun:"task_id,notnull,unique:task_invitations_task_id_helper_id_key"`
	HelperID   int64     `bun:"helper_id,notnull,unique:task_invitations_task_id_helper_id_key"`
	Status     int16     `bun:"status,type:smallint,notnull"`
	Reason     string    `bun:"reason,type:varchar(1000),nullzero"`
	InvitedAt  time.Time `bun:"invited_at,notnull"`
	ExpiresAt  time.Time `bun:"expires_at,notnull"`
	AnsweredAt time.Time `bun:"answered_at,nullzero"`
}

type taskInvitations20261207MySQL struct {
	bun.BaseModel `bun:"table:task_invitations"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:task_invitations_public_id_key"`
	TaskID     int64     `bun:"task_id,notnull,unique:task_invitations_task_id_helper_id_key"`
	HelperID   int64     `bun:"helper_id,notnull,unique:task_invitations_task_id_helper_id_key"`
	Status     int16     `bun:"status,type:smallint,notnull"`
	Reason     string    `bun:"reason,type:varchar(1000) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero"`
	InvitedAt  time.Time `bun:"invited_at,type:datetime(6),notnull"`
	ExpiresAt  time.Time `bun:"expires_at,type:datetime(6),notnull"`
	AnsweredAt time.Time `bun:"answered_at,type:datetime(6),nullzero"`
}

type taskReviews20261207 struct {
	bun.BaseModel `bun:"table:task_reviews"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32),notnull,unique:task_reviews_public_id_key"`
	TaskID    int64     `bun:"task_id,notnull,unique:task_reviews_task_id_helper_id_key"`
	HelperID  int64     `bun:"helper_id,notnull,unique:task_reviews_task_id_helper_id_key"`
	Recommend bool      `bun:"recommend,notnull"`
	Text      string    `bun:"text,type:text,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

type taskReviews20261207MySQL struct {
	bun.BaseModel `bun:"table:task_reviews"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:task_reviews_public_id_key"`
	TaskID    int64     `bun:"task_id,notnull,unique:task_reviews_task_id_helper_id_key"`
	HelperID  int64     `bun:"helper_id,notnull,unique:task_reviews_task_id_helper_id_key"`
	Recommend bool      `bun:"recommend,notnull"`
	Text      string    `bun:"text,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	CreatedAt time.Time `bun:"created_at,type:datetime(6),notnull"`
}

type taskReviewScores20261207 struct {
	bun.BaseModel `bun:"table:task_review_scores"`

	ID        int64 `bun:"id,pk,autoincrement"`
	ReviewID  int64 `bun:"review_id,notnull,unique:task_review_scores_review_id_ability_id_key"`
	AbilityID int64 `bun:"ability_id,notnull,unique:task_review_scores_review_id_ability_id_key"`
	Score     int16 `bun:"score,type:smallint,notnull"`
}

// seedSkills are easytask's sample categories (MatchingDummyDB) and
// abilities: each big category with its small ones.
var seedSkills = []struct {
	big   string
	small []string
}{
	{"자료조사", []string{"인터넷 자료 검색", "시장(자료)조사", "논문검색"}},
	{"디자인", []string{"웹퍼블리싱"}},
	{"마케팅", []string{"SNS 세팅 및 관리"}},
	{"통번역", []string{"초벌 번역"}},
	{"콘텐츠기획", []string{"영상기획"}},
}

var seedAbilities = []string{"언어역량", "기획력", "영어", "중국어"}

// tasksUp creates the helper-request tables and seeds the catalogue.
func tasksUp(ctx context.Context, bdb *bun.DB) error {
	cats, abilities := any((*skillCategories20261207)(nil)), any((*skillAbilities20261207)(nil))
	stats, tasks := any((*helperStats20261207)(nil)), any((*tasks20261207)(nil))
	helpers, invitations := any((*taskHelpers20261207)(nil)), any((*taskInvitations20261207)(nil))
	reviews := any((*taskReviews20261207)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		cats, abilities = (*skillCategories20261207MySQL)(nil), (*skillAbilities20261207MySQL)(nil)
		stats, tasks = (*helperStats20261207MySQL)(nil), (*tasks20261207MySQL)(nil)
		helpers, invitations = (*taskHelpers20261207MySQL)(nil), (*taskInvitations20261207MySQL)(nil)
		reviews = (*taskReviews20261207MySQL)(nil)
	}
	work, memberAbilities := any((*memberPossibleWork20261207)(nil)), any((*memberAbilities20261207)(nil))
	taskAbilities, scores := any((*taskAbilities20261207)(nil)), any((*taskReviewScores20261207)(nil))
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		tables := []struct {
			name  string
			model any
			fks   []string
		}{
			{"skill_categories", cats, nil},
			{"skill_abilities", abilities, nil},
			{"member_possible_work", work, []string{"(member_id) REFERENCES members (id)", "(category_id) REFERENCES skill_categories (id)"}},
			{"member_abilities", memberAbilities, []string{"(member_id) REFERENCES members (id)", "(ability_id) REFERENCES skill_abilities (id)"}},
			{"helper_stats", stats, []string{"(member_id) REFERENCES members (id)"}},
			{"tasks", tasks, []string{"(customer_id) REFERENCES members (id)",
				"(big_category_id) REFERENCES skill_categories (id)", "(small_category_id) REFERENCES skill_categories (id)"}},
			{"task_abilities", taskAbilities, []string{"(task_id) REFERENCES tasks (id)", "(ability_id) REFERENCES skill_abilities (id)"}},
			{"task_helpers", helpers, []string{"(task_id) REFERENCES tasks (id)", "(helper_id) REFERENCES members (id)"}},
			{"task_invitations", invitations, []string{"(task_id) REFERENCES tasks (id)", "(helper_id) REFERENCES members (id)"}},
			{"task_reviews", reviews, []string{"(task_id) REFERENCES tasks (id)", "(helper_id) REFERENCES members (id)"}},
			{"task_review_scores", scores, []string{"(review_id) REFERENCES task_reviews (id)", "(ability_id) REFERENCES skill_abilities (id)"}},
		}
		for _, t := range tables {
			q := tx.NewCreateTable().Model(t.model)
			for _, fk := range t.fks {
				q = q.ForeignKey(fk)
			}
			if _, err := q.Exec(ctx); err != nil {
				return fmt.Errorf("create table %s: %w", t.name, err)
			}
		}
		for _, idx := range []struct {
			model any
			name  string
			cols  []string
		}{
			// The candidate query: the helpers of a small category.
			{work, "member_possible_work_category_id_member_id_idx", []string{"category_id", "member_id"}},
			// The tick: tasks in MATCHING, in id order.
			{tasks, "tasks_status_id_idx", []string{"status", "id"}},
			// A customer's tasks, newest first.
			{tasks, "tasks_customer_id_id_idx", []string{"customer_id", "id"}},
			// A helper's tasks.
			{helpers, "task_helpers_helper_id_idx", []string{"helper_id"}},
			// The expiry of open invitations, and a task's open ones.
			{invitations, "task_invitations_status_expires_at_idx", []string{"status", "expires_at"}},
			{invitations, "task_invitations_task_id_status_idx", []string{"task_id", "status"}},
			// A helper's invitations, newest first.
			{invitations, "task_invitations_helper_id_id_idx", []string{"helper_id", "id"}},
			{reviews, "task_reviews_helper_id_idx", []string{"helper_id"}},
		} {
			if _, err := tx.NewCreateIndex().Model(idx.model).Index(idx.name).Column(idx.cols...).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", idx.name, err)
			}
		}
		return seedCatalogue(ctx, tx)
	})
}

// seedCatalogue inserts easytask's sample categories and abilities. The
// rows go through the frozen structs: an insert names only columns, so the
// MySQL variants are not needed here.
func seedCatalogue(ctx context.Context, tx bun.Tx) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, s := range seedSkills {
		big := &skillCategories20261207{Name: s.big, CreatedAt: now}
		if _, err := tx.NewInsert().Model(big).Exec(ctx); err != nil {
			return fmt.Errorf("seed category %s: %w", s.big, err)
		}
		for _, name := range s.small {
			if _, err := tx.NewInsert().Model(&skillCategories20261207{BigID: big.ID, Name: name, CreatedAt: now}).Exec(ctx); err != nil {
				return fmt.Errorf("seed category %s: %w", name, err)
			}
		}
	}
	for _, name := range seedAbilities {
		if _, err := tx.NewInsert().Model(&skillAbilities20261207{Name: name, CreatedAt: now}).Exec(ctx); err != nil {
			return fmt.Errorf("seed ability %s: %w", name, err)
		}
	}
	return nil
}

// tasksDown drops the helper-request tables, dependants first.
func tasksDown(ctx context.Context, bdb *bun.DB) error {
	for _, t := range []string{"task_review_scores", "task_reviews", "task_invitations", "task_helpers", "task_abilities",
		"tasks", "helper_stats", "member_abilities", "member_possible_work", "skill_abilities", "skill_categories"} {
		if _, err := bdb.NewDropTable().Table(t).IfExists().Exec(ctx); err != nil {
			return fmt.Errorf("drop table %s: %w", t, err)
		}
	}
	return nil
}
