package httpapi

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/domain"
)

// registerSkillRoutes mounts the skills catalogue and members' skills.
func (s *server) registerSkillRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Get("/v1/skills", s.handleSkillCatalogue)
		r.Get("/v1/me/skills", s.handleMySkillsGet)
		r.Put("/v1/me/skills", s.handleMySkillsPut)
	})
	r.With(s.requireAdmin).Post("/v1/admin/skills", s.handleAdminSkillAdd)
}

// Catalogue entries go on the wire by their row id: the catalogue is
// public and small, so a number hides nothing.

type skillCategoryResponse struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	BigCategoryID *int64 `json:"big_category_id"` // null for a big category
}

type abilityResponse struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// bigCategoryResponse is a big category with its small ones.
type bigCategoryResponse struct {
	ID    int64                   `json:"id"`
	Name  string                  `json:"name"`
	Small []skillCategoryResponse `json:"small"`
}

type skillCatalogueResponse struct {
	Categories []bigCategoryResponse `json:"categories"`
	Abilities  []abilityResponse     `json:"abilities"`
}

func newSkillCategoryResponse(c domain.SkillCategory) skillCategoryResponse {
	resp := skillCategoryResponse{ID: c.ID, Name: c.Name}
	if !c.Big() {
		big := c.BigID
		resp.BigCategoryID = &big
	}
	return resp
}

func newAbilityResponses(as []domain.Ability) []abilityResponse {
	out := make([]abilityResponse, len(as))
	for i, a := range as {
		out[i] = abilityResponse{ID: a.ID, Name: a.Name}
	}
	return out
}

func (s *server) handleSkillCatalogue(w http.ResponseWriter, r *http.Request) {
	cat, err := (taskdb.Skills{}).Catalogue(r.Context(), s.db)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := skillCatalogueResponse{Categories: []bigCategoryResponse{}, Abilities: newAbilityResponses(cat.Abilities)}
	at := map[int64]int{}
	for _, c := range cat.Categories {
		if c.Big() {
			at[c.ID] = len(resp.Categories)
			resp.Categories = append(resp.Categories, bigCategoryResponse{ID: c.ID, Name: c.Name, Small: []skillCategoryResponse{}})
		}
	}
	for _, c := range cat.Categories {
		if i, ok := at[c.BigID]; ok && !c.Big() {
			resp.Categories[i].Small = append(resp.Categories[i].Small, newSkillCategoryResponse(c))
		}
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// skillAddRequest is the body of POST /v1/admin/skills: kind "category"
// adds a big category, or a small one inside big_category_id when given;
// kind "ability" adds an ability.
type skillAddRequest struct {
	Kind          string `json:"kind"`
	Name          string `json:"name"`
	BigCategoryID *int64 `json:"big_category_id"`
}

func (req *skillAddRequest) Validate() error {
	switch req.Kind {
	case "category":
		if req.BigCategoryID != nil && *req.BigCategoryID <= 0 {
			return domain.FieldErrorf(domain.EINVALID, "big_category_id", "Field \"big_category_id\" must be a category id.")
		}
	case "ability":
		if req.BigCategoryID != nil {
			return domain.FieldErrorf(domain.EINVALID, "big_category_id", "An ability has no category.")
		}
	default:
		return domain.FieldErrorf(domain.EINVALID, "kind", "Field \"kind\" must be category or ability.")
	}
	return domain.ValidateSkillName(req.Name)
}

// handleAdminSkillAdd adds a catalogue entry and answers it with 201.
func (s *server) handleAdminSkillAdd(w http.ResponseWriter, r *http.Request) {
	var req skillAddRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	var resp any
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		if req.Kind == "ability" {
			a, err := (taskdb.Skills{}).AddAbility(ctx, tx, req.Name, now)
			if err == nil {
				resp = abilityResponse{ID: a.ID, Name: a.Name}
			}
			return err
		}
		var big int64
		if req.BigCategoryID != nil {
			big = *req.BigCategoryID
		}
		c, err := (taskdb.Skills{}).AddCategory(ctx, tx, big, req.Name, now)
		if err == nil {
			resp = newSkillCategoryResponse(*c)
		}
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusCreated, resp)
}

// memberSkillsResponse is a member's skills, on their own page and on
// their public profile.
type memberSkillsResponse struct {
	PossibleWork []skillCategoryResponse `json:"possible_work"`
	Abilities    []abilityResponse       `json:"abilities"`
}

// memberSkills reads member id's skills for the wire.
func memberSkills(ctx context.Context, idb bun.IDB, id string) (memberSkillsResponse, error) {
	ms, err := (taskdb.Skills{}).MemberSkills(ctx, idb, id)
	if err != nil {
		return memberSkillsResponse{}, err
	}
	resp := memberSkillsResponse{PossibleWork: make([]skillCategoryResponse, len(ms.PossibleWork)),
		Abilities: newAbilityResponses(ms.Abilities)}
	for i, c := range ms.PossibleWork {
		resp.PossibleWork[i] = newSkillCategoryResponse(c)
	}
	return resp, nil
}

func (s *server) handleMySkillsGet(w http.ResponseWriter, r *http.Request) {
	resp, err := memberSkills(r.Context(), s.db, mustClaims(r).MemberID)
	if err != nil {
		s.writeAuthError(w, r, revokedIfGone(err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// mySkillsRequest is the body of PUT /v1/me/skills: each list given
// replaces the member's (small category ids; ability ids); a list left out
// stays.
type mySkillsRequest struct {
	PossibleWork *[]int64 `json:"possible_work"`
	Abilities    *[]int64 `json:"abilities"`
}

func (req *mySkillsRequest) Validate() error {
	if req.PossibleWork == nil && req.Abilities == nil {
		return domain.Errorf(domain.EINVALID, "Nothing to change: give possible_work, abilities or both.")
	}
	if req.PossibleWork != nil {
		if err := domain.CheckIDList("possible_work", *req.PossibleWork, domain.MemberSkillsMax); err != nil {
			return err
		}
	}
	if req.Abilities != nil {
		return domain.CheckIDList("abilities", *req.Abilities, domain.MemberSkillsMax)
	}
	return nil
}

// handleMySkillsPut replaces the member's skills and answers them.
func (s *server) handleMySkillsPut(w http.ResponseWriter, r *http.Request) {
	var req mySkillsRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	me := mustClaims(r).MemberID
	// An empty list clears; a nil one stays, so [] is made non-nil.
	list := func(p *[]int64) []int64 {
		if p == nil {
			return nil
		}
		return append([]int64{}, (*p)...)
	}
	var resp memberSkillsResponse
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		if err := (taskdb.Skills{}).SetMemberSkills(ctx, tx, me, list(req.PossibleWork), list(req.Abilities)); err != nil {
			return err
		}
		var err error
		resp, err = memberSkills(ctx, tx, me)
		return err
	})
	if err != nil {
		s.writeAuthError(w, r, revokedIfGone(err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// revokedIfGone answers a member deleted while their token lived as a
// revoked token, as currentMember does.
func revokedIfGone(err error) error {
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	return err
}
