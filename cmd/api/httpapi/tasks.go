package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// registerTaskRoutes mounts helper requests.
func (s *server) registerTaskRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/tasks", s.handleTaskCreate)
		r.Get("/v1/tasks/mine", s.handleTaskListMine)
		r.Get("/v1/tasks/{id}", s.handleTaskGet)
		r.Patch("/v1/tasks/{id}", s.handleTaskUpdate)
		r.Delete("/v1/tasks/{id}", s.handleTaskDelete)
		r.Post("/v1/tasks/{id}/matching", s.handleTaskMatchingStart)
		r.Post("/v1/tasks/{id}/matching/stop", s.handleTaskMatchingStop)
		r.Post("/v1/tasks/{id}/invitations/mine/accept", s.handleInvitationAccept)
		r.Post("/v1/tasks/{id}/invitations/mine/decline", s.handleInvitationDecline)
		r.Post("/v1/tasks/{id}/helpers/mine/doing", s.handleHelperProgress(domain.TaskHelperDoing))
		r.Post("/v1/tasks/{id}/helpers/mine/done", s.handleHelperProgress(domain.TaskHelperDone))
		r.Post("/v1/tasks/{id}/helpers/{member_id}/review", s.handleHelperReview)
	})
}

// taskCreateRequest is the body of POST /v1/tasks. details and
// ability_ids may wait (a draft); matching needs them.
type taskCreateRequest struct {
	Title           string     `json:"title"`
	Details         string     `json:"details"`
	BigCategoryID   int64      `json:"big_category_id"`
	SmallCategoryID int64      `json:"small_category_id"`
	AbilityIDs      []int64    `json:"ability_ids"`
	HelpersWanted   int        `json:"helpers_wanted"`
	DueAt           *time.Time `json:"due_at"`
}

// optionalTime is a PATCH field that can be left out, set, or set to null.
type optionalTime struct {
	Set   bool
	Value *time.Time
}

func (o *optionalTime) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(b, []byte("null")) {
		o.Value = nil
		return nil
	}
	var t time.Time
	if err := json.Unmarshal(b, &t); err != nil {
		return err
	}
	o.Value = &t
	return nil
}

// taskUpdateRequest is the body of PATCH /v1/tasks/{id}: what is given
// changes; "due_at": null removes the due date.
type taskUpdateRequest struct {
	Title           *string      `json:"title"`
	Details         *string      `json:"details"`
	BigCategoryID   *int64       `json:"big_category_id"`
	SmallCategoryID *int64       `json:"small_category_id"`
	AbilityIDs      *[]int64     `json:"ability_ids"`
	HelpersWanted   *int         `json:"helpers_wanted"`
	DueAt           optionalTime `json:"due_at"`
}

func (req *taskUpdateRequest) update() domain.TaskUpdate {
	return domain.TaskUpdate{Title: req.Title, Details: req.Details, BigCategoryID: req.BigCategoryID,
		SmallCategoryID: req.SmallCategoryID, AbilityIDs: req.AbilityIDs, HelpersWanted: req.HelpersWanted,
		DueAtSet: req.DueAt.Set, DueAt: req.DueAt.Value}
}

func (req *taskUpdateRequest) Validate() error {
	if req.update().Empty() {
		return domain.Errorf(domain.EINVALID, "Nothing to change: give at least one field.")
	}
	return nil
}

type taskCustomerResponse struct {
	ID       string `json:"id"`
	Nickname string `json:"nickname"`
}

// taskResponse is a task on the wire.
type taskResponse struct {
	ID              string               `json:"id"`
	Title           string               `json:"title"`
	Details         string               `json:"details"`
	BigCategoryID   int64                `json:"big_category_id"`
	SmallCategoryID int64                `json:"small_category_id"`
	AbilityIDs      []int64              `json:"ability_ids"`
	HelpersWanted   int                  `json:"helpers_wanted"`
	HelperCount     int                  `json:"helper_count"`
	Status          domain.TaskStatus    `json:"status"`
	DueAt           *time.Time           `json:"due_at"`
	Customer        taskCustomerResponse `json:"customer"`
	CreatedAt       time.Time            `json:"created_at"`
	UpdatedAt       time.Time            `json:"updated_at"`
	// Helpers are shown on one task's answers, not in lists.
	Helpers *[]taskHelperResponse `json:"helpers,omitempty"`
}

