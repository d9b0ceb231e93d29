package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// commentExcerpt is how much of a comment a notification quotes.
const commentExcerpt = 80

// registerCommentRoutes mounts room comments (authenticated).
func (s *server) registerCommentRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/rooms/{id}/comments", s.handleCommentCreate)
		r.Get("/v1/rooms/{id}/comments", s.handleCommentList)
		r.Patch("/v1/comments/{id}", s.handleCommentUpdate)
		r.Delete("/v1/comments/{id}", s.handleCommentDelete)
	})
}

// commentRequest is the body of POST /v1/rooms/{id}/comments and of
// PATCH /v1/comments/{id} (which takes body only).
type commentRequest struct {
	Body     string  `json:"body"`
	ParentID *string `json:"parent_id"`
}

func (req *commentRequest) Validate() error {
	body, err := domain.NormalizeCommentBody(req.Body)
	if err != nil {
		return err
	}
	req.Body = body
	if req.ParentID != nil && *req.ParentID == "" {
		return domain.FieldErrorf(domain.EINVALID, "parent_id", "Field \"parent_id\" must be a comment id or left out.")
	}
	return nil
}

// commentResponse is a comment on the wire. A deleted comment, listed
// because it has replies, shows neither body nor author; in an anonymous
// room only participants see who wrote what (everyone sees their own).
type commentResponse struct {
	ID        string            `json:"id"`
	RoomID    string            `json:"room_id"`
	ParentID  *string           `json:"parent_id"`
	Author    *memberRef        `json:"author"`
	Body      *string           `json:"body"`
	Deleted   bool              `json:"deleted"`
	Mine      bool              `json:"mine"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	Replies   []commentResponse `json:"replies,omitempty"`
}

// memberRef names a member.
type memberRef struct {
	ID       string `json:"id"`
	Nickname string `json:"nickname"`
}

func newCommentResponse(c *domain.Comment, me string, showAuthors bool) commentResponse {
	mine := c.AuthorID == me
	resp := commentResponse{
		ID: c.ID, RoomID: c.RoomID, ParentID: nullable(c.ParentID),
		Deleted: c.Deleted(), Mine: mine, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if !c.Deleted() {
		resp.Body = &c.Body
		if showAuthors || mine {
			resp.Author = &memberRef{ID: c.AuthorID, Nickname: c.Author}
		}
	}
	for i := range c.Replies {
		resp.Replies = append(resp.Replies, newCommentResponse(&c.Replies[i], me, showAuthors))
	}
	return resp
}

// handleCommentCreate stores a comment or a reply and, in the same
// transaction, notifies the parent's author of a reply and the host of
// any comment, never the writer themselves.
func (s *server) handleCommentCreate(w http.ResponseWriter, r *http.Request) {
	var req commentRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	me := mustClaims(r).MemberID
	now := s.now().UTC()
	c := domain.Comment{AuthorID: me, Body: req.Body, CreatedAt: now}
	if req.ParentID != nil {
		c.ParentID = *req.ParentID
	}
	err := s.relay.RunInTx(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		room, err := findLiveRoom(ctx, tx, chi.URLParam(r, "id"))
		if err != nil {
			return err
		}
		parent, err := (db.Comments{}).Create(ctx, tx, room, &c)
		if err != nil {
			return err
		}
		args := jobs.RoomArgs(room)
		args.ActorID, args.Actor, args.CommentID = me, c.Author, c.ID
		args.Excerpt = domain.Excerpt(c.Body, commentExcerpt)
		args.Link = "/rooms/" + room.ID + "#comment-" + c.ID
		told := map[string]bool{me: true}
		if parent != nil && !told[parent.AuthorID] {
			told[parent.AuthorID] = true
			replyArgs := args
			if !revealed(room, parent.AuthorID) {
				// Who is in an anonymous room is for its participants.
				replyArgs.ActorID, replyArgs.Actor = "", ""
			}
			if err := notifyIfMember(ctx, tx, domain.NotifyReplyOnMyComment, replyArgs, now, parent.AuthorID); err != nil {
				return err
			}
		}
		if !told[room.HostID] {
			return notifyIfMember(ctx, tx, domain.NotifyCommentOnMyRoom, args, now, room.HostID)
		}
		return nil
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/comments/"+c.ID)
	s.writeJSON(w, r, http.StatusCreated, newCommentResponse(&c, me, true))
}

// notifyIfMember notifies memberID unless their account is gone.
func notifyIfMember(ctx context.Context, tx bun.Tx, t domain.NotificationType, args domain.NotificationArgs, now time.Time, memberID string) error {
	_, err := jobs.Notify(ctx, tx, t, args, now, memberID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil
	}
	return err
}

type commentList struct {
	Comments   []commentResponse `json:"comments"`
	NextCursor *string           `json:"next_cursor"`
}

// handleCommentList answers a room's comments, oldest first, each with its
// replies; pages with ?limit= and ?cursor=.
func (s *server) handleCommentList(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	room, err := findLiveRoom(ctx, s.db, chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := (db.Comments{}).ListForRoom(ctx, s.db, room, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	me := mustClaims(r).MemberID
	resp := commentList{Comments: make([]commentResponse, 0, len(page.Comments))}
	for i := range page.Comments {
		resp.Comments = append(resp.Comments, newCommentResponse(&page.Comments[i], me, revealed(room, me)))
	}
	if page.Next != "" {
		resp.NextCursor = &page.Next
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// commentUpdateRequest is the body of PATCH /v1/comments/{id}.
type commentUpdateRequest struct {
	Body string `json:"body"`
}

func (req *commentUpdateRequest) Validate() error {
	body, err := domain.NormalizeCommentBody(req.Body)
	req.Body = body
	return err
}

// handleCommentUpdate edits the member's own comment.
func (s *server) handleCommentUpdate(w http.ResponseWriter, r *http.Request) {
	var req commentUpdateRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	me := mustClaims(r).MemberID
	c, err := (db.Comments{}).Update(r.Context(), s.db, chi.URLParam(r, "id"), me, req.Body, s.now().UTC())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newCommentResponse(c, me, true)) // one's own
}

// handleCommentDelete soft-deletes the member's own comment.
func (s *server) handleCommentDelete(w http.ResponseWriter, r *http.Request) {
	if err := (db.Comments{}).Delete(r.Context(), s.db, chi.URLParam(r, "id"), mustClaims(r).MemberID, s.now().UTC()); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
