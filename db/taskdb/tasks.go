// Package taskdb stores helper requests (easytask): tasks, invitations of
// qualified helpers, the helpers' progress and reviews, and the skill
// catalogue that decides who qualifies. It builds on db for transactions,
// error mapping and members.
package taskdb

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// taskRow is a row of tasks, read with its customer's public id and
// nickname.
type taskRow struct {
	bun.BaseModel `bun:"table:tasks,alias:t"`

	ID              int64     `bun:"id,pk,autoincrement"`
	PublicID        string    `bun:"public_id,notnull"`
	CustomerID      int64     `bun:"customer_id,notnull"`
	Title           string    `bun:"title,notnull"`
	Details         string    `bun:"details,notnull"`
	BigCategoryID   int64     `bun:"big_category_id,notnull"`
	SmallCategoryID int64     `bun:"small_category_id,notnull"`
	HelpersWanted   int16     `bun:"helpers_wanted,notnull"`
	HelperCount     int16     `bun:"helper_count,notnull"`
	Status          int16     `bun:"status,notnull"`
	DueAt           time.Time `bun:"due_at,nullzero"`
	Version         int64     `bun:"version,notnull"`
	MatchingAt      time.Time `bun:"matching_at,nullzero"`
	ShortNotifiedAt time.Time `bun:"short_notified_at,nullzero"`
	CreatedAt       time.Time `bun:"created_at,notnull"`
	UpdatedAt       time.Time `bun:"updated_at,notnull"`
	DeletedAt       time.Time `bun:"deleted_at,nullzero"`

	CustomerPublicID string `bun:"customer_public_id,scanonly"`
	CustomerNickname string `bun:"customer_nickname,scanonly"`
}