// taskHelperResponse is a matched helper of a task and how far they are.
type taskHelperResponse struct {
	ID        string                  `json:"id"`
	Nickname  string                  `json:"nickname"`
	Status    domain.TaskHelperStatus `json:"status"`
	MatchedAt time.Time               `json:"matched_at"`
	StartedAt *time.Time              `json:"started_at"`
	DoneAt    *time.Time              `json:"done_at"`
}

// withHelpers is resp showing helpers.
func (resp taskResponse) withHelpers(helpers []domain.TaskHelper) taskResponse {
	hs := make([]taskHelperResponse, len(helpers))
	for i, h := range helpers {
		hs[i] = taskHelperResponse{ID: h.MemberID, Nickname: h.Nickname, Status: h.Status, MatchedAt: h.MatchedAt.UTC(),
			StartedAt: h.StartedAt, DoneAt: h.DoneAt}
	}
	resp.Helpers = &hs
	return resp
}

func newTaskResponse(t *domain.Task) taskResponse {
	resp := taskResponse{ID: t.ID, Title: t.Title, Details: t.Details, BigCategoryID: t.BigCategoryID,
		SmallCategoryID: t.SmallCategoryID, AbilityIDs: t.AbilityIDs, HelpersWanted: t.HelpersWanted,
		HelperCount: t.HelperCount, Status: t.Status, Customer: taskCustomerResponse{ID: t.CustomerID, Nickname: t.Customer},
		CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC()}
	if resp.AbilityIDs == nil {
		resp.AbilityIDs = []int64{}
	}
	if t.DueAt != nil {
		at := t.DueAt.UTC()
		resp.DueAt = &at
	}
	return resp
}

// handleTaskCreate posts a task in STANDBY.
func (s *server) handleTaskCreate(w http.ResponseWriter, r *http.Request) {
	var req taskCreateRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	t := domain.Task{CustomerID: mustClaims(r).MemberID, Title: req.Title, Details: req.Details,
		BigCategoryID: req.BigCategoryID, SmallCategoryID: req.SmallCategoryID, AbilityIDs: req.AbilityIDs,
		HelpersWanted: req.HelpersWanted, DueAt: req.DueAt, CreatedAt: now}
	if t.AbilityIDs == nil {
		t.AbilityIDs = []int64{}
	}
	if err := t.Validate(now); err != nil {
		s.writeError(w, r, err)
		return
	}
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		if err := (taskdb.Skills{}).CheckTaskSkills(ctx, tx, t.BigCategoryID, t.SmallCategoryID, t.AbilityIDs); err != nil {
			return err
		}
		return revokedIfGone((taskdb.Tasks{}).Create(ctx, tx, &t))
	})
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/tasks/"+t.ID)
	s.writeJSON(w, r, http.StatusCreated, newTaskResponse(&t))
}

// handleTaskGet answers a task to its customer and the helpers invited to
// it; to anyone else it does not exist.
func (s *server) handleTaskGet(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	me := mustClaims(r).MemberID
	t, err := (taskdb.Tasks{}).FindByID(ctx, s.db, chi.URLParam(r, "id"))
	if err == nil && t.CustomerID != me {
		var ok bool
		if ok, err = (taskdb.Tasks{}).Involves(ctx, s.db, t, me); err == nil && !ok {
			err = domain.Errorf(domain.ENOTFOUND, "Task not found.")
		}
	}
	var helpers []domain.TaskHelper
	if err == nil {
		helpers, err = (taskdb.Tasks{}).Helpers(ctx, s.db, t)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newTaskResponse(t).withHelpers(helpers))
}

// customerTask reads task id for a change by its customer: someone else
// is refused (EFORBIDDEN).
func customerTask(ctx context.Context, idb bun.IDB, id, me string) (*domain.Task, error) {
	t, err := (taskdb.Tasks{}).FindByID(ctx, idb, id)
	if err != nil {
		return nil, err
	}
	if err := t.CheckCustomer(me); err != nil {
		return nil, err
	}
	return t, nil
}

