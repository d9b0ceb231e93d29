package taskdb

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// skillCategoryRow is a row of skill_categories; big_id 0 is a big category.
type skillCategoryRow struct {
	bun.BaseModel `bun:"table:skill_categories,alias:sc"`

	ID        int64     `bun:"id,pk,autoincrement"`
	BigID     int64     `bun:"big_id,notnull"`
	Name      string    `bun:"name,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

func (r *skillCategoryRow) toDomain() domain.SkillCategory {
	return domain.SkillCategory{ID: r.ID, BigID: r.BigID, Name: r.Name}
}

type skillAbilityRow struct {
	bun.BaseModel `bun:"table:skill_abilities,alias:sa"`

	ID        int64     `bun:"id,pk,autoincrement"`
	Name      string    `bun:"name,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

func (r *skillAbilityRow) toDomain() domain.Ability { return domain.Ability{ID: r.ID, Name: r.Name} }

type memberPossibleWorkRow struct {
	bun.BaseModel `bun:"table:member_possible_work"`

	ID         int64 `bun:"id,pk,autoincrement"`
	MemberID   int64 `bun:"member_id,notnull"`
	CategoryID int64 `bun:"category_id,notnull"`
}

type memberAbilityRow struct {
	bun.BaseModel `bun:"table:member_abilities"`

	ID        int64 `bun:"id,pk,autoincrement"`
	MemberID  int64 `bun:"member_id,notnull"`
	AbilityID int64 `bun:"ability_id,notnull"`
}

// helperStatsRow orders the candidates of invitation rounds.
type helperStatsRow struct {
	bun.BaseModel `bun:"table:helper_stats"`

	MemberID      int64     `bun:"member_id,pk"`
	LastInvitedAt time.Time `bun:"last_invited_at,notnull"`
	Invitations   int32     `bun:"invitations,notnull"`
}

// neverInvited is helper_stats.last_invited_at of a helper not invited
// yet: it sorts before every real time on every dialect, unlike NULL.
var neverInvited = time.Unix(0, 0).UTC()

// Skills is the store of the skills catalogue and members' skills.
type Skills struct{}

// Catalogue returns every category and ability in id order.
func (Skills) Catalogue(ctx context.Context, idb bun.IDB) (*domain.SkillCatalogue, error) {
	var cats []skillCategoryRow
	if err := idb.NewSelect().Model(&cats).Order("id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("skill categories: %w", db.Translate(err))
	}
	var abs []skillAbilityRow
	if err := idb.NewSelect().Model(&abs).Order("id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("skill abilities: %w", db.Translate(err))
	}
	out := &domain.SkillCatalogue{Categories: make([]domain.SkillCategory, len(cats)), Abilities: make([]domain.Ability, len(abs))}
	for i := range cats {
		out.Categories[i] = cats[i].toDomain()
	}
	for i := range abs {
		out.Abilities[i] = abs[i].toDomain()
	}
	return out, nil
}

// AddCategory adds a category named name: a big one when bigID is 0, else
// a small one inside big category bigID. Errors: EINVALID (field
// "big_category_id") when bigID is not a big category, ECONFLICT when the
// name is taken there.
func (Skills) AddCategory(ctx context.Context, idb bun.IDB, bigID int64, name string, now time.Time) (*domain.SkillCategory, error) {
	if bigID != 0 {
		if err := checkCategory(ctx, idb, "big_category_id", bigID, 0); err != nil {
			return nil, err
		}
	}
	row := skillCategoryRow{BigID: bigID, Name: name, CreatedAt: db.DBTime(now)}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return nil, fmt.Errorf("add category %q: %w", name, db.Translate(err))
	}
	c := row.toDomain()
	return &c, nil
}

// AddAbility adds an ability. Errors: ECONFLICT when the name is taken.
func (Skills) AddAbility(ctx context.Context, idb bun.IDB, name string, now time.Time) (*domain.Ability, error) {
	row := skillAbilityRow{Name: name, CreatedAt: db.DBTime(now)}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return nil, fmt.Errorf("add ability %q: %w", name, db.Translate(err))
	}
	a := row.toDomain()
	return &a, nil
}

// checkCategory checks that id is a category inside big category bigID
// (0: a big category itself); else EINVALID naming field.
func checkCategory(ctx context.Context, idb bun.IDB, field string, id, bigID int64) error {
	n, err := idb.NewSelect().Model((*skillCategoryRow)(nil)).Where("id = ?", id).Where("big_id = ?", bigID).Count(ctx)
	if err != nil {
		return fmt.Errorf("check category %d: %w", id, db.Translate(err))
	}
	if n == 0 {
		if bigID == 0 {
			return domain.FieldErrorf(domain.EINVALID, field, "No big category %d.", id)
		}
		return domain.FieldErrorf(domain.EINVALID, field, "No small category %d in big category %d.", id, bigID)
	}
	return nil
}

