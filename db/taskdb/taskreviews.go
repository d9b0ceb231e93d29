package taskdb

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// taskReviewRow is a row of task_reviews.
type taskReviewRow struct {
	bun.BaseModel `bun:"table:task_reviews,alias:tr"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,notnull"`
	TaskID    int64     `bun:"task_id,notnull"`
	HelperID  int64     `bun:"helper_id,notnull"`
	Recommend bool      `bun:"recommend,notnull"`
	Text      string    `bun:"text,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

type taskReviewScoreRow struct {
	bun.BaseModel `bun:"table:task_review_scores"`

	ID        int64 `bun:"id,pk,autoincrement"`
	ReviewID  int64 `bun:"review_id,notnull"`
	AbilityID int64 `bun:"ability_id,notnull"`
	Score     int16 `bun:"score,notnull"`
}

// AddReview stores r, the review of helper h of task t, with its scores,
// and sets r.ID and CreatedAt (now). The caller has validated r against
// the task's abilities. Errors: EALREADYREVIEWED when h was reviewed for
// t before (the (task, helper) unique key, so two at once store one).
func (Tasks) AddReview(ctx context.Context, idb bun.IDB, t *domain.Task, h *domain.TaskHelper, r *domain.TaskReview, now time.Time) error {
	row := taskReviewRow{PublicID: db.NewPublicID(), TaskID: t.Key, HelperID: h.Key, Recommend: r.Recommend, Text: r.Text,
		CreatedAt: db.DBTime(now)}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("review of %s on %s: %w", h.MemberID, t.ID, db.Translate(err))
	}
	ids := make([]int64, 0, len(r.Scores))
	for id := range r.Scores {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	scores := make([]taskReviewScoreRow, len(ids))
	for i, id := range ids {
		scores[i] = taskReviewScoreRow{ReviewID: row.ID, AbilityID: id, Score: int16(r.Scores[id])}
	}
	if len(scores) > 0 {
		if _, err := idb.NewInsert().Model(&scores).Exec(ctx); err != nil {
			return fmt.Errorf("review scores of %s on %s: %w", h.MemberID, t.ID, db.Translate(err))
		}
	}
	r.ID, r.TaskID, r.HelperID, r.CreatedAt = row.PublicID, t.ID, h.MemberID, row.CreatedAt
	return nil
}

// HelperReviews sums up the reviews member id got as a helper: the count,
// the share recommending them and the average score of each ability, in
// ability id order. Sums are read and divided here, as the dialects' AVG
// types differ.
func (Tasks) HelperReviews(ctx context.Context, idb bun.IDB, id string) (domain.HelperReviews, error) {
	var out domain.HelperReviews
	var totals struct {
		Count      int64 `bun:"n"`
		Recommends int64 `bun:"recommends"`
	}
	err := idb.NewSelect().Model((*taskReviewRow)(nil)).
		ColumnExpr("COUNT(*) AS n").
		ColumnExpr("COALESCE(SUM(CASE WHEN tr.recommend THEN 1 ELSE 0 END), 0) AS recommends").
		Join("JOIN members AS m ON m.id = tr.helper_id").
		Where("m.public_id = ?", id).Scan(ctx, &totals)
	if err != nil {
		return out, fmt.Errorf("helper reviews of %s: %w", id, db.Translate(err))
	}
	out.Abilities = []domain.AbilityScore{}
	if totals.Count == 0 {
		return out, nil
	}
	out.Count = int(totals.Count)
	out.RecommendRate = float64(totals.Recommends) / float64(totals.Count)
	var rows []struct {
		ID    int64  `bun:"id"`
		Name  string `bun:"name"`
		Sum   int64  `bun:"total"`
		Count int64  `bun:"n"`
	}
	err = idb.NewSelect().TableExpr("task_review_scores AS s").
		ColumnExpr("a.id, a.name, SUM(s.score) AS total, COUNT(*) AS n").
		Join("JOIN task_reviews AS tr ON tr.id = s.review_id").
		Join("JOIN members AS m ON m.id = tr.helper_id").
		Join("JOIN skill_abilities AS a ON a.id = s.ability_id").
		Where("m.public_id = ?", id).
		GroupExpr("a.id, a.name").OrderExpr("a.id").Scan(ctx, &rows)
	if err != nil {
		return out, fmt.Errorf("helper scores of %s: %w", id, db.Translate(err))
	}
	for _, r := range rows {
		out.Abilities = append(out.Abilities, domain.AbilityScore{Ability: domain.Ability{ID: r.ID, Name: r.Name},
			Average: float64(r.Sum) / float64(r.Count), Count: int(r.Count)})
	}
	return out, nil
}
