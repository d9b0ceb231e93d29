package main

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/internal/loadenv"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/domain"
)

// Rows the seed writes in bulk.

type possibleWorkRow struct {
	bun.BaseModel `bun:"table:member_possible_work"`

	ID         int64 `bun:"id,pk,autoincrement"`
	MemberID   int64 `bun:"member_id"`
	CategoryID int64 `bun:"category_id"`
}

type memberAbilityRow struct {
	bun.BaseModel `bun:"table:member_abilities"`

	ID        int64 `bun:"id,pk,autoincrement"`
	MemberID  int64 `bun:"member_id"`
	AbilityID int64 `bun:"ability_id"`
}

type helperStatsRow struct {
	bun.BaseModel `bun:"table:helper_stats"`

	MemberID      int64     `bun:"member_id,pk"`
	LastInvitedAt time.Time `bun:"last_invited_at"`
}

type taskRow struct {
	bun.BaseModel `bun:"table:tasks"`

	ID              int64     `bun:"id,pk,autoincrement"`
	PublicID        string    `bun:"public_id"`
	CustomerID      int64     `bun:"customer_id"`
	Title           string    `bun:"title"`
	Details         string    `bun:"details"`
	BigCategoryID   int64     `bun:"big_category_id"`
	SmallCategoryID int64     `bun:"small_category_id"`
	HelpersWanted   int16     `bun:"helpers_wanted"`
	Status          int16     `bun:"status"`
	Version         int64     `bun:"version"`
	MatchingAt      time.Time `bun:"matching_at"`
	CreatedAt       time.Time `bun:"created_at"`
	UpdatedAt       time.Time `bun:"updated_at"`
}

type taskAbilityRow struct {
	bun.BaseModel `bun:"table:task_abilities"`

	ID        int64 `bun:"id,pk,autoincrement"`
	TaskID    int64 `bun:"task_id"`
	AbilityID int64 `bun:"ability_id"`
}

type invitationRow struct {
	bun.BaseModel `bun:"table:task_invitations"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id"`
	TaskID    int64     `bun:"task_id"`
	HelperID  int64     `bun:"helper_id"`
	Status    int16     `bun:"status"`
	InvitedAt time.Time `bun:"invited_at"`
	ExpiresAt time.Time `bun:"expires_at"`
}

const chunk = 500

