package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// registerMatchReviewRoutes mounts the reviews members of a match give each
// other (authenticated).
func (s *server) registerMatchReviewRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/matches/{id}/reviews", s.handleMatchReviewCreate)
		r.Get("/v1/matches/{id}/reviews", s.handleMatchReviewList)
	})
}

type matchReviewRequest struct {
	MemberID string  `json:"member_id"`
	Score    *int    `json:"score"`
	Text     *string `json:"text"`
}

// matchReviewResponse is a review on the wire; Member is the other side:
// the reviewee of a review given, the reviewer of one received.
type matchReviewResponse struct {
	ID        string              `json:"id"`
	MatchID   string              `json:"match_id"`
	Member    matchMemberResponse `json:"member"`
	Score     int                 `json:"score"`
	Text      string              `json:"text"`
	CreatedAt time.Time           `json:"created_at"`
}

func newGivenReviewResponse(rv *domain.MatchReview) matchReviewResponse {
	return matchReviewResponse{ID: rv.ID, MatchID: rv.MatchID, Score: rv.Score, Text: rv.Text, CreatedAt: rv.CreatedAt.UTC(),
		Member: matchMemberResponse{ID: rv.RevieweeID, Nickname: rv.RevieweeNickname}}
}

func newReceivedReviewResponse(rv *domain.MatchReview) matchReviewResponse {
	return matchReviewResponse{ID: rv.ID, MatchID: rv.MatchID, Score: rv.Score, Text: rv.Text, CreatedAt: rv.CreatedAt.UTC(),
		Member: matchMemberResponse{ID: rv.ReviewerID, Nickname: rv.ReviewerNickname}}
}

// handleMatchReviewCreate lets a member of a match review another member
// of it once, from domain.ReviewOpensAfter to domain.ReviewClosesAfter
// after the match.
func (s *server) handleMatchReviewCreate(w http.ResponseWriter, r *http.Request) {
	var req matchReviewRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.MemberID == "" {
		s.writeError(w, r, domain.FieldErrorf(domain.EINVALID, "member_id", "Field \"member_id\" is required."))
		return
	}
	if req.Score == nil {
		s.writeError(w, r, domain.FieldErrorf(domain.EINVALID, "score", "Field \"score\" must be %d to %d.", domain.ReviewScoreMin, domain.ReviewScoreMax))
		return
	}
	rv := &domain.MatchReview{MatchID: chi.URLParam(r, "id"), ReviewerID: mustClaims(r).MemberID,
		RevieweeID: req.MemberID, Score: *req.Score}
	if req.Text != nil {
		rv.Text = *req.Text
	}
	if err := rv.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC()
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		return (db.MatchReviews{}).Create(ctx, tx, rv, now)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusCreated, newGivenReviewResponse(rv))
}

// matchReviewsResponse is what a member of a match sees of its reviews:
// those they gave and those they received, texts included. Reviews
// between two other members are theirs alone, and profiles show only
// totals, so a text is read by its writer and the member it is about.
type matchReviewsResponse struct {
	MatchID string `json:"match_id"`
	// OpensAt and ClosesAt bound the time reviews may be given.
	OpensAt  time.Time             `json:"opens_at"`
	ClosesAt time.Time             `json:"closes_at"`
	Given    []matchReviewResponse `json:"given"`
	Received []matchReviewResponse `json:"received"`
	// ToReview are the other members the caller has not reviewed yet.
	ToReview []matchMemberResponse `json:"to_review"`
}

// handleMatchReviewList answers the caller's reviews of a match; to
// anyone outside it the match does not exist.
func (s *server) handleMatchReviewList(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	me := mustClaims(r).MemberID
	m, err := (db.MatchReviews{}).FindMatchForMember(ctx, s.db, chi.URLParam(r, "id"), me)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	all, err := (db.MatchReviews{}).ListForMatch(ctx, s.db, m)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := matchReviewsResponse{MatchID: m.ID,
		OpensAt: m.CreatedAt.Add(domain.ReviewOpensAfter).UTC(), ClosesAt: m.CreatedAt.Add(domain.ReviewClosesAfter).UTC(),
		Given: []matchReviewResponse{}, Received: []matchReviewResponse{}, ToReview: []matchMemberResponse{}}
	reviewed := make(map[string]bool)
	for i := range all {
		switch rv := &all[i]; me {
		case rv.ReviewerID:
			resp.Given = append(resp.Given, newGivenReviewResponse(rv))
			reviewed[rv.RevieweeID] = true
		case rv.RevieweeID:
			resp.Received = append(resp.Received, newReceivedReviewResponse(rv))
		}
	}
	for _, mm := range m.Members {
		if mm.MemberID != me && !reviewed[mm.MemberID] {
			resp.ToReview = append(resp.ToReview, matchMemberResponse{ID: mm.MemberID, Nickname: mm.Nickname})
		}
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}
