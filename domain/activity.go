package domain

import (
	"time"
	"unicode/utf8"
)

// Match reviews and the activity score follow 42Partner: from 30 minutes
// after a match each member may review each other member once, with one of
// five grades (its MATCH_REVIEW_1..5), and the grades, the matches attended
// and the manner points from group runs add up to the member's activity
// score, the reputation helper requests rank candidates by.
const (
	ReviewScoreMin = 1
	ReviewScoreMax = 5
	// ReviewTextMax bounds a review's optional text, in characters.
	ReviewTextMax = 500
	// ReviewOpensAfter is 42Partner's REVIEW_AVAILABLE_MINUTE.
	ReviewOpensAfter = 30 * time.Minute
	// ReviewClosesAfter: a review is about a match still remembered.
	ReviewClosesAfter = 7 * 24 * time.Hour

	// ActivityPerMatch is 42Partner's MATCH_PARTICIPANT.
	ActivityPerMatch = 10
	// ActivityPerMannerPoint weighs a manner point like a match attended:
	// one attended group run gives one manner point, one attended match
	// gives 10 activity points.
	ActivityPerMannerPoint = 10
	// MannerPointsStart is what a new member has (ErunJrun); only the
	// change from it counts, so a new member's score is 0.
	MannerPointsStart = 50
)

// reviewPoints are 42Partner's MATCH_REVIEW_1..5 activity points.
var reviewPoints = [ReviewScoreMax]int{-10, 0, 10, 20, 42}

// ReviewPoints returns the activity points a received review of score (1–5)
// is worth.
func ReviewPoints(score int) int { return reviewPoints[score-1] }

// Activity is what a member's activity score is made of.
type Activity struct {
	Matches         int // matches attended, random or from a room
	ReviewsReceived int
	ReviewSum       int // the sum of the received reviews' scores
	ReviewPoints    int // the sum of ReviewPoints of the received reviews
	MannerPoints    int
}

// Score is the activity score: ActivityPerMatch per match, the received
// reviews' ReviewPoints, and ActivityPerMannerPoint per manner point above
// (or below) MannerPointsStart. It is linear in what it is made of, so the
// store keeps it up to date by adding each change's share in the same
// statement as the change.
func (a Activity) Score() int {
	return ActivityPerMatch*a.Matches + a.ReviewPoints + ActivityPerMannerPoint*(a.MannerPoints-MannerPointsStart)
}

// ReviewAverage is the received reviews' mean score, 0 with none.
func (a Activity) ReviewAverage() float64 {
	if a.ReviewsReceived == 0 {
		return 0
	}
	return float64(a.ReviewSum) / float64(a.ReviewsReceived)
}

// MatchReview is one member's review of another member of a match.
type MatchReview struct {
	ID               string
	MatchID          string
	ReviewerID       string
	ReviewerNickname string
	RevieweeID       string
	RevieweeNickname string
	Score            int
	Text             string
	CreatedAt        time.Time
}

// Validate checks the score and the text.
func (r *MatchReview) Validate() error {
	if r.Score < ReviewScoreMin || r.Score > ReviewScoreMax {
		return FieldErrorf(EINVALID, "score", "Field \"score\" must be %d to %d.", ReviewScoreMin, ReviewScoreMax)
	}
	if !utf8.ValidString(r.Text) || utf8.RuneCountInString(r.Text) > ReviewTextMax {
		return FieldErrorf(EINVALID, "text", "Field \"text\" must be at most %d characters.", ReviewTextMax)
	}
	return nil
}

// CheckReviewWindow tells whether the members of a match created at created
// may review each other at now: ENOTOPENYET before ReviewOpensAfter,
// EREVIEWCLOSED from ReviewClosesAfter on.
func CheckReviewWindow(created, now time.Time) error {
	if opens := created.Add(ReviewOpensAfter); now.Before(opens) {
		return Errorf(ENOTOPENYET, "Reviews of this match open at %s.", opens.UTC().Format(time.RFC3339))
	}
	if closes := created.Add(ReviewClosesAfter); !now.Before(closes) {
		return Errorf(EREVIEWCLOSED, "Reviews of this match closed at %s.", closes.UTC().Format(time.RFC3339))
	}
	return nil
}
