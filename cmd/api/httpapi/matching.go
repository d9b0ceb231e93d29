package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// countCacheTTL is how stale the public waiting count may be: it is read
// by every client polling a lobby screen.
const countCacheTTL = time.Second

// registerMatchingRoutes mounts random matching and the match history.
func (s *server) registerMatchingRoutes(r chi.Router) {
	r.Get("/v1/random-matches/count", s.handleRandomCount)
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/random-matches", s.handleRandomApply)
		r.Get("/v1/random-matches/mine", s.handleRandomMine)
		r.Delete("/v1/random-matches/mine", s.handleRandomCancel)
		r.Get("/v1/random-matches/{id}", s.handleRandomGet)
		r.Get("/v1/matches", s.handleMatchList)
		r.Get("/v1/matches/{id}", s.handleMatchGet)
	})
}

// applyRequest is the body of POST /v1/random-matches. A missing or empty
// list means "any"; the second list is ways_of_eating for MEAL and
// study_types for STUDY, and the other one must not be sent.
type applyRequest struct {
	Category     domain.Category `json:"category"`
	Places       []string        `json:"places"`
	WaysOfEating *[]string       `json:"ways_of_eating"`
	StudyTypes   *[]string       `json:"study_types"`

	conditions domain.Conditions
}

func (req *applyRequest) Validate() error {
	if !req.Category.RandomCategory() {
		return domain.FieldErrorf(domain.EINVALID, "category", "Field \"category\" must be MEAL or STUDY.")
	}
	places, err := domain.Places.Parse(req.Places)
	if err != nil {
		return err
	}
	second, wrong := req.WaysOfEating, req.StudyTypes
	wrongField := domain.StudyTypes.Field
	if req.Category == domain.CategoryStudy {
		second, wrong = req.StudyTypes, req.WaysOfEating
		wrongField = domain.WaysOfEating.Field
	}
	if wrong != nil {
		return domain.FieldErrorf(domain.EINVALID, wrongField, "Field %q does not apply to %s.", wrongField, req.Category)
	}
	var values []string
	if second != nil {
		values = *second
	}
	mask, err := req.Category.SecondDimension().Parse(values)
	if err != nil {
		return err
	}
	req.conditions = domain.Conditions{Places: places, Second: mask}
	return nil
}

// conditionsResponse shows a condition set by name.
type conditionsResponse struct {
	Places       []string `json:"places"`
	WaysOfEating []string `json:"ways_of_eating,omitempty"`
	StudyTypes   []string `json:"study_types,omitempty"`
}

func newConditionsResponse(c domain.Category, cond domain.Conditions) conditionsResponse {
	r := conditionsResponse{Places: domain.Places.Names(cond.Places)}
	second := c.SecondDimension().Names(cond.Second)
	if c == domain.CategoryStudy {
		r.StudyTypes = second
	} else {
		r.WaysOfEating = second
	}
	return r
}

// applicationResponse is a random-match application on the wire.
type applicationResponse struct {
	ID         string                   `json:"id"`
	Category   domain.Category          `json:"category"`
	Status     domain.ApplicationStatus `json:"status"`
	Conditions conditionsResponse       `json:"conditions"`
	MatchID    *string                  `json:"match_id"`
	CreatedAt  time.Time                `json:"created_at"`
	ExpiresAt  time.Time                `json:"expires_at"`
}

func newApplicationResponse(a *domain.Application) applicationResponse {
	return applicationResponse{
		ID: a.ID, Category: a.Category, Status: a.Status,
		Conditions: newConditionsResponse(a.Category, a.Conditions),
		MatchID:    nullable(a.MatchID),
		CreatedAt:  a.CreatedAt.UTC(), ExpiresAt: a.ExpiresAt.UTC(),
	}
}