// insertChunks inserts rows in chunks.
func insertChunks[T any](ctx context.Context, bdb *bun.DB, rows []T) error {
	for lo := 0; lo < len(rows); lo += chunk {
		part := rows[lo:min(lo+chunk, len(rows))]
		if _, err := bdb.NewInsert().Model(&part).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// keysOf returns the row ids of members (or tasks) by public id, in order.
func keysOf(ctx context.Context, bdb *bun.DB, table string, ids []string) ([]int64, error) {
	by := make(map[string]int64, len(ids))
	for lo := 0; lo < len(ids); lo += chunk {
		var rows []struct {
			ID       int64  `bun:"id"`
			PublicID string `bun:"public_id"`
		}
		if err := bdb.NewSelect().Table(table).Column("id", "public_id").
			Where("public_id IN (?)", bun.In(ids[lo:min(lo+chunk, len(ids))])).Scan(ctx, &rows); err != nil {
			return nil, err
		}
		for _, r := range rows {
			by[r.PublicID] = r.ID
		}
	}
	out := make([]int64, len(ids))
	for i, id := range ids {
		if out[i] = by[id]; out[i] == 0 {
			return nil, fmt.Errorf("%s %s not found", table, id)
		}
	}
	return out, nil
}

// world is what the seed made.
type world struct {
	helpers     []string // public ids
	helperKeys  []int64
	roundTasks  []string // tasks in MATCHING for the round
	acceptTasks []string // tasks in MATCHING with invitations for the accepts
	invited     [][]int  // per accept task, the helper indexes invited
}

// seed stores p.helpers helpers spread over the small categories (each
// with 영어, every other one also 언어역량), p.customers customers, p.tasks
// tasks in MATCHING spread alike (every third also requiring 언어역량),
// and p.acceptTasks tasks of 초벌 번역 each with p.invites invitations.
func seed(ctx context.Context, bdb *bun.DB, p params, now time.Time) (*world, error) {
	cat, err := (taskdb.Skills{}).Catalogue(ctx, bdb)
	if err != nil {
		return nil, err
	}
	var small []domain.SkillCategory
	abilities := map[string]int64{}
	for _, c := range cat.Categories {
		if !c.Big() {
			small = append(small, c)
		}
	}
	for _, a := range cat.Abilities {
		abilities[a.Name] = a.ID
	}
	en, lang := abilities["영어"], abilities["언어역량"]
	w := &world{}
	if w.helpers, err = loadenv.Members(ctx, bdb, p.helpers, "h"); err != nil {
		return nil, err
	}
	if w.helperKeys, err = keysOf(ctx, bdb, "members", w.helpers); err != nil {
		return nil, err
	}
	var work []possibleWorkRow
	var abs []memberAbilityRow
	var stats []helperStatsRow
	for i, k := range w.helperKeys {
		work = append(work, possibleWorkRow{MemberID: k, CategoryID: small[i%len(small)].ID})
		abs = append(abs, memberAbilityRow{MemberID: k, AbilityID: en})
		if i%2 == 0 {
			abs = append(abs, memberAbilityRow{MemberID: k, AbilityID: lang})
		}
		stats = append(stats, helperStatsRow{MemberID: k, LastInvitedAt: time.Unix(0, 0).UTC()})
	}
	for _, rows := range []func() error{
		func() error { return insertChunks(ctx, bdb, work) },
		func() error { return insertChunks(ctx, bdb, abs) },
		func() error { return insertChunks(ctx, bdb, stats) },
	} {
		if err := rows(); err != nil {
			return nil, fmt.Errorf("seed skills: %w", err)
		}
	}
	customers, err := loadenv.Members(ctx, bdb, p.customers, "c")
	if err != nil {
		return nil, err
	}
	customerKeys, err := keysOf(ctx, bdb, "members", customers)
	if err != nil {
		return nil, err
	}
	var tasks []taskRow
	newTask := func(i int, c domain.SkillCategory, wanted int) taskRow {
		return taskRow{PublicID: db.NewPublicID(), CustomerID: customerKeys[i%len(customerKeys)], Title: fmt.Sprint("task ", i),
			Details: "load", BigCategoryID: c.BigID, SmallCategoryID: c.ID, HelpersWanted: int16(wanted),
			Status: int16(domain.TaskMatching), Version: 1, MatchingAt: now, CreatedAt: now, UpdatedAt: now}
	}
	for i := range p.tasks {
		tasks = append(tasks, newTask(i, small[i%len(small)], domain.TaskHelpersMax))
	}
	for i := range p.acceptTasks {
		// Invitations are seeded straight, so these need no candidates.
		tasks = append(tasks, newTask(i, small[0], p.wanted))
	}
	ids := make([]string, len(tasks))
	for i := range tasks {
		ids[i] = tasks[i].PublicID
	}
	if err := insertChunks(ctx, bdb, tasks); err != nil {
		return nil, fmt.Errorf("seed tasks: %w", err)
	}
	keys, err := keysOf(ctx, bdb, "tasks", ids)
	if err != nil {
		return nil, err
	}
	var tabs []taskAbilityRow
	for i, k := range keys {
		tabs = append(tabs, taskAbilityRow{TaskID: k, AbilityID: en})
		if i < p.tasks && i%3 == 0 {
			tabs = append(tabs, taskAbilityRow{TaskID: k, AbilityID: lang})
		}
	}
	if err := insertChunks(ctx, bdb, tabs); err != nil {
		return nil, fmt.Errorf("seed task abilities: %w", err)
	}
	w.roundTasks, w.acceptTasks = ids[:p.tasks], ids[p.tasks:]
	var invs []invitationRow
	for i, k := range keys[p.tasks:] {
		var idx []int
		for j := range p.invites {
			h := (i*p.invites + j) % len(w.helperKeys)
			idx = append(idx, h)
			invs = append(invs, invitationRow{PublicID: db.NewPublicID(), TaskID: k, HelperID: w.helperKeys[h],
				Status: int16(domain.InvitationInvited), InvitedAt: now, ExpiresAt: now.Add(24 * time.Hour)})
		}
		w.invited = append(w.invited, idx)
	}
	if err := insertChunks(ctx, bdb, invs); err != nil {
		return nil, fmt.Errorf("seed invitations: %w", err)
	}
	return w, nil
}