func (r *taskRow) toDomain(abilities []int64) *domain.Task {
	t := &domain.Task{
		ID: r.PublicID, Key: r.ID, CustomerID: r.CustomerPublicID, Customer: r.CustomerNickname,
		Title: r.Title, Details: r.Details, BigCategoryID: r.BigCategoryID, SmallCategoryID: r.SmallCategoryID,
		AbilityIDs: abilities, HelpersWanted: int(r.HelpersWanted), HelperCount: int(r.HelperCount),
		Status: domain.TaskStatus(r.Status), Version: r.Version,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if t.AbilityIDs == nil {
		t.AbilityIDs = []int64{}
	}
	if !r.DueAt.IsZero() {
		at := r.DueAt.UTC()
		t.DueAt = &at
	}
	if !r.MatchingAt.IsZero() {
		at := r.MatchingAt.UTC()
		t.MatchingAt = &at
	}
	return t
}

type taskAbilityRow struct {
	bun.BaseModel `bun:"table:task_abilities"`

	ID        int64 `bun:"id,pk,autoincrement"`
	TaskID    int64 `bun:"task_id,notnull"`
	AbilityID int64 `bun:"ability_id,notnull"`
}

// Tasks is the store of helper requests. A deleted task is never found.
type Tasks struct{}

func errTaskNotFound() error { return domain.Errorf(domain.ENOTFOUND, "Task not found.") }

// errTaskMoved is a lost version check: the task changed since it was
// read.
func errTaskMoved() error {
	return domain.Errorf(domain.ECONFLICT, "The task changed meanwhile; read it again and retry.")
}

func selectTasks(idb bun.IDB, dst any) *bun.SelectQuery {
	return idb.NewSelect().Model(dst).
		ColumnExpr("t.*").
		ColumnExpr("m.public_id AS customer_public_id, m.nickname AS customer_nickname").
		Join("JOIN members AS m ON m.id = t.customer_id").
		Where("t.deleted_at IS NULL")
}

// withAbilities turns rows into tasks with their required abilities, in
// the order they were given.
func withAbilities(ctx context.Context, idb bun.IDB, rows []taskRow) ([]domain.Task, error) {
	if len(rows) == 0 {
		return []domain.Task{}, nil
	}
	keys := make([]int64, len(rows))
	for i := range rows {
		keys[i] = rows[i].ID
	}
	var abs []taskAbilityRow
	if err := idb.NewSelect().Model(&abs).Where("task_id IN (?)", bun.In(keys)).Order("id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("task abilities: %w", db.Translate(err))
	}
	by := map[int64][]int64{}
	for _, a := range abs {
		by[a.TaskID] = append(by[a.TaskID], a.AbilityID)
	}
	out := make([]domain.Task, len(rows))
	for i := range rows {
		out[i] = *rows[i].toDomain(by[rows[i].ID])
	}
	return out, nil
}

// Create inserts t, STANDBY at version 1, with its required abilities, and
// sets t.ID, Key, Status and Version. The caller has validated t and
// checked its skills against the catalogue. Errors: ENOTFOUND when the
// customer is gone.
func (Tasks) Create(ctx context.Context, idb bun.IDB, t *domain.Task) error {
	var who []db.MemberRow
	if err := idb.NewSelect().Model(&who).Column("id", "nickname").
		Where("public_id = ?", t.CustomerID).Where("deleted_at IS NULL").Scan(ctx); err != nil {
		return fmt.Errorf("create task: %w", db.Translate(err))
	}
	if len(who) == 0 {
		return db.ErrMemberNotFound()
	}
	customer := who[0].ID
	t.Customer = who[0].Nickname
	t.ID, t.Status, t.Version = db.NewPublicID(), domain.TaskStandby, 1
	t.CreatedAt, t.UpdatedAt = db.DBTime(t.CreatedAt), db.DBTime(t.CreatedAt)
	row := taskRow{PublicID: t.ID, CustomerID: customer, Status: int16(t.Status), Version: 1,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	fillTaskRow(&row, t)
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("create task: %w", db.Translate(err))
	}
	t.Key = row.ID
	return setTaskAbilities(ctx, idb, t.Key, t.AbilityIDs)
}

// fillTaskRow copies what a customer edits from t into r.
func fillTaskRow(r *taskRow, t *domain.Task) {
	r.Title, r.Details = t.Title, t.Details
	r.BigCategoryID, r.SmallCategoryID = t.BigCategoryID, t.SmallCategoryID
	r.HelpersWanted = int16(t.HelpersWanted)
	r.DueAt = time.Time{}
	if t.DueAt != nil {
		r.DueAt = db.DBTime(*t.DueAt)
	}
}

func setTaskAbilities(ctx context.Context, idb bun.IDB, key int64, ids []int64) error {
	if _, err := idb.NewDelete().Model((*taskAbilityRow)(nil)).Where("task_id = ?", key).Exec(ctx); err != nil {
		return fmt.Errorf("task abilities: %w", db.Translate(err))
	}
	if len(ids) == 0 {
		return nil
	}
	rows := make([]taskAbilityRow, len(ids))
	for i, id := range ids {
		rows[i] = taskAbilityRow{TaskID: key, AbilityID: id}
	}
	if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("task abilities: %w", db.Translate(err))
	}
	return nil
}

// FindByID returns task id. Errors: ENOTFOUND.
func (Tasks) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Task, error) {
	var rows []taskRow
	if err := selectTasks(idb, &rows).Where("t.public_id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find task %s: %w", id, db.Translate(err))
	}
	if len(rows) == 0 {
		return nil, errTaskNotFound()
	}
	ts, err := withAbilities(ctx, idb, rows)
	if err != nil {
		return nil, err
	}
	return &ts[0], nil
}

// Update writes the customer's fields of t, read at t.Version and still in
// STANDBY, and bumps the version. Errors: ECONFLICT when the task moved.
func (Tasks) Update(ctx context.Context, idb bun.IDB, t *domain.Task, now time.Time) error {
	var row taskRow
	fillTaskRow(&row, t)
	res, err := idb.NewUpdate().Model(&row).
		Column("title", "details", "big_category_id", "small_category_id", "helpers_wanted", "due_at").
		Set("version = version + 1").Set("updated_at = ?", db.DBTime(now)).
		Where("id = ?", t.Key).Where("version = ?", t.Version).Where("status = ?", int16(domain.TaskStandby)).
		Where("deleted_at IS NULL").
		Exec(ctx)
	if err := onePrecise(res, err, "update task "+t.ID); err != nil {
		return err
	}
	t.Version++
	t.UpdatedAt = db.DBTime(now)
	return setTaskAbilities(ctx, idb, t.Key, t.AbilityIDs)
}

