package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/domain"
)

// matchReviewRow is a row of match_reviews, with both members' public ids
// and nicknames joined in.
type matchReviewRow struct {
	bun.BaseModel `bun:"table:match_reviews,alias:mr"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,notnull"`
	MatchID    int64     `bun:"match_id,notnull"`
	ReviewerID int64     `bun:"reviewer_id,notnull"`
	RevieweeID int64     `bun:"reviewee_id,notnull"`
	Score      int16     `bun:"score,notnull"`
	Text       string    `bun:"text,notnull"`
	CreatedAt  time.Time `bun:"created_at,notnull"`

	ReviewerPublicID string `bun:"reviewer_public_id,scanonly"`
	ReviewerNickname string `bun:"reviewer_nickname,scanonly"`
	RevieweePublicID string `bun:"reviewee_public_id,scanonly"`
	RevieweeNickname string `bun:"reviewee_nickname,scanonly"`
}

func (r *matchReviewRow) toDomain(matchID string) domain.MatchReview {
	return domain.MatchReview{
		ID: r.PublicID, MatchID: matchID,
		ReviewerID: r.ReviewerPublicID, ReviewerNickname: r.ReviewerNickname,
		RevieweeID: r.RevieweePublicID, RevieweeNickname: r.RevieweeNickname,
		Score: int(r.Score), Text: r.Text, CreatedAt: r.CreatedAt.UTC(),
	}
}

// MatchReviews is the store of the reviews members of a match give each
// other, and of the activity score they feed.
type MatchReviews struct{}

// isMatchMember tells whether member (a public id) is one of m's members.
func isMatchMember(m *domain.Match, member string) bool {
	for _, mm := range m.Members {
		if mm.MemberID == member {
			return true
		}
	}
	return false
}

// FindMatchForMember returns the match with public id id if member (a
// public id) is one of its members. Errors: ENOTFOUND otherwise, so a
// match is not known to be there by anyone outside it.
func (MatchReviews) FindMatchForMember(ctx context.Context, idb bun.IDB, id, member string) (*domain.Match, error) {
	m, err := (Matches{}).FindByID(ctx, idb, id)
	if err != nil {
		return nil, err
	}
	if !isMatchMember(m, member) {
		return nil, fmt.Errorf("match %s for %s: %w", id, member, errMatchNotFound())
	}
	return m, nil
}

