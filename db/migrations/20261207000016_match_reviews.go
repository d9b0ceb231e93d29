package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of match reviews and the activity score; see the
// foundation migration for why MySQL has its own.
//
// match_reviews: one member's review of another member of a match, once per
// (match, reviewer, reviewee) by its unique key, which also serves a match's
// reviews. score is 1–5 (domain.ReviewScoreMin..Max).
//
// members gets the parts of the activity score (domain.Activity) and the
// score itself, denormalised so the helper candidate query orders by a
// column: activity_matches, reviews_received, review_sum (of the scores, for
// the average), review_points (42Partner's points of the scores) and
// activity_score. Every change of a part adds its share to activity_score
// in the same statement (the score is linear in its parts); the backfill
// here computes it once from the matches and manner points there are.

type matchReviews20261207 struct {
	bun.BaseModel `bun:"table:match_reviews"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,type:varchar(32),notnull,unique:match_reviews_public_id_key"`
	MatchID    int64     `bun:"match_id,notnull,unique:match_reviews_match_id_reviewer_id_reviewee_id_key"`
	ReviewerID int64     `bun:"reviewer_id,notnull,unique:match_reviews_match_id_reviewer_id_reviewee_id_key"`
	RevieweeID int64     `bun:"reviewee_id,notnull,unique:match_reviews_match_id_reviewer_id_reviewee_id_key"`
	Score      int16     `bun:"score,type:smallint,notnull"`
	Text       string    `bun:"text,type:varchar(500),notnull,default:''"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
}

type matchReviews20261207MySQL struct {
	bun.BaseModel `bun:"table:match_reviews"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:match_reviews_public_id_key"`
	MatchID    int64     `bun:"match_id,notnull,unique:match_reviews_match_id_reviewer_id_reviewee_id_key"`
	ReviewerID int64     `bun:"reviewer_id,notnull,unique:match_reviews_match_id_reviewer_id_reviewee_id_key"`
	RevieweeID int64     `bun:"reviewee_id,notnull,unique:match_reviews_match_id_reviewer_id_reviewee_id_key"`
	Score      int16     `bun:"score,type:smallint,notnull"`
	Text       string    `bun:"text,type:varchar(500) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,default:''"`
	CreatedAt  time.Time `bun:"created_at,type:datetime(6),notnull"`
}

var activityColumns20261207 = []struct{ name, def string }{
	{"activity_matches", "activity_matches INTEGER NOT NULL DEFAULT 0"},
	{"reviews_received", "reviews_received INTEGER NOT NULL DEFAULT 0"},
	{"review_sum", "review_sum INTEGER NOT NULL DEFAULT 0"},
	{"review_points", "review_points INTEGER NOT NULL DEFAULT 0"},
	{"activity_score", "activity_score INTEGER NOT NULL DEFAULT 0"},
}

// matchReviewsUp creates match_reviews, adds the activity columns and
// backfills them.
func matchReviewsUp(ctx context.Context, bdb *bun.DB) error {
	model := any((*matchReviews20261207)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		model = (*matchReviews20261207MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(model).
			ForeignKey("(match_id) REFERENCES matches (id)").
			ForeignKey("(reviewer_id) REFERENCES members (id)").
			ForeignKey("(reviewee_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table match_reviews: %w", err)
		}
		for _, c := range activityColumns20261207 {
			if _, err := tx.NewAddColumn().Table("members").ColumnExpr(c.def).Exec(ctx); err != nil {
				return fmt.Errorf("add members.%s: %w", c.name, err)
			}
		}
		// domain.Activity.Score as of today: 10 per match, 10 per manner
		// point above 50; there are no reviews yet.
		if _, err := tx.ExecContext(ctx, `UPDATE members SET
  activity_matches = (SELECT COUNT(*) FROM match_members AS mm WHERE mm.member_id = members.id)`); err != nil {
			return fmt.Errorf("backfill members.activity_matches: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE members SET
  activity_score = 10 * activity_matches + 10 * (manner_points - 50)`); err != nil {
			return fmt.Errorf("backfill members.activity_score: %w", err)
		}
		return nil
	})
}

// matchReviewsDown undoes matchReviewsUp.
func matchReviewsDown(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i := len(activityColumns20261207) - 1; i >= 0; i-- {
			c := activityColumns20261207[i]
			if _, err := tx.NewDropColumn().Table("members").Column(c.name).Exec(ctx); err != nil {
				return fmt.Errorf("drop members.%s: %w", c.name, err)
			}
		}
		if _, err := tx.NewDropTable().Table("match_reviews").IfExists().Exec(ctx); err != nil {
			return fmt.Errorf("drop table match_reviews: %w", err)
		}
		return nil
	})
}