// checkIDs checks that every id of ids is in model's table (with the
// extra condition where, if any); else EINVALID naming field and the
// unknown ids.
func checkIDs(ctx context.Context, idb bun.IDB, model any, field string, ids []int64, where string) error {
	if len(ids) == 0 {
		return nil
	}
	q := idb.NewSelect().Model(model).Column("id").Where("id IN (?)", bun.In(ids))
	if where != "" {
		q = q.Where(where)
	}
	var found []int64
	if err := q.Scan(ctx, &found); err != nil {
		return fmt.Errorf("check %s: %w", field, db.Translate(err))
	}
	if len(found) == len(ids) {
		return nil
	}
	known := make(map[int64]bool, len(found))
	for _, id := range found {
		known[id] = true
	}
	var unknown []string
	for _, id := range ids {
		if !known[id] {
			unknown = append(unknown, strconv.FormatInt(id, 10))
		}
	}
	return domain.FieldErrorf(domain.EINVALID, field, "Unknown ids in %q: %s.", field, strings.Join(unknown, ", "))
}

// CheckTaskSkills checks a task's categories and required abilities
// against the catalogue. Errors: EINVALID naming "big_category_id",
// "small_category_id" or "ability_ids".
func (Skills) CheckTaskSkills(ctx context.Context, idb bun.IDB, bigID, smallID int64, abilityIDs []int64) error {
	if err := checkCategory(ctx, idb, "big_category_id", bigID, 0); err != nil {
		return err
	}
	if err := checkCategory(ctx, idb, "small_category_id", smallID, bigID); err != nil {
		return err
	}
	return checkIDs(ctx, idb, (*skillAbilityRow)(nil), "ability_ids", abilityIDs, "")
}

// MemberSkills returns live member id's possible work and abilities, in
// catalogue order. Errors: ENOTFOUND.
func (Skills) MemberSkills(ctx context.Context, idb bun.IDB, id string) (*domain.MemberSkills, error) {
	key, err := db.MemberKey(ctx, idb, id)
	if err != nil {
		return nil, err
	}
	var cats []skillCategoryRow
	if err := idb.NewSelect().Model(&cats).
		Where("sc.id IN (?)", idb.NewSelect().Model((*memberPossibleWorkRow)(nil)).Column("category_id").Where("member_id = ?", key)).
		Order("sc.id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("possible work of %s: %w", id, db.Translate(err))
	}
	var abs []skillAbilityRow
	if err := idb.NewSelect().Model(&abs).
		Where("sa.id IN (?)", idb.NewSelect().Model((*memberAbilityRow)(nil)).Column("ability_id").Where("member_id = ?", key)).
		Order("sa.id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("abilities of %s: %w", id, db.Translate(err))
	}
	out := &domain.MemberSkills{PossibleWork: make([]domain.SkillCategory, len(cats)), Abilities: make([]domain.Ability, len(abs))}
	for i := range cats {
		out.PossibleWork[i] = cats[i].toDomain()
	}
	for i := range abs {
		out.Abilities[i] = abs[i].toDomain()
	}
	return out, nil
}

// SetMemberSkills replaces live member id's possible work (small
// categories) and abilities; a nil list stays as it is. It also gives the
// member their helper_stats row, which the invitation rounds need. Errors:
// ENOTFOUND for the member; EINVALID naming "possible_work" or
// "abilities" for an id that is not in the catalogue (a big category is
// not possible work), and then nothing changes when run in a transaction.
func (Skills) SetMemberSkills(ctx context.Context, idb bun.IDB, id string, work, abilities []int64) error {
	key, err := db.MemberKey(ctx, idb, id)
	if err != nil {
		return err
	}
	if err := checkIDs(ctx, idb, (*skillCategoryRow)(nil), "possible_work", work, "big_id <> 0"); err != nil {
		return err
	}
	if err := checkIDs(ctx, idb, (*skillAbilityRow)(nil), "abilities", abilities, ""); err != nil {
		return err
	}
	if work != nil {
		if _, err := idb.NewDelete().Model((*memberPossibleWorkRow)(nil)).Where("member_id = ?", key).Exec(ctx); err != nil {
			return fmt.Errorf("set possible work of %s: %w", id, db.Translate(err))
		}
		rows := make([]memberPossibleWorkRow, len(work))
		for i, c := range sortedIDs(work) {
			rows[i] = memberPossibleWorkRow{MemberID: key, CategoryID: c}
		}
		if len(rows) > 0 {
			if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
				return fmt.Errorf("set possible work of %s: %w", id, db.Translate(err))
			}
		}
	}
	if abilities != nil {
		if _, err := idb.NewDelete().Model((*memberAbilityRow)(nil)).Where("member_id = ?", key).Exec(ctx); err != nil {
			return fmt.Errorf("set abilities of %s: %w", id, db.Translate(err))
		}
		rows := make([]memberAbilityRow, len(abilities))
		for i, a := range sortedIDs(abilities) {
			rows[i] = memberAbilityRow{MemberID: key, AbilityID: a}
		}
		if len(rows) > 0 {
			if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
				return fmt.Errorf("set abilities of %s: %w", id, db.Translate(err))
			}
		}
	}
	q := idb.NewInsert().Model(&helperStatsRow{MemberID: key, LastInvitedAt: neverInvited})
	if idb.Dialect().Name() == dialect.MySQL {
		q = q.Ignore()
	} else {
		q = q.On("CONFLICT (member_id) DO NOTHING")
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("helper stats of %s: %w", id, db.Translate(err))
	}
	return nil
}

// sortedIDs returns ids sorted, so concurrent writers insert in one order.
func sortedIDs(ids []int64) []int64 {
	out := append([]int64(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