// onePrecise checks that an update touched exactly one row: none means the
// version check lost.
func onePrecise(res interface{ RowsAffected() (int64, error) }, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, db.Translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n != 1 {
		return errTaskMoved()
	}
	return nil
}

// Delete marks t, read at t.Version and in STANDBY, deleted. Errors:
// ECONFLICT when it moved.
func (Tasks) Delete(ctx context.Context, idb bun.IDB, t *domain.Task, now time.Time) error {
	res, err := idb.NewUpdate().Model((*taskRow)(nil)).
		Set("deleted_at = ?", db.DBTime(now)).Set("updated_at = ?", db.DBTime(now)).Set("version = version + 1").
		Where("id = ?", t.Key).Where("version = ?", t.Version).Where("status = ?", int16(domain.TaskStandby)).
		Where("deleted_at IS NULL").
		Exec(ctx)
	return onePrecise(res, err, "delete task "+t.ID)
}

// SetStatus moves t, read at t.Version, to status to and bumps the
// version. Entering MATCHING stamps matching_at and forgets that the
// customer was told the task is short, so a new matching tells them again.
// Errors: ECONFLICT when the task moved.
func (Tasks) SetStatus(ctx context.Context, idb bun.IDB, t *domain.Task, to domain.TaskStatus, now time.Time) error {
	q := idb.NewUpdate().Model((*taskRow)(nil)).
		Set("status = ?", int16(to)).Set("version = version + 1").Set("updated_at = ?", db.DBTime(now)).
		Where("id = ?", t.Key).Where("version = ?", t.Version).Where("status = ?", int16(t.Status)).
		Where("deleted_at IS NULL")
	if to == domain.TaskMatching {
		q = q.Set("matching_at = ?", db.DBTime(now)).Set("short_notified_at = NULL")
	}
	res, err := q.Exec(ctx)
	if err := onePrecise(res, err, "set task status "+t.ID); err != nil {
		return err
	}
	t.Status, t.Version, t.UpdatedAt = to, t.Version+1, db.DBTime(now)
	if to == domain.TaskMatching {
		at := db.DBTime(now)
		t.MatchingAt = &at
	}
	return nil
}

// TaskPage is one page of tasks, newest first.
type TaskPage struct {
	Tasks []domain.Task
	// Next is the cursor of the following (older) page; "" on the last.
	Next string
}

// ListByCustomer returns a page of at most limit of the member's tasks,
// newest first, after cursor (the public id of the last task of the
// previous page; "" = the newest). Errors: EINVALID (field "cursor").
func (Tasks) ListByCustomer(ctx context.Context, idb bun.IDB, memberID, cursor string, limit int) (TaskPage, error) {
	if err := db.CheckLimit(limit); err != nil {
		return TaskPage{}, err
	}
	var before int64
	if cursor != "" {
		var keys []int64
		err := idb.NewSelect().Model((*taskRow)(nil)).Column("t.id").
			Join("JOIN members AS m ON m.id = t.customer_id").
			Where("t.public_id = ?", cursor).Where("m.public_id = ?", memberID).Scan(ctx, &keys)
		if err != nil {
			return TaskPage{}, fmt.Errorf("list tasks: %w", db.Translate(err))
		}
		if len(keys) == 0 {
			return TaskPage{}, domain.FieldErrorf(domain.EINVALID, "cursor", "Invalid cursor.")
		}
		before = keys[0]
	}
	var rows []taskRow
	q := selectTasks(idb, &rows).Where("m.public_id = ?", memberID).OrderExpr("t.id DESC").Limit(int64(limit) + 1)
	if before > 0 {
		q = q.Where("t.id < ?", before)
	}
	if err := q.Scan(ctx); err != nil {
		return TaskPage{}, fmt.Errorf("list tasks: %w", db.Translate(err))
	}
	var page TaskPage
	if len(rows) > limit {
		rows = rows[:limit]
		page.Next = rows[len(rows)-1].PublicID
	}
	var err error
	page.Tasks, err = withAbilities(ctx, idb, rows)
	return page, err
}