// Create stores rv (MatchID, ReviewerID, RevieweeID, Score, Text) at now
// and adds it to the reviewee's activity, in idb (a transaction); it sets
// rv.ID, the nicknames and rv.CreatedAt. Errors: ENOTFOUND when the match
// is unknown or the reviewer is not one of its members; EINVALID (field
// "member_id") when the reviewee is the reviewer or not a member of it;
// EINVALID from rv.Validate; ENOTOPENYET or EREVIEWCLOSED outside the
// review window; EALREADYREVIEWED for a second review of the same member.
func (MatchReviews) Create(ctx context.Context, idb bun.IDB, rv *domain.MatchReview, now time.Time) error {
	if err := rv.Validate(); err != nil {
		return err
	}
	m, err := (MatchReviews{}).FindMatchForMember(ctx, idb, rv.MatchID, rv.ReviewerID)
	if err != nil {
		return err
	}
	if rv.RevieweeID == rv.ReviewerID {
		return domain.FieldErrorf(domain.EINVALID, "member_id", "You cannot review yourself.")
	}
	if !isMatchMember(m, rv.RevieweeID) {
		return domain.FieldErrorf(domain.EINVALID, "member_id", "Member %s is not a member of this match.", rv.RevieweeID)
	}
	if err := domain.CheckReviewWindow(m.CreatedAt, now); err != nil {
		return err
	}
	var keys []struct {
		ID       int64  `bun:"id"`
		PublicID string `bun:"public_id"`
		Nickname string `bun:"nickname"`
	}
	if err := idb.NewSelect().Table("members").Column("id", "public_id", "nickname").
		Where("public_id IN (?)", bun.In([]string{rv.ReviewerID, rv.RevieweeID})).
		Scan(ctx, &keys); err != nil {
		return fmt.Errorf("review in match %s: members: %w", m.ID, translate(err))
	}
	row := matchReviewRow{PublicID: NewPublicID(), Score: int16(rv.Score), Text: rv.Text, CreatedAt: dbTime(now)}
	for _, k := range keys {
		if k.PublicID == rv.ReviewerID {
			row.ReviewerID, rv.ReviewerNickname = k.ID, k.Nickname
		} else {
			row.RevieweeID, rv.RevieweeNickname = k.ID, k.Nickname
		}
	}
	if err := idb.NewSelect().Table("matches").Column("id").Where("public_id = ?", m.ID).Scan(ctx, &row.MatchID); err != nil {
		return fmt.Errorf("review in match %s: %w", m.ID, translate(err))
	}
	// The unique key decides between two reviews at once; the conflict is
	// ignored rather than raised so PostgreSQL's transaction stays usable.
	q := idb.NewInsert().Model(&row)
	if idb.Dialect().Name() == dialect.MySQL {
		q = q.Ignore()
	} else {
		q = q.On("CONFLICT (match_id, reviewer_id, reviewee_id) DO NOTHING")
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return fmt.Errorf("review in match %s: %w", m.ID, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return &domain.Error{Code: domain.EALREADYREVIEWED, Message: "You have already reviewed this member for this match.", Err: err}
	}
	if _, err := idb.NewUpdate().Table("members").
		Set("reviews_received = reviews_received + 1").
		Set("review_sum = review_sum + ?", rv.Score).
		Set("review_points = review_points + ?", domain.ReviewPoints(rv.Score)).
		Set("activity_score = activity_score + ?", domain.ReviewPoints(rv.Score)).
		Where("id = ?", row.RevieweeID).
		Exec(ctx); err != nil {
		return fmt.Errorf("review in match %s: activity: %w", m.ID, translate(err))
	}
	rv.ID, rv.CreatedAt = row.PublicID, row.CreatedAt.UTC()
	return nil
}

// ListForMatch returns every review of match m, oldest first; the caller
// decides who sees which.
func (MatchReviews) ListForMatch(ctx context.Context, idb bun.IDB, m *domain.Match) ([]domain.MatchReview, error) {
	var rows []matchReviewRow
	err := idb.NewSelect().Model(&rows).
		ColumnExpr("mr.*").
		ColumnExpr("a.public_id AS reviewer_public_id, a.nickname AS reviewer_nickname").
		ColumnExpr("b.public_id AS reviewee_public_id, b.nickname AS reviewee_nickname").
		Join("JOIN matches AS mt ON mt.id = mr.match_id").
		Join("JOIN members AS a ON a.id = mr.reviewer_id").
		Join("JOIN members AS b ON b.id = mr.reviewee_id").
		Where("mt.public_id = ?", m.ID).
		OrderExpr("mr.id ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("reviews of match %s: %w", m.ID, translate(err))
	}
	out := make([]domain.MatchReview, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain(m.ID)
	}
	return out, nil
}

// activityRow is the activity columns of a member.
type activityRow struct {
	Matches         int `bun:"activity_matches"`
	ReviewsReceived int `bun:"reviews_received"`
	ReviewSum       int `bun:"review_sum"`
	ReviewPoints    int `bun:"review_points"`
	MannerPoints    int `bun:"manner_points"`
	Score           int `bun:"activity_score"`
}

// Activity returns the live member's activity and its stored score.
// Errors: ENOTFOUND.
func (Members) Activity(ctx context.Context, idb bun.IDB, id string) (domain.Activity, int, error) {
	var rows []activityRow
	err := idb.NewSelect().Table("members").
		Column("activity_matches", "reviews_received", "review_sum", "review_points", "manner_points", "activity_score").
		Where("public_id = ?", id).Where("deleted_at IS NULL").Scan(ctx, &rows)
	if err != nil {
		return domain.Activity{}, 0, fmt.Errorf("activity of %s: %w", id, translate(err))
	}
	if len(rows) == 0 {
		return domain.Activity{}, 0, fmt.Errorf("activity of %s: %w", id, errMemberNotFound())
	}
	r := rows[0]
	return domain.Activity{Matches: r.Matches, ReviewsReceived: r.ReviewsReceived, ReviewSum: r.ReviewSum,
		ReviewPoints: r.ReviewPoints, MannerPoints: r.MannerPoints}, r.Score, nil
}
