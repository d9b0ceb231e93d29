package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// registerMeRoutes mounts the signed-in member's own account.
func (s *server) registerMeRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(noStore, s.authenticate)
		r.Get("/v1/me", s.handleMeGet)
		r.Patch("/v1/me", s.handleMeUpdate)
		r.Delete("/v1/me", s.handleMeDelete)
		r.Get("/v1/me/sessions", s.handleSessionList)
		r.Delete("/v1/me/sessions/{id}", s.handleSessionDelete)
		r.Get("/v1/members/{id}", s.handleMemberGet)
	})
}

// currentMember loads the member behind the access token. A member deleted
// while the token lived is answered as a revoked token.
func (s *server) currentMember(r *http.Request) (*domain.Member, error) {
	m, err := (db.Members{}).FindByID(r.Context(), s.db, mustClaims(r).MemberID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	return m, err
}

func (s *server) handleMeGet(w http.ResponseWriter, r *http.Request) {
	m, err := s.currentMember(r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	resp := newMemberResponse(m)
	if resp.Avatar, err = s.avatarResponse(r.Context(), s.db, m.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	pending, err := pendingEmail(r.Context(), s.db, m)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp.PendingEmail = nullable(pending)
	s.writeJSON(w, r, http.StatusOK, resp)
}

// avatarResponse reads member's avatar; nil when they have none.
func (s *server) avatarResponse(ctx context.Context, idb bun.IDB, member string) (*attachedImageResponse, error) {
	img, err := (db.Images{}).Avatar(ctx, idb, member)
	if err != nil || img == nil {
		return nil, err
	}
	resp, err := s.newAttachedImageResponse(ctx, img)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// meUpdateRequest is the body of PATCH /v1/me: only the fields sent change.
// phone and slack_email set to "" clear them. A new password needs the
// current one.
type meUpdateRequest struct {
	// Email asks to change the address: a code goes to the new one, which
	// replaces the current one only once verified.
	Email           *string       `json:"email"`
	Nickname        *string       `json:"nickname"`
	Phone           *string       `json:"phone"`
	SMSConsent      *bool         `json:"sms_consent"`
	SlackEmail      *string       `json:"slack_email"`
	Notifications   *prefsRequest `json:"notifications"`
	CurrentPassword *string       `json:"current_password"`
	NewPassword     *string       `json:"new_password"`
	// AvatarImageID is an image id, or null to remove the avatar.
	AvatarImageID json.RawMessage `json:"avatar_image_id"`

	avatar *string // "" removes
}

func (req *meUpdateRequest) Validate() error {
	var err error
	if req.AvatarImageID != nil {
		var id *string
		if err := json.Unmarshal(req.AvatarImageID, &id); err != nil || (id != nil && *id == "") {
			return domain.FieldErrorf(domain.EINVALID, "avatar_image_id", "Field \"avatar_image_id\" must be an image id or null.")
		}
		if id == nil {
			id = new(string)
		}
		req.avatar = id
	}
	if req.Email != nil {
		if *req.Email, err = domain.NormalizeEmail("email", *req.Email); err != nil {
			return err
		}
	}
	if req.Nickname != nil {
		if *req.Nickname, err = domain.NormalizeNickname(*req.Nickname); err != nil {
			return err
		}
	}
	if err := normalizeContacts(req.Phone, req.SlackEmail); err != nil {
		return err
	}
	switch {
	case req.NewPassword != nil:
		if err := domain.ValidatePassword("new_password", *req.NewPassword); err != nil {
			return err
		}
		if req.CurrentPassword == nil || *req.CurrentPassword == "" {
			return domain.FieldErrorf(domain.EINVALID, "current_password",
				"Field \"current_password\" is required to set a new password.")
		}
	case req.CurrentPassword != nil:
		return domain.FieldErrorf(domain.EINVALID, "new_password",
			"Field \"new_password\" is required with \"current_password\".")
	}
	return nil
}

// handleMeUpdate changes the member's profile. A password change ends every
// other session: whoever else was signed in must sign in again.
func (s *server) handleMeUpdate(w http.ResponseWriter, r *http.Request) {
	var req meUpdateRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, err := s.currentMember(r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	ctx := r.Context()
	upd := domain.MemberUpdate{
		Nickname:   req.Nickname,
		Phone:      req.Phone,
		SMSConsent: req.SMSConsent,
		SlackEmail: req.SlackEmail,
	}
	if p := req.Notifications; p != nil {
		upd.PrefMail, upd.PrefSMS, upd.PrefSlack = p.Mail, p.SMS, p.Slack
	}
	if req.NewPassword != nil {
		ok, _, err := s.passwords.Verify(ctx, m.PasswordHash, *req.CurrentPassword)
		if err != nil {
			s.writeError(w, r, fmt.Errorf("verify password: %w", err))
			return
		}
		if !ok {
			s.writeError(w, r, domain.FieldErrorf(domain.EINVALID, "current_password", "The current password is wrong."))
			return
		}
		hash, err := s.passwords.Hash(ctx, *req.NewPassword)
		if err != nil {
			s.writeError(w, r, fmt.Errorf("hash password: %w", err))
			return
		}
		upd.PasswordHash = &hash
	}
	newEmail := ""
	if req.Email != nil && *req.Email != m.Email {
		newEmail = *req.Email
		if _, err := (db.Members{}).FindByEmail(ctx, s.db, newEmail); err == nil {
			s.writeError(w, r, domain.FieldErrorf(domain.EEMAILTAKEN, "email", "This e-mail address is registered already."))
			return
		} else if domain.ErrorCode(err) != domain.ENOTFOUND {
			s.writeError(w, r, err)
			return
		}
	}
	var avatar *attachedImageResponse
	pending := ""
	err = s.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		now := s.now().UTC().Truncate(time.Microsecond)
		if m, err = (db.Members{}).Update(ctx, tx, m.ID, upd, now); err != nil {
			return err
		}
		if newEmail != "" {
			if _, _, err := s.issueCode(ctx, tx, domain.CodeEmail, m.ID, newEmail, now, false); err != nil {
				return err
			}
		}
		if pending, err = pendingEmail(ctx, tx, m); err != nil {
			return err
		}
		if req.avatar != nil {
			if err := s.setAvatar(ctx, tx, m.ID, *req.avatar); err != nil {
				return err
			}
		}
		avatar, err = s.avatarResponse(ctx, tx, m.ID)
		return err
	})
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	if upd.PasswordHash != nil {
		if err := s.sessions.RevokeAll(ctx, m.ID, mustClaims(r).SessionID); err != nil {
			s.writeError(w, r, fmt.Errorf("revoke other sessions: %w", err))
			return
		}
		s.logger.InfoContext(ctx, "password changed", slog.String("member_id", m.ID))
	}
	resp := newMemberResponse(m)
	resp.Avatar = avatar
	resp.PendingEmail = nullable(pending)
	s.writeJSON(w, r, http.StatusOK, resp)
}

// setAvatar makes image ("" for none) member's avatar after checking it,
// and enqueues the deletion of the avatar it replaces.
func (s *server) setAvatar(ctx context.Context, tx bun.Tx, member, image string) error {
	if image != "" {
		if _, err := attachableImage(ctx, tx, image, member, domain.ImagePurposeAvatar, "avatar_image_id"); err != nil {
			return err
		}
	}
	prev, err := (db.Images{}).SetAvatar(ctx, tx, member, image)
	if err != nil || prev == "" {
		return err
	}
	return jobs.EnqueueImageDeletes(ctx, tx, prev)
}

// handleMeDelete soft-deletes the member, ends every session and puts the
// token of this request on the deny-list.
func (s *server) handleMeDelete(w http.ResponseWriter, r *http.Request) {
	c := mustClaims(r)
	ctx := r.Context()
	now := s.now().UTC().Truncate(time.Microsecond)
	err := s.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// A deleted member leaves the random-matching pools and every open
		// room with the account; rooms they host are cancelled, and their
		// photos and the avatar deleted.
		if _, err := (db.Applications{}).CancelAllForMember(ctx, tx, c.MemberID, now); err != nil {
			return err
		}
		cancelled, err := (db.Rooms{}).LeaveAllForMember(ctx, tx, c.MemberID, now)
		if err != nil {
			return err
		}
		for i := range cancelled {
			if err := notifyGuests(ctx, tx, domain.NotifyRoomCancelled, &cancelled[i], now); err != nil {
				return err
			}
			if err := dropRoomImages(ctx, tx, &cancelled[i]); err != nil {
				return err
			}
		}
		if err := s.setAvatar(ctx, tx, c.MemberID, ""); err != nil {
			return err
		}
		return (db.Members{}).Delete(ctx, tx, c.MemberID, now)
	})
	if err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			err = domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
		}
		s.writeAuthError(w, r, err)
		return
	}
	// The member is gone from the database already; a failure here
	// leaves sessions whose refresh finds no member and ends them all.
	if err := s.sessions.RevokeAll(ctx, c.MemberID, ""); err != nil {
		s.writeError(w, r, fmt.Errorf("revoke sessions: %w", err))
		return
	}
	s.deny(ctx, c)
	s.clearRefreshCookie(w)
	s.logger.InfoContext(ctx, "member deleted", slog.String("member_id", c.MemberID))
	w.WriteHeader(http.StatusNoContent)
}

