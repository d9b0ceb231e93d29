package domain

import (
	"time"
	"unicode/utf8"
)

// Limits of a customer's review of a helper.
const (
	TaskReviewTextMax = 1000
	TaskScoreMin      = 1
	TaskScoreMax      = 5
)

// TaskReview is a task's customer's review of one of its helpers, once
// the task is DONE: whether they recommend them and a score per required
// ability.
type TaskReview struct {
	ID        string
	TaskID    string
	HelperID  string
	Recommend bool
	Scores    map[int64]int // ability id → 1–5, for every ability the task requires
	Text      string
	CreatedAt time.Time
}

// Validate checks r against the abilities the task requires: a score of
// 1 to 5 for each of them and none for another, text of at most
// TaskReviewTextMax runes.
func (r *TaskReview) Validate(required []int64) error {
	if utf8.RuneCountInString(r.Text) > TaskReviewTextMax {
		return FieldErrorf(EINVALID, "text", "Field \"text\" must be at most %d characters.", TaskReviewTextMax)
	}
	need := map[int64]bool{}
	for _, id := range required {
		need[id] = true
		if _, ok := r.Scores[id]; !ok {
			return FieldErrorf(EINVALID, "scores", "Field \"scores\" needs a score for ability %d, which the task requires.", id)
		}
	}
	for id, score := range r.Scores {
		if !need[id] {
			return FieldErrorf(EINVALID, "scores", "Field \"scores\" scores ability %d, which the task does not require.", id)
		}
		if score < TaskScoreMin || score > TaskScoreMax {
			return FieldErrorf(EINVALID, "scores", "Field \"scores\": the score of ability %d must be %d to %d.", id, TaskScoreMin, TaskScoreMax)
		}
	}
	return nil
}

// AbilityScore is the average of the scores a helper got for one ability.
type AbilityScore struct {
	Ability
	Average float64
	Count   int
}

// HelperReviews sums up the reviews a helper got: how many, the share
// that recommend them, and the average per ability.
type HelperReviews struct {
	Count         int
	RecommendRate float64 // 0 with no review
	Abilities     []AbilityScore
}