// Involves reports whether member id may read task t besides its
// customer: a helper invited to it (in any state of the invitation).
func (Tasks) Involves(ctx context.Context, idb bun.IDB, t *domain.Task, id string) (bool, error) {
	n, err := idb.NewSelect().Model((*taskInvitationRow)(nil)).
		Join("JOIN members AS m ON m.id = ti.helper_id").
		Where("ti.task_id = ?", t.Key).Where("m.public_id = ?", id).Count(ctx)
	if err != nil {
		return false, fmt.Errorf("task %s involves %s: %w", t.ID, id, db.Translate(err))
	}
	return n > 0, nil
}

// taskInvitationRow is a row of task_invitations.
type taskInvitationRow struct {
	bun.BaseModel `bun:"table:task_invitations,alias:ti"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,notnull"`
	TaskID     int64     `bun:"task_id,notnull"`
	HelperID   int64     `bun:"helper_id,notnull"`
	Status     int16     `bun:"status,notnull"`
	Reason     string    `bun:"reason,nullzero"`
	InvitedAt  time.Time `bun:"invited_at,notnull"`
	ExpiresAt  time.Time `bun:"expires_at,notnull"`
	AnsweredAt time.Time `bun:"answered_at,nullzero"`
}

// ExpireOpenInvitations expires every open invitation of task t (a stop
// of matching). It returns how many it expired.
func (Tasks) ExpireOpenInvitations(ctx context.Context, idb bun.IDB, t *domain.Task, now time.Time) (int, error) {
	res, err := idb.NewUpdate().Model((*taskInvitationRow)(nil)).
		Set("status = ?", int16(domain.InvitationExpired)).Set("answered_at = ?", db.DBTime(now)).
		Where("task_id = ?", t.Key).Where("status = ?", int16(domain.InvitationInvited)).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("expire invitations of %s: %w", t.ID, db.Translate(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// Candidate is a helper an invitation round may invite.
type Candidate struct {
	Key      int64  `bun:"id"`
	ID       string `bun:"public_id"`
	Nickname string `bun:"nickname"`
}

// Candidates returns up to limit helpers qualified for task t and not
// invited to it yet, best first: their possible work includes t's small
// category, their abilities cover every required one, they are not its
// customer and not deleted. Best is the highest activity score (the
// reputation, domain.Activity), then manner points, then the least
// recently invited, then the oldest account. The invitation unique key,
// not this read, keeps a helper from being invited twice.
func (Tasks) Candidates(ctx context.Context, idb bun.IDB, t *domain.Task, limit int) ([]Candidate, error) {
	if len(t.AbilityIDs) == 0 || limit < 1 {
		return nil, nil
	}
	var out []Candidate
	err := idb.NewRaw(`SELECT m.id, m.public_id, m.nickname
FROM member_possible_work AS pw
JOIN members AS m ON m.id = pw.member_id
JOIN helper_stats AS hs ON hs.member_id = pw.member_id
WHERE pw.category_id = ?
  AND m.deleted_at IS NULL
  AND m.public_id <> ?
  AND NOT EXISTS (SELECT 1 FROM task_invitations AS ti WHERE ti.task_id = ? AND ti.helper_id = pw.member_id)
  AND (SELECT COUNT(*) FROM member_abilities AS ma WHERE ma.member_id = pw.member_id AND ma.ability_id IN (?)) = ?
ORDER BY m.activity_score DESC, m.manner_points DESC, hs.last_invited_at ASC, m.id ASC
LIMIT ?`, t.SmallCategoryID, t.CustomerID, t.Key, bun.In(t.AbilityIDs), len(t.AbilityIDs), limit).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("candidates of task %s: %w", t.ID, db.Translate(err))
	}
	return out, nil
}

// Invite records an invitation of each candidate to task t, expiring at
// expires, and moves their last invitation time to now. A candidate
// already invited (by a round running at the same time) is passed over:
// the insert ignores the (task, helper) conflict. It returns those it
// invited.
func (Tasks) Invite(ctx context.Context, idb bun.IDB, t *domain.Task, cands []Candidate, now, expires time.Time) ([]Candidate, error) {
	var invited []Candidate
	for _, c := range cands {
		row := taskInvitationRow{PublicID: db.NewPublicID(), TaskID: t.Key, HelperID: c.Key,
			Status: int16(domain.InvitationInvited), InvitedAt: db.DBTime(now), ExpiresAt: db.DBTime(expires)}
		q := idb.NewInsert().Model(&row)
		if idb.Dialect().Name() == dialect.MySQL {
			q = q.Ignore()
		} else {
			q = q.On("CONFLICT (task_id, helper_id) DO NOTHING")
		}
		res, err := q.Exec(ctx)
		if err != nil {
			return nil, fmt.Errorf("invite %s to %s: %w", c.ID, t.ID, db.Translate(err))
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			if err != nil {
				return nil, fmt.Errorf("invite %s to %s: %w", c.ID, t.ID, err)
			}
			continue
		}
		if _, err := idb.NewUpdate().Model((*helperStatsRow)(nil)).
			Set("last_invited_at = ?", db.DBTime(now)).Set("invitations = invitations + 1").
			Where("member_id = ?", c.Key).Exec(ctx); err != nil {
			return nil, fmt.Errorf("invite %s to %s: stats: %w", c.ID, t.ID, db.Translate(err))
		}
		invited = append(invited, c)
	}
	return invited, nil
}

// OpenInvitations counts task t's invitations still waiting for an answer
// at now.
func (Tasks) OpenInvitations(ctx context.Context, idb bun.IDB, t *domain.Task, now time.Time) (int, error) {
	n, err := idb.NewSelect().Model((*taskInvitationRow)(nil)).
		Where("task_id = ?", t.Key).Where("status = ?", int16(domain.InvitationInvited)).
		Where("expires_at > ?", db.DBTime(now)).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("open invitations of %s: %w", t.ID, db.Translate(err))
	}
	return int(n), nil
}

// ExpireInvitations marks up to limit invitations EXPIRED whose time ran
// out by now, and returns how many.
func (Tasks) ExpireInvitations(ctx context.Context, idb bun.IDB, now time.Time, limit int) (int, error) {
	var ids []int64
	if err := idb.NewSelect().Model((*taskInvitationRow)(nil)).Column("id").
		Where("status = ?", int16(domain.InvitationInvited)).Where("expires_at <= ?", db.DBTime(now)).
		OrderExpr("expires_at").Limit(int64(limit)).Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("expire invitations: %w", db.Translate(err))
	}
	if len(ids) == 0 {
		return 0, nil
	}
	// The status check again: an answer may have come in meanwhile.
	res, err := idb.NewUpdate().Model((*taskInvitationRow)(nil)).
		Set("status = ?", int16(domain.InvitationExpired)).Set("answered_at = ?", db.DBTime(now)).
		Where("id IN (?)", bun.In(ids)).Where("status = ?", int16(domain.InvitationInvited)).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("expire invitations: %w", db.Translate(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// MarkShortNotified records that task t's customer is told now that it
// is short of helpers, unless that was done in this matching already, and
// reports whether this call did it: only one round tells them.
func (Tasks) MarkShortNotified(ctx context.Context, idb bun.IDB, t *domain.Task, now time.Time) (bool, error) {
	res, err := idb.NewUpdate().Model((*taskRow)(nil)).
		Set("short_notified_at = ?", db.DBTime(now)).
		Where("id = ?", t.Key).Where("status = ?", int16(domain.TaskMatching)).Where("short_notified_at IS NULL").
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("mark task %s short: %w", t.ID, db.Translate(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// TaskRef names a task by row id (a cursor) and public id.
type TaskRef struct {
	Key int64  `bun:"id"`
	ID  string `bun:"public_id"`
}

// Matching returns up to limit tasks in MATCHING with a row id above
// after, in id order: the invitation tick pages through them.
func (Tasks) Matching(ctx context.Context, idb bun.IDB, after int64, limit int) ([]TaskRef, error) {
	var out []TaskRef
	err := idb.NewSelect().Model((*taskRow)(nil)).Column("t.id", "t.public_id").
		Where("t.status = ?", int16(domain.TaskMatching)).Where("t.id > ?", after).Where("t.deleted_at IS NULL").
		OrderExpr("t.id").Limit(int64(limit)).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("tasks in matching: %w", db.Translate(err))
	}
	return out, nil
}

func (r *taskInvitationRow) toDomain(taskID, helperID string) *domain.Invitation {
	inv := &domain.Invitation{ID: r.PublicID, TaskID: taskID, HelperID: helperID, Status: domain.InvitationStatus(r.Status),
		Reason: r.Reason, InvitedAt: r.InvitedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC()}
	if !r.AnsweredAt.IsZero() {
		at := r.AnsweredAt.UTC()
		inv.AnsweredAt = &at
	}
	return inv
}

// FindInvitation returns member id's invitation to task t. Errors:
// ENOTFOUND when there is none.
func (Tasks) FindInvitation(ctx context.Context, idb bun.IDB, t *domain.Task, id string) (*domain.Invitation, error) {
	var rows []taskInvitationRow
	if err := idb.NewSelect().Model(&rows).ColumnExpr("ti.*").
		Join("JOIN members AS m ON m.id = ti.helper_id").
		Where("ti.task_id = ?", t.Key).Where("m.public_id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("invitation of %s to %s: %w", id, t.ID, db.Translate(err))
	}
	if len(rows) == 0 {
		return nil, domain.Errorf(domain.ENOTFOUND, "No invitation.")
	}
	return rows[0].toDomain(t.ID, id), nil
}

// Answer moves inv from INVITED to status (ACCEPTED or DECLINED) with
// reason, if it is still open at now, and reports whether it did: false
// means it was answered or expired meanwhile.
func (Tasks) Answer(ctx context.Context, idb bun.IDB, inv *domain.Invitation, status domain.InvitationStatus, reason string, now time.Time) (bool, error) {
	res, err := idb.NewUpdate().Model((*taskInvitationRow)(nil)).
		Set("status = ?", int16(status)).Set("answered_at = ?", db.DBTime(now)).Set("reason = ?", db.NullIfEmpty(reason)).
		Where("public_id = ?", inv.ID).Where("status = ?", int16(domain.InvitationInvited)).Where("expires_at > ?", db.DBTime(now)).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("answer invitation %s: %w", inv.ID, db.Translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("answer invitation %s: %w", inv.ID, err)
	}
	if n == 1 {
		at := db.DBTime(now)
		inv.Status, inv.Reason, inv.AnsweredAt = status, reason, &at
	}
	return n == 1, nil
}

type taskHelperRow struct {
	bun.BaseModel `bun:"table:task_helpers,alias:th"`

	ID        int64     `bun:"id,pk,autoincrement"`
	TaskID    int64     `bun:"task_id,notnull"`
	HelperID  int64     `bun:"helper_id,notnull"`
	Status    int16     `bun:"status,notnull"`
	MatchedAt time.Time `bun:"matched_at,notnull"`
	StartedAt time.Time `bun:"started_at,nullzero"`
	DoneAt    time.Time `bun:"done_at,nullzero"`

	MemberPublicID string `bun:"member_public_id,scanonly"`
	MemberNickname string `bun:"member_nickname,scanonly"`
}

func (r *taskHelperRow) toDomain() domain.TaskHelper {
	h := domain.TaskHelper{Key: r.HelperID, MemberID: r.MemberPublicID, Nickname: r.MemberNickname,
		Status: domain.TaskHelperStatus(r.Status), MatchedAt: r.MatchedAt.UTC()}
	if !r.StartedAt.IsZero() {
		at := r.StartedAt.UTC()
		h.StartedAt = &at
	}
	if !r.DoneAt.IsZero() {
		at := r.DoneAt.UTC()
		h.DoneAt = &at
	}
	return h
}

// AddHelper matches member id to task t, read at t.Version in MATCHING
// with a seat left: it counts the helper in, bumps the version and moves
// the task to MATCHED when that was the last seat, only if the task has
// not moved since it was read. Errors: ECONFLICT when it moved (read it
// again: it may be full now).
func (Tasks) AddHelper(ctx context.Context, idb bun.IDB, t *domain.Task, id string, now time.Time) error {
	helper, err := db.MemberKey(ctx, idb, id)
	if err != nil {
		return err
	}
	status := domain.TaskMatching
	if t.HelperCount+1 >= t.HelpersWanted {
		status = domain.TaskMatched
	}
	res, err := idb.NewUpdate().Model((*taskRow)(nil)).
		Set("helper_count = helper_count + 1").Set("status = ?", int16(status)).
		Set("version = version + 1").Set("updated_at = ?", db.DBTime(now)).
		Where("id = ?", t.Key).Where("version = ?", t.Version).Where("status = ?", int16(domain.TaskMatching)).
		Where("helper_count < helpers_wanted").Where("deleted_at IS NULL").
		Exec(ctx)
	if err := onePrecise(res, err, "add helper to "+t.ID); err != nil {
		return err
	}
	row := taskHelperRow{TaskID: t.Key, HelperID: helper, Status: int16(domain.TaskHelperMatched), MatchedAt: db.DBTime(now)}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("add helper to %s: %w", t.ID, db.Translate(err))
	}
	t.HelperCount++
	t.Status, t.Version, t.UpdatedAt = status, t.Version+1, db.DBTime(now)
	return nil
}

// HelperNicknames returns the nicknames of task t's helpers, in the order
// they were matched.
func (Tasks) HelperNicknames(ctx context.Context, idb bun.IDB, t *domain.Task) ([]string, error) {
	var out []string
	if err := idb.NewSelect().Model((*taskHelperRow)(nil)).ColumnExpr("m.nickname").
		Join("JOIN members AS m ON m.id = th.helper_id").
		Where("th.task_id = ?", t.Key).OrderExpr("th.id").Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("helpers of %s: %w", t.ID, db.Translate(err))
	}
	return out, nil
}

// Helpers returns task t's helpers with how far each is, in the order
// they were matched.
func (Tasks) Helpers(ctx context.Context, idb bun.IDB, t *domain.Task) ([]domain.TaskHelper, error) {
	var rows []taskHelperRow
	if err := idb.NewSelect().Model(&rows).ColumnExpr("th.*").
		ColumnExpr("m.public_id AS member_public_id, m.nickname AS member_nickname").
		Join("JOIN members AS m ON m.id = th.helper_id").
		Where("th.task_id = ?", t.Key).OrderExpr("th.id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("helpers of %s: %w", t.ID, db.Translate(err))
	}
	out := make([]domain.TaskHelper, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// Progress moves helper h of task t, read at t.Version, to status to and
// the task to status taskTo, only if the task has not moved since it was
// read. The task row is written first: every progress of a task bumps its
// version, so two helpers finishing at once cannot both miss each other's
// step (the second's version check fails and it reads again). Errors:
// ECONFLICT when the task or the helper moved.
func (Tasks) Progress(ctx context.Context, idb bun.IDB, t *domain.Task, h *domain.TaskHelper, to domain.TaskHelperStatus,
	taskTo domain.TaskStatus, now time.Time) error {
	res, err := idb.NewUpdate().Model((*taskRow)(nil)).
		Set("status = ?", int16(taskTo)).Set("version = version + 1").Set("updated_at = ?", db.DBTime(now)).
		Where("id = ?", t.Key).Where("version = ?", t.Version).Where("status = ?", int16(t.Status)).
		Where("deleted_at IS NULL").
		Exec(ctx)
	if err := onePrecise(res, err, "progress of task "+t.ID); err != nil {
		return err
	}
	q := idb.NewUpdate().Model((*taskHelperRow)(nil)).Set("status = ?", int16(to)).
		Where("task_id = ?", t.Key).Where("helper_id = ?", h.Key).Where("status = ?", int16(h.Status))
	at := db.DBTime(now)
	if to == domain.TaskHelperDoing {
		q = q.Set("started_at = ?", at)
		h.StartedAt = &at
	} else {
		q = q.Set("done_at = ?", at)
		h.DoneAt = &at
	}
	res, err = q.Exec(ctx)
	if err := onePrecise(res, err, "progress of a helper of "+t.ID); err != nil {
		return err
	}
	h.Status = to
	t.Status, t.Version, t.UpdatedAt = taskTo, t.Version+1, at
	return nil
}