// sessionResponse is one login of the member.
type sessionResponse struct {
	ID         string    `json:"id"`
	UserAgent  string    `json:"user_agent"`
	IP         string    `json:"ip"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	Current    bool      `json:"current"`
}

type sessionList struct {
	Sessions []sessionResponse `json:"sessions"`
}

func (s *server) handleSessionList(w http.ResponseWriter, r *http.Request) {
	c := mustClaims(r)
	list, err := s.sessions.List(r.Context(), c.MemberID)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("list sessions: %w", err))
		return
	}
	resp := sessionList{Sessions: make([]sessionResponse, 0, len(list))}
	for _, sess := range list {
		resp.Sessions = append(resp.Sessions, sessionResponse{
			ID:         sess.ID,
			UserAgent:  sess.UserAgent,
			IP:         sess.IP,
			CreatedAt:  sess.CreatedAt.UTC(),
			LastUsedAt: sess.LastUsedAt.UTC(),
			Current:    sess.ID == c.SessionID,
		})
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// handleSessionDelete signs one of the member's devices out; another
// member's session is not found.
func (s *server) handleSessionDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.sessions.Revoke(r.Context(), mustClaims(r).MemberID, chi.URLParam(r, "id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// publicMemberResponse is what any member may see of another.
type publicMemberResponse struct {
	ID           string                 `json:"id"`
	Nickname     string                 `json:"nickname"`
	MannerPoints int                    `json:"manner_points"`
	Avatar       *attachedImageResponse `json:"avatar"`
	// Skills are the member's possible work and abilities as a helper.
	Skills memberSkillsResponse `json:"skills"`
	// HelperReviews sum up the reviews the member got as a helper.
	HelperReviews helperReviewsResponse `json:"helper_reviews"`
	// Activity is the activity score (the reputation helper requests rank
	// by) and what it is made of; review texts stay private.
	Activity activityResponse `json:"activity"` // EmailVerified and PhoneVerified tell others whether the member proved
	// an address and a number; the address and number stay private.
	EmailVerified bool `json:"email_verified"`
	PhoneVerified bool `json:"phone_verified"`
}

type activityResponse struct {
	Score           int     `json:"score"`
	Matches         int     `json:"matches"`
	ReviewsReceived int     `json:"reviews_received"`
	ReviewAverage   float64 `json:"review_average"` // 0 with no reviews
	MannerPoints    int     `json:"manner_points"`
}

func (s *server) handleMemberGet(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	m, err := (db.Members{}).FindByID(ctx, s.db, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	act, score, err := (db.Members{}).Activity(ctx, s.db, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	avatar, err := s.avatarResponse(ctx, s.db, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	skills, err := memberSkills(ctx, s.db, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	reviews, err := helperReviews(ctx, s.db, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, publicMemberResponse{ID: m.ID, Nickname: m.Nickname, MannerPoints: act.MannerPoints, Avatar: avatar, Skills: skills,
		HelperReviews: reviews,
		Activity: activityResponse{Score: score, Matches: act.Matches, ReviewsReceived: act.ReviewsReceived,
			ReviewAverage: math.Round(act.ReviewAverage()*100) / 100, MannerPoints: act.MannerPoints},
		EmailVerified: m.EmailVerifiedAt != nil, PhoneVerified: m.Phone != "" && m.PhoneVerifiedAt != nil})
}