// handleRandomApply records an application and its trigger in one
// transaction and answers 202: a worker does the matching.
func (s *server) handleRandomApply(w http.ResponseWriter, r *http.Request) {
	var req applyRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	a := domain.Application{
		MemberID: mustClaims(r).MemberID, Category: req.Category, Conditions: req.conditions,
		CreatedAt: now, ExpiresAt: now.Add(s.matchWait),
	}
	err := s.relay.RunInTx(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		if err := (db.Applications{}).Create(ctx, tx, &a); err != nil {
			return err
		}
		task, err := jobs.NewMatchTriggerTask(a.Category)
		if err != nil {
			return err
		}
		return jobs.Enqueue(ctx, tx, task)
	})
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		err = domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/random-matches/"+a.ID)
	s.writeJSON(w, r, http.StatusAccepted, newApplicationResponse(&a))
}

// queryCategory reads ?category= for random matching.
func queryCategory(r *http.Request) (domain.Category, error) {
	v := r.URL.Query().Get("category")
	if v == "" {
		return 0, domain.FieldErrorf(domain.EINVALID, "category", "Query parameter \"category\" is required (MEAL or STUDY).")
	}
	c, err := domain.ParseCategory(v)
	if err != nil || !c.RandomCategory() {
		return 0, domain.FieldErrorf(domain.EINVALID, "category", "Query parameter \"category\" must be MEAL or STUDY.")
	}
	return c, nil
}

type mineResponse struct {
	Waiting     bool                 `json:"waiting"`
	Application *applicationResponse `json:"application"`
}

// handleRandomMine says whether the member is waiting in a category, and
// with which conditions.
func (s *server) handleRandomMine(w http.ResponseWriter, r *http.Request) {
	c, err := queryCategory(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := (db.Applications{}).FindWaiting(r.Context(), s.db, mustClaims(r).MemberID, c, s.now().UTC())
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		s.writeJSON(w, r, http.StatusOK, mineResponse{})
	case err != nil:
		s.writeError(w, r, err)
	default:
		resp := newApplicationResponse(a)
		s.writeJSON(w, r, http.StatusOK, mineResponse{Waiting: true, Application: &resp})
	}
}

// applicationStatusResponse is an application as its status resource shows
// it: with the match once it is MATCHED.
type applicationStatusResponse struct {
	applicationResponse
	Match *matchResponse `json:"match"`
}

