package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/domain"
)

// helperReviewRequest is the body of a review: scores maps an ability id
// (a JSON object's keys are strings) to 1–5.
type helperReviewRequest struct {
	Recommend *bool          `json:"recommend"`
	Scores    map[string]int `json:"scores"`
	Text      string         `json:"text"`
}

// review turns req into a review, refusing a missing recommend and a key
// of scores that is no id.
func (req *helperReviewRequest) review() (*domain.TaskReview, error) {
	if req.Recommend == nil {
		return nil, domain.FieldErrorf(domain.EINVALID, "recommend", "Field \"recommend\" is required (true or false).")
	}
	r := &domain.TaskReview{Recommend: *req.Recommend, Text: req.Text, Scores: map[int64]int{}}
	for k, v := range req.Scores {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil || id <= 0 {
			return nil, domain.FieldErrorf(domain.EINVALID, "scores", "Field \"scores\" has a key %q that is no ability id.", k)
		}
		r.Scores[id] = v
	}
	return r, nil
}

// helperReviewResponse is a stored review on the wire.
type helperReviewResponse struct {
	ID        string         `json:"id"`
	TaskID    string         `json:"task_id"`
	HelperID  string         `json:"helper_id"`
	Recommend bool           `json:"recommend"`
	Scores    map[string]int `json:"scores"`
	Text      string         `json:"text"`
	CreatedAt time.Time      `json:"created_at"`
}

func newHelperReviewResponse(r *domain.TaskReview) helperReviewResponse {
	resp := helperReviewResponse{ID: r.ID, TaskID: r.TaskID, HelperID: r.HelperID, Recommend: r.Recommend,
		Scores: map[string]int{}, Text: r.Text, CreatedAt: r.CreatedAt.UTC()}
	for id, v := range r.Scores {
		resp.Scores[strconv.FormatInt(id, 10)] = v
	}
	return resp
}

// handleHelperReview stores the customer's review of one helper of their
// DONE task, once per helper.
func (s *server) handleHelperReview(w http.ResponseWriter, r *http.Request) {
	var req helperReviewRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	review, err := req.review()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC()
	err = db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		t, err := customerTask(ctx, tx, chi.URLParam(r, "id"), mustClaims(r).MemberID)
		if err != nil {
			return err
		}
		helpers, err := (taskdb.Tasks{}).Helpers(ctx, tx, t)
		if err != nil {
			return err
		}
		h := domain.FindHelper(helpers, chi.URLParam(r, "member_id"))
		if h == nil {
			return domain.Errorf(domain.ENOTFOUND, "That member is not a helper of this task.")
		}
		if t.Status != domain.TaskDone {
			return domain.Errorf(domain.ETASKNOTDONE, "The task is %s; its helpers are reviewed once it is DONE.", t.Status)
		}
		if err := review.Validate(t.AbilityIDs); err != nil {
			return err
		}
		return (taskdb.Tasks{}).AddReview(ctx, tx, t, h, review, now)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusCreated, newHelperReviewResponse(review))
}

// helperReviewsResponse sums up a helper's reviews on their profile.
type helperReviewsResponse struct {
	Count         int                    `json:"count"`
	RecommendRate float64                `json:"recommend_rate"`
	Abilities     []abilityScoreResponse `json:"abilities"`
}

type abilityScoreResponse struct {
	ID      int64   `json:"id"`
	Name    string  `json:"name"`
	Average float64 `json:"average"`
	Count   int     `json:"count"`
}

// helperReviews reads the summary of member id's reviews as a helper.
func helperReviews(ctx context.Context, idb bun.IDB, id string) (helperReviewsResponse, error) {
	sum, err := (taskdb.Tasks{}).HelperReviews(ctx, idb, id)
	if err != nil {
		return helperReviewsResponse{}, err
	}
	resp := helperReviewsResponse{Count: sum.Count, RecommendRate: sum.RecommendRate,
		Abilities: make([]abilityScoreResponse, len(sum.Abilities))}
	for i, a := range sum.Abilities {
		resp.Abilities[i] = abilityScoreResponse{ID: a.ID, Name: a.Name, Average: a.Average, Count: a.Count}
	}
	return resp, nil
}