// handleTaskUpdate changes a task in STANDBY.
func (s *server) handleTaskUpdate(w http.ResponseWriter, r *http.Request) {
	var req taskUpdateRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC()
	var t *domain.Task
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if t, err = customerTask(ctx, tx, chi.URLParam(r, "id"), mustClaims(r).MemberID); err != nil {
			return err
		}
		if err := t.CheckStandby(); err != nil {
			return err
		}
		t.Apply(req.update())
		if err := t.Validate(now); err != nil {
			return err
		}
		if err := (taskdb.Skills{}).CheckTaskSkills(ctx, tx, t.BigCategoryID, t.SmallCategoryID, t.AbilityIDs); err != nil {
			return err
		}
		return (taskdb.Tasks{}).Update(ctx, tx, t, now)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newTaskResponse(t))
}

// handleTaskDelete deletes a task in STANDBY.
func (s *server) handleTaskDelete(w http.ResponseWriter, r *http.Request) {
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		t, err := customerTask(ctx, tx, chi.URLParam(r, "id"), mustClaims(r).MemberID)
		if err != nil {
			return err
		}
		if err := t.CheckStandby(); err != nil {
			return err
		}
		return (taskdb.Tasks{}).Delete(ctx, tx, t, s.now())
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type taskList struct {
	Tasks      []taskResponse `json:"tasks"`
	NextCursor *string        `json:"next_cursor"`
}

// handleTaskListMine lists the member's own tasks, newest first.
func (s *server) handleTaskListMine(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := (taskdb.Tasks{}).ListByCustomer(r.Context(), s.db, mustClaims(r).MemberID, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := taskList{Tasks: make([]taskResponse, len(page.Tasks)), NextCursor: nullable(page.Next)}
	for i := range page.Tasks {
		resp.Tasks[i] = newTaskResponse(&page.Tasks[i])
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// handleTaskMatchingStart moves a complete task from STANDBY to MATCHING
// and tells its customer, in one transaction; the invitation rounds of the
// worker take it from there.
func (s *server) handleTaskMatchingStart(w http.ResponseWriter, r *http.Request) {
	now := s.now().UTC()
	var t *domain.Task
	err := s.relay.RunInTx(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		var err error
		if t, err = customerTask(ctx, tx, chi.URLParam(r, "id"), mustClaims(r).MemberID); err != nil {
			return err
		}
		if t.Status != domain.TaskStandby {
			return domain.Errorf(domain.ETASKNOTSTANDBY, "The task is %s; only a task in STANDBY starts matching.", t.Status)
		}
		if err := t.Complete(); err != nil {
			return err
		}
		if err := (taskdb.Tasks{}).SetStatus(ctx, tx, t, domain.TaskMatching, now); err != nil {
			return err
		}
		_, err = jobs.Notify(ctx, tx, domain.NotifyTaskMatchingStarted, jobs.TaskArgs(t), now, t.CustomerID)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newTaskResponse(t))
}

// handleTaskMatchingStop puts a MATCHING task back to STANDBY, where it
// can be edited and started again; its open invitations expire (the
// helpers invited are not invited again by a later matching).
func (s *server) handleTaskMatchingStop(w http.ResponseWriter, r *http.Request) {
	now := s.now().UTC()
	var t *domain.Task
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if t, err = customerTask(ctx, tx, chi.URLParam(r, "id"), mustClaims(r).MemberID); err != nil {
			return err
		}
		if t.Status != domain.TaskMatching {
			return domain.Errorf(domain.ETASKNOTMATCHING, "The task is %s; only a task in MATCHING can stop matching.", t.Status)
		}
		if err := (taskdb.Tasks{}).SetStatus(ctx, tx, t, domain.TaskStandby, now); err != nil {
			return err
		}
		_, err = (taskdb.Tasks{}).ExpireOpenInvitations(ctx, tx, t, now)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newTaskResponse(t))
}

// acceptAttempts bounds the tries of an accept that keeps losing the
// task's version check to other helpers' accepts.
const acceptAttempts = 20

// invitationResponse is a helper's invitation on the wire.
type invitationResponse struct {
	ID         string                  `json:"id"`
	TaskID     string                  `json:"task_id"`
	Status     domain.InvitationStatus `json:"status"`
	Reason     string                  `json:"reason"`
	InvitedAt  time.Time               `json:"invited_at"`
	ExpiresAt  time.Time               `json:"expires_at"`
	AnsweredAt *time.Time              `json:"answered_at"`
}

func newInvitationResponse(inv *domain.Invitation) invitationResponse {
	resp := invitationResponse{ID: inv.ID, TaskID: inv.TaskID, Status: inv.Status, Reason: inv.Reason,
		InvitedAt: inv.InvitedAt.UTC(), ExpiresAt: inv.ExpiresAt.UTC()}
	if inv.AnsweredAt != nil {
		at := inv.AnsweredAt.UTC()
		resp.AnsweredAt = &at
	}
	return resp
}

// myInvitation reads task id and the member's invitation to it.
func myInvitation(ctx context.Context, idb bun.IDB, id, me string) (*domain.Task, *domain.Invitation, error) {
	t, err := (taskdb.Tasks{}).FindByID(ctx, idb, id)
	if err != nil {
		return nil, nil, err
	}
	if t.CustomerID == me {
		return nil, nil, domain.Errorf(domain.EFORBIDDEN, "You cannot answer for your own task.")
	}
	inv, err := (taskdb.Tasks{}).FindInvitation(ctx, idb, t, me)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, nil, domain.Errorf(domain.ENOTINVITED, "You are not invited to this task.")
	}
	if err != nil {
		return nil, nil, err
	}
	return t, inv, nil
}

// errAnswerLost: the invitation changed between the read and the write
// (a last seat expired it); read again and answer what is true now.
func errAnswerLost() error {
	return domain.Errorf(domain.ECONFLICT, "The invitation changed meanwhile; try again.")
}

// handleInvitationAccept matches the member to a task they are invited
// to, first come, first served: the task's version check lets one accept
// at a time count a seat, and a loser reads the task again and tries
// once more, until it gets a seat or finds the task full. The last seat
// moves the task to MATCHED, expires the other open invitations and tells
// the customer (TASK_MATCHED), in the same transaction. The task row is
// written before the invitation, so the last seat's expiry never waits
// for an invitation another accept holds while that one waits for the
// task.
func (s *server) handleInvitationAccept(w http.ResponseWriter, r *http.Request) {
	me := mustClaims(r).MemberID
	var inv *domain.Invitation
	var err error
	for attempt := 0; attempt < acceptAttempts; attempt++ {
		now := s.now().UTC()
		err = s.relay.RunInTx(r.Context(), func(ctx context.Context, tx bun.Tx) error {
			var t *domain.Task
			var err error
			if t, inv, err = myInvitation(ctx, tx, chi.URLParam(r, "id"), me); err != nil {
				return err
			}
			if inv.Status == domain.InvitationAccepted || inv.Status == domain.InvitationDeclined {
				return inv.CheckAnswerable(now)
			}
			if t.Status > domain.TaskMatching || t.HelperCount >= t.HelpersWanted {
				return domain.Errorf(domain.ETASKFULL, "The task has all its helpers.")
			}
			if err := inv.CheckAnswerable(now); err != nil {
				if inv.Status == domain.InvitationExpired && inv.ExpiresAt.After(now) && t.Status == domain.TaskMatching {
					// The statements read on both sides of the last
					// seat's commit (which expired this invitation):
					// read again.
					return errAnswerLost()
				}
				return err
			}
			if t.Status != domain.TaskMatching {
				return domain.Errorf(domain.EINVITATIONEXPIRED, "The task is not matching any more.")
			}
			if err := (taskdb.Tasks{}).AddHelper(ctx, tx, t, me, now); err != nil {
				return err
			}
			ok, err := (taskdb.Tasks{}).Answer(ctx, tx, inv, domain.InvitationAccepted, "", now)
			if err != nil {
				return err
			}
			if !ok {
				return errAnswerLost()
			}
			if t.Status != domain.TaskMatched {
				return nil
			}
			if _, err := (taskdb.Tasks{}).ExpireOpenInvitations(ctx, tx, t, now); err != nil {
				return err
			}
			args := jobs.TaskArgs(t)
			if args.Members, err = (taskdb.Tasks{}).HelperNicknames(ctx, tx, t); err != nil {
				return err
			}
			_, err = jobs.Notify(ctx, tx, domain.NotifyTaskMatched, args, now, t.CustomerID)
			return err
		})
		if domain.ErrorCode(err) != domain.ECONFLICT {
			break
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newInvitationResponse(inv))
}

// invitationDeclineRequest is the optional body of a decline.
type invitationDeclineRequest struct {
	Reason string `json:"reason"`
}

func (req *invitationDeclineRequest) Validate() error {
	if utf8.RuneCountInString(req.Reason) > domain.InvitationReasonMax {
		return domain.FieldErrorf(domain.EINVALID, "reason", "Field \"reason\" must be at most %d characters.", domain.InvitationReasonMax)
	}
	return nil
}

// handleInvitationDecline declines the member's invitation, with an
// optional reason (easytask: it helps the next match).
func (s *server) handleInvitationDecline(w http.ResponseWriter, r *http.Request) {
	var req invitationDeclineRequest
	if err := s.decodeOptional(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC()
	var inv *domain.Invitation
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if _, inv, err = myInvitation(ctx, tx, chi.URLParam(r, "id"), mustClaims(r).MemberID); err != nil {
			return err
		}
		if err := inv.CheckAnswerable(now); err != nil {
			return err
		}
		ok, err := (taskdb.Tasks{}).Answer(ctx, tx, inv, domain.InvitationDeclined, req.Reason, now)
		if err == nil && !ok {
			err = domain.Errorf(domain.EINVITATIONEXPIRED, "The invitation has expired.")
		}
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newInvitationResponse(inv))
}

// handleHelperProgress moves the member, a helper matched to the task,
// to status to (DOING, then DONE). The task follows its helpers: DOING
// once all have started, DONE once all have finished, and then its
// customer is asked for reviews (TASK_DONE), in the same transaction. The
// step bumps the task's version, so of helpers finishing at once exactly
// one sees the others done; a loser reads again, as an accept does.
func (s *server) handleHelperProgress(to domain.TaskHelperStatus) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		me := mustClaims(r).MemberID
		var t *domain.Task
		var helpers []domain.TaskHelper
		var err error
		for attempt := 0; attempt < acceptAttempts; attempt++ {
			now := s.now().UTC()
			err = s.relay.RunInTx(r.Context(), func(ctx context.Context, tx bun.Tx) error {
				var err error
				if t, err = (taskdb.Tasks{}).FindByID(ctx, tx, chi.URLParam(r, "id")); err != nil {
					return err
				}
				if t.CustomerID == me {
					return domain.Errorf(domain.EFORBIDDEN, "You cannot work on your own task.")
				}
				if helpers, err = (taskdb.Tasks{}).Helpers(ctx, tx, t); err != nil {
					return err
				}
				h := domain.FindHelper(helpers, me)
				if h == nil {
					return domain.Errorf(domain.ENOTTASKHELPER, "You are not a helper of this task.")
				}
				if err := domain.CheckProgress(t, h, to); err != nil {
					return err
				}
				// The task's status as if this step were taken; the store
				// then moves the helper from the status read.
				was, from := t.Status, h.Status
				h.Status = to
				taskTo := max(was, domain.TaskStatusOf(helpers))
				h.Status = from
				if err := (taskdb.Tasks{}).Progress(ctx, tx, t, h, to, taskTo, now); err != nil {
					return err
				}
				if taskTo != domain.TaskDone || was == domain.TaskDone {
					return nil
				}
				_, err = jobs.Notify(ctx, tx, domain.NotifyTaskDone, jobs.TaskArgs(t), now, t.CustomerID)
				return err
			})
			if domain.ErrorCode(err) != domain.ECONFLICT {
				break
			}
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, newTaskResponse(t).withHelpers(helpers))
	}
}