// handleRandomGet is the status resource POST /v1/random-matches points
// to: what became of the application, WAITING, MATCHED with its match,
// CANCELLED or EXPIRED. An application waiting past its expiry is EXPIRED
// here already, before the sweep writes it so. Anyone else's application
// does not exist.
func (s *server) handleRandomGet(w http.ResponseWriter, r *http.Request) {
	me := mustClaims(r).MemberID
	ctx := r.Context()
	a, err := (db.Applications{}).FindByID(ctx, s.db, chi.URLParam(r, "id"))
	if err == nil && a.MemberID != me {
		err = domain.Errorf(domain.ENOTFOUND, "Application not found.")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if a.Status == domain.ApplicationWaiting && !s.now().Before(a.ExpiresAt) {
		a.Status = domain.ApplicationExpired
	}
	resp := applicationStatusResponse{applicationResponse: newApplicationResponse(a)}
	if a.Status == domain.ApplicationMatched && a.MatchID != "" {
		m, err := (db.Matches{}).FindByID(ctx, s.db, a.MatchID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		mr := newMatchResponse(m, me)
		resp.Match = &mr
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// handleRandomCancel withdraws the member's waiting application.
func (s *server) handleRandomCancel(w http.ResponseWriter, r *http.Request) {
	c, err := queryCategory(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := (db.Applications{}).Cancel(r.Context(), s.db, mustClaims(r).MemberID, c, s.now().UTC()); err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			err = domain.Errorf(domain.ENOTFOUND, "You are not waiting in %s.", c)
		}
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type countResponse struct {
	Category domain.Category `json:"category"`
	Waiting  int             `json:"waiting"`
}

// handleRandomCount answers how many members wait in a category. It is
// public and polled, so the number is cached in Redis for a second.
func (s *server) handleRandomCount(w http.ResponseWriter, r *http.Request) {
	c, err := queryCategory(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	key := "moim:random:count:" + c.String()
	n, err := s.redis.Get(ctx, key).Int()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			s.logger.WarnContext(ctx, "waiting count cache unavailable", "err", err)
		}
		if n, err = (db.Applications{}).CountWaiting(ctx, s.db, c, s.now().UTC()); err != nil {
			s.writeError(w, r, err)
			return
		}
		_ = s.redis.Set(ctx, key, n, countCacheTTL).Err()
	}
	s.writeJSON(w, r, http.StatusOK, countResponse{Category: c, Waiting: n})
}

// matchResponse is a match on the wire.
type matchResponse struct {
	ID         string                `json:"id"`
	Category   domain.Category       `json:"category"`
	Method     domain.MatchMethod    `json:"method"`
	Conditions *conditionsResponse   `json:"conditions"`
	RoomID     *string               `json:"room_id"` // null for random matches
	Members    []matchMemberResponse `json:"members"`
	CreatedAt  time.Time             `json:"created_at"`
}

type matchMemberResponse struct {
	ID       string `json:"id"`
	Nickname string `json:"nickname"`
	Me       bool   `json:"me"`
}

func newMatchResponse(m *domain.Match, me string) matchResponse {
	resp := matchResponse{ID: m.ID, Category: m.Category, Method: m.Method, CreatedAt: m.CreatedAt.UTC(),
		RoomID: nullable(m.RoomID), Members: make([]matchMemberResponse, 0, len(m.Members))}
	if m.Method == domain.MatchRandom {
		c := newConditionsResponse(m.Category, m.Conditions)
		resp.Conditions = &c
	}
	for _, mm := range m.Members {
		resp.Members = append(resp.Members, matchMemberResponse{ID: mm.MemberID, Nickname: mm.Nickname, Me: mm.MemberID == me})
	}
	return resp
}

type matchList struct {
	Matches    []matchResponse `json:"matches"`
	NextCursor *string         `json:"next_cursor"`
}

// handleMatchList answers the member's matches, newest first; filters
// ?category= and ?method=, pages with ?limit= and ?cursor=.
func (s *server) handleMatchList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := queryLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := db.MatchFilter{Cursor: q.Get("cursor"), Limit: limit}
	if v := q.Get("category"); v != "" {
		c, err := domain.ParseCategory(v)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f.Category = c
	}
	switch v := q.Get("method"); v {
	case "":
	case "RANDOM":
		f.Method = domain.MatchRandom
	case "ROOM":
		f.Method = domain.MatchRoom
	default:
		s.writeError(w, r, domain.FieldErrorf(domain.EINVALID, "method", "Query parameter \"method\" must be RANDOM or ROOM."))
		return
	}
	me := mustClaims(r).MemberID
	page, err := (db.Matches{}).ListForMember(r.Context(), s.db, me, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := matchList{Matches: make([]matchResponse, 0, len(page.Matches))}
	for i := range page.Matches {
		resp.Matches = append(resp.Matches, newMatchResponse(&page.Matches[i], me))
	}
	if page.Next != "" {
		resp.NextCursor = &page.Next
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// handleMatchGet answers one match to its members; to anyone else it does
// not exist.
func (s *server) handleMatchGet(w http.ResponseWriter, r *http.Request) {
	me := mustClaims(r).MemberID
	m, err := (db.Matches{}).FindByID(r.Context(), s.db, chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, mm := range m.Members {
		if mm.MemberID == me {
			s.writeJSON(w, r, http.StatusOK, newMatchResponse(m, me))
			return
		}
	}
	s.writeError(w, r, domain.Errorf(domain.ENOTFOUND, "Match not found."))
}
