package httpapi

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// refreshCookie is the cookie carrying the refresh token when
// Deps.RefreshCookie is on; it is sent only to the auth endpoints.
const (
	refreshCookie     = "moim_refresh"
	refreshCookiePath = "/v1/auth"
)

// registerAuthRoutes mounts sign-up, login, refresh and logout. The first
// three answer anyone, so each is rate-limited per client IP; login also
// counts its failures (loginlimit.go), inside the handler once the address
// is known.
func (s *server) registerAuthRoutes(r chi.Router, limits RateLimits, deviceKey []byte) {
	s.login = &loginLimits{
		rdb:        s.redis,
		sessions:   db.SessionStore{DB: s.db},
		perAccount: limits.LoginFailuresPerAccount,
		perIP:      limits.LoginFailuresPerIP,
		delay:      cmp.Or(limits.LoginDelay, DefaultLoginDelay),
		maxDelay:   cmp.Or(limits.LoginMaxDelay, DefaultLoginMaxDelay),
		logger:     s.logger,
		now:        s.now,
	}
	if len(deviceKey) > 0 {
		s.login.deviceTTL, s.login.deviceKey = limits.DeviceTTL, deviceKey
	}
	r = r.With(noStore)
	r.With(s.limitByIP(s.newLimiter("signup-ip", limits.SignupPerIP))).Post("/v1/auth/signup", s.handleSignup)
	r.With(s.limitByIP(s.newLimiter("login-ip", limits.LoginPerIP))).Post("/v1/auth/login", s.handleLogin)
	r.With(s.limitByIP(s.newLimiter("refresh-ip", limits.RefreshPerIP))).Post("/v1/auth/refresh", s.handleRefresh)
	r.With(s.authenticate).Post("/v1/auth/logout", s.handleLogout)
}

// signupRequest is the body of POST /v1/auth/signup.
type signupRequest struct {
	Email         string        `json:"email"`
	Password      string        `json:"password"`
	Nickname      string        `json:"nickname"`
	Phone         *string       `json:"phone"`
	SMSConsent    bool          `json:"sms_consent"`
	SlackEmail    *string       `json:"slack_email"`
	Notifications *prefsRequest `json:"notifications"`
}

// prefsRequest switches notification channels; a missing one is unchanged
// (on sign-up: on).
type prefsRequest struct {
	Mail  *bool `json:"mail"`
	SMS   *bool `json:"sms"`
	Slack *bool `json:"slack"`
}

// Validate normalises the fields in place, in the order a form shows them.
func (req *signupRequest) Validate() error {
	var err error
	if req.Email, err = domain.NormalizeEmail("email", req.Email); err != nil {
		return err
	}
	if err := domain.ValidatePassword("password", req.Password); err != nil {
		return err
	}
	if req.Nickname, err = domain.NormalizeNickname(req.Nickname); err != nil {
		return err
	}
	return normalizeContacts(req.Phone, req.SlackEmail)
}

// normalizeContacts normalises the optional phone and Slack e-mail in
// place; nil means not given and "" means none.
func normalizeContacts(phone, slackEmail *string) error {
	var err error
	if phone != nil {
		if *phone, err = domain.NormalizePhone(*phone); err != nil {
			return err
		}
	}
	if slackEmail != nil && *slackEmail != "" {
		if *slackEmail, err = domain.NormalizeEmail("slack_email", *slackEmail); err != nil {
			return err
		}
	}
	return nil
}

func (p *prefsRequest) apply(prefs *domain.NotificationPrefs) {
	if p == nil {
		return
	}
	if p.Mail != nil {
		prefs.Mail = *p.Mail
	}
	if p.SMS != nil {
		prefs.SMS = *p.SMS
	}
	if p.Slack != nil {
		prefs.Slack = *p.Slack
	}
}

// memberResponse is a member as the member sees themself.
type memberResponse struct {
	ID            string        `json:"id"`
	Email         string        `json:"email"`
	Nickname      string        `json:"nickname"`
	Phone         *string       `json:"phone"`
	SMSConsent    bool          `json:"sms_consent"`
	SlackEmail    *string       `json:"slack_email"`
	Notifications prefsResponse `json:"notifications"`
	Role          domain.Role   `json:"role"`
	// Avatar is null without one; set by the routes that read it.
	Avatar    *attachedImageResponse `json:"avatar"`
	CreatedAt time.Time              `json:"created_at"`
	UpdatedAt time.Time              `json:"updated_at"`
	// EmailVerified and PhoneVerified say whether the member proved the
	// address and the number with a code; SMS goes to a verified number
	// only.
	EmailVerified bool `json:"email_verified"`
	PhoneVerified bool `json:"phone_verified"`
	// PendingEmail is the address the member asked to change to; it
	// replaces email once verified. Set by the routes that read it.
	PendingEmail *string `json:"pending_email"`
}

type prefsResponse struct {
	Mail  bool `json:"mail"`
	SMS   bool `json:"sms"`
	Slack bool `json:"slack"`
}

func newMemberResponse(m *domain.Member) memberResponse {
	return memberResponse{
		ID:            m.ID,
		Email:         m.Email,
		Nickname:      m.Nickname,
		Phone:         nullable(m.Phone),
		SMSConsent:    m.SMSConsent,
		SlackEmail:    nullable(m.SlackEmail),
		Notifications: prefsResponse{Mail: m.Prefs.Mail, SMS: m.Prefs.SMS, Slack: m.Prefs.Slack},
		Role:          m.Role,
		CreatedAt:     m.CreatedAt.UTC(),
		UpdatedAt:     m.UpdatedAt.UTC(),
		EmailVerified: m.EmailVerifiedAt != nil,
		PhoneVerified: m.Phone != "" && m.PhoneVerifiedAt != nil,
	}
}

// nullable shows "" as null.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// handleSignup creates a member. The password is hashed before the insert
// so no transaction waits on argon2.
func (s *server) handleSignup(w http.ResponseWriter, r *http.Request) {
	var req signupRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	hash, err := s.passwords.Hash(ctx, req.Password)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("hash password: %w", err))
		return
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	m := domain.Member{
		Email:        req.Email,
		PasswordHash: hash,
		Nickname:     req.Nickname,
		SMSConsent:   req.SMSConsent,
		Prefs:        domain.DefaultNotificationPrefs(),
		Role:         domain.RoleMember,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if req.Phone != nil {
		m.Phone = *req.Phone
	}
	if req.SlackEmail != nil {
		m.SlackEmail = *req.SlackEmail
	}
	req.Notifications.apply(&m.Prefs)
	// The verification code for the address goes with the account, in
	// its transaction.
	err = s.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := (db.Members{}).Create(ctx, tx, &m); err != nil {
			return err
		}
		_, _, err := s.issueCode(ctx, tx, domain.CodeEmail, m.ID, m.Email, now, false)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.logger.InfoContext(ctx, "member signed up", slog.String("member_id", m.ID))
	w.Header().Set("Location", "/v1/members/"+url.PathEscape(m.ID))
	s.writeJSON(w, r, http.StatusCreated, newMemberResponse(&m))
}

// loginRequest is the body of POST /v1/auth/login.
type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (req *loginRequest) Validate() error {
	var err error
	if req.Email, err = domain.NormalizeEmail("email", req.Email); err != nil {
		return err
	}
	if req.Password == "" {
		return domain.FieldErrorf(domain.EINVALID, "password", "Field \"password\" is required.")
	}
	if len(req.Password) > 4*domain.MaxPasswordLen {
		// No account has a longer one; spare argon2 the work.
		return domain.FieldErrorf(domain.EINVALID, "password", "Field \"password\" is too long.")
	}
	return nil
}

// tokenResponse is what login and refresh answer.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// errBadCredentials is the one answer to a wrong e-mail or password, so the
// response does not tell which accounts exist.
var errBadCredentials = domain.Errorf(domain.EUNAUTHORIZED, "Wrong e-mail or password.")

// handleLogin checks the password and opens a session. An unknown address
// still runs one argon2 verification, so it takes as long as a wrong
// password.
func (s *server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	m, err := (db.Members{}).FindByEmail(ctx, s.db, req.Email)
	encoded, memberID := "", ""
	switch {
	case err == nil:
		encoded, memberID = m.PasswordHash, m.ID
	case domain.ErrorCode(err) != domain.ENOTFOUND:
		s.writeError(w, r, err)
		return
	}
	ip := clientIP(ctx)
	trust, err := s.login.trust(ctx, r, memberID, ip)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	attempt, wait := s.login.admit(ctx, req.Email, trust, ip)
	if wait > 0 {
		s.loginSlowed(w, r, trust, wait)
		return
	}
	failed := false
	defer func() {
		// Only wrong passwords count.
		if !failed {
			s.login.release(ctx, attempt)
		}
	}()
	ok, needsRehash, err := s.passwords.Verify(ctx, encoded, req.Password)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("verify password: %w", err))
		return
	}
	if !ok || m == nil {
		failed = true
		s.logger.InfoContext(ctx, "login failed", slog.String("remote_ip", ip), slog.String("trust", trust.String()))
		s.writeError(w, r, errBadCredentials)
		return
	}
	sess, refresh, err := s.sessions.Create(ctx, m.ID, r.UserAgent(), clientIP(ctx))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("create session: %w", err))
		return
	}
	// A password change or an account deletion that committed while the
	// password was being verified revokes sessions it can see; this one
	// may have been created just after, so look again and give it up.
	if now, err := (db.Members{}).FindByID(ctx, s.db, m.ID); err != nil || now.PasswordHash != m.PasswordHash {
		if rerr := s.sessions.Revoke(ctx, m.ID, sess.ID); rerr != nil {
			s.logger.WarnContext(ctx, "revoke session of a changed account", slog.Any("err", rerr))
		}
		if err != nil && domain.ErrorCode(err) != domain.ENOTFOUND {
			s.writeError(w, r, err)
			return
		}
		s.writeError(w, r, errBadCredentials)
		return
	}
	if needsRehash {
		s.rehash(r, m, req.Password)
	}
	s.logger.InfoContext(ctx, "member logged in", slog.String("member_id", m.ID), slog.String("session_id", sess.ID))
	s.login.setDevice(w, m.ID)
	s.writeTokens(w, r, m, sess.ID, refresh)
}

// loginSlowed answers an attempt that came before its counter's delay was
// over, without checking the password. The answer is the same for known
// and unknown addresses.
func (s *server) loginSlowed(w http.ResponseWriter, r *http.Request, trust loginTrust, wait time.Duration) {
	secs := int64((wait + time.Second - 1) / time.Second)
	s.logger.InfoContext(r.Context(), "login slowed down", slog.String("remote_ip", clientIP(r.Context())),
		slog.String("trust", trust.String()), slog.Int64("retry_after_s", secs))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	s.writeError(w, r, domain.Errorf(codeRateLimited, "Too many failed logins; try again in %d seconds.", secs))
}

// rehash upgrades a stored hash made with older argon2 parameters. It is
// best effort: the login succeeds either way.
func (s *server) rehash(r *http.Request, m *domain.Member, password string) {
	ctx := r.Context()
	hash, err := s.passwords.Hash(ctx, password)
	if err == nil {
		_, err = (db.Members{}).ReplacePasswordHash(ctx, s.db, m.ID, m.PasswordHash, hash, s.now().UTC())
	}
	if err != nil {
		s.logger.WarnContext(ctx, "upgrade password hash", slog.String("member_id", m.ID), slog.Any("err", err))
	}
}

// writeTokens issues an access token for the session and answers both
// tokens (and the cookie, when configured).
func (s *server) writeTokens(w http.ResponseWriter, r *http.Request, m *domain.Member, sessionID, refresh string) {
	access, _, err := s.tokens.Issue(m.ID, m.Role, sessionID)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("issue access token: %w", err))
		return
	}
	if s.refreshCookie {
		http.SetCookie(w, &http.Cookie{
			Name:     refreshCookie,
			Value:    refresh,
			Path:     refreshCookiePath,
			MaxAge:   int(s.sessions.TTL().Seconds()),
			HttpOnly: true,
			Secure:   true,
			SameSite: http.SameSiteStrictMode,
		})
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, tokenResponse{
		AccessToken:  access,
		TokenType:    "Bearer",
		ExpiresIn:    int64(s.tokens.TTL().Seconds()),
		RefreshToken: refresh,
	})
}

// refreshRequest is the optional body of POST /v1/auth/refresh; without it
// the cookie is used.
type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// handleRefresh rotates a refresh token. A token that was already rotated
// revokes its session (someone else may hold it) and answers 401.
func (s *server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if err := s.decodeOptional(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	token := req.RefreshToken
	if token == "" {
		if c, err := r.Cookie(refreshCookie); err == nil {
			token = c.Value
		}
	}
	if token == "" {
		s.writeError(w, r, domain.FieldErrorf(domain.EINVALID, "refresh_token",
			"Field \"refresh_token\" is required (or the %s cookie).", refreshCookie))
		return
	}
	ctx := r.Context()
	// Read the member before rotating: once rotated, the old token is
	// spent, so a database error after that would strand the client with
	// neither token.
	sess, err := s.sessions.Lookup(ctx, token)
	if domain.ErrorCode(err) == domain.ETOKENREVOKED {
		// A replay of a rotated token: Rotate revokes the whole session.
		sess, _, err = s.sessions.Rotate(ctx, token, r.UserAgent(), clientIP(ctx))
		s.logger.WarnContext(ctx, "refresh token reused; session revoked",
			slog.String("session_id", sess.ID), slog.String("member_id", sess.MemberID),
			slog.String("remote_ip", clientIP(ctx)))
		if err == nil {
			err = domain.Errorf(domain.ETOKENREVOKED, "Refresh token was already used.")
		}
	}
	if err != nil {
		s.refreshFailed(w, r, err)
		return
	}
	m, err := (db.Members{}).FindByID(ctx, s.db, sess.MemberID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		// Deleted: every session of the member goes.
		if rerr := s.sessions.RevokeAll(ctx, sess.MemberID, ""); rerr != nil {
			s.logger.WarnContext(ctx, "revoke sessions of a deleted member", slog.Any("err", rerr))
		}
		err = domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	if err != nil {
		s.refreshFailed(w, r, err)
		return
	}
	sess, refresh, err := s.sessions.Rotate(ctx, token, r.UserAgent(), clientIP(ctx))
	if err != nil {
		// Rotated or revoked since the lookup (a concurrent refresh).
		s.refreshFailed(w, r, err)
		return
	}
	s.writeTokens(w, r, m, sess.ID, refresh)
}

// refreshFailed answers a failed refresh. Only a 401 clears the cookie: the
// token is dead then, while after a 500 it may still be good for a retry.
func (s *server) refreshFailed(w http.ResponseWriter, r *http.Request, err error) {
	if statusOf(domain.ErrorCode(err)) == http.StatusUnauthorized {
		s.clearRefreshCookie(w)
	}
	s.writeAuthError(w, r, err)
}

// handleLogout ends the session (with its refresh token and every access
// token of it) and puts this access token on the deny-list for the rest of
// its life.
func (s *server) handleLogout(w http.ResponseWriter, r *http.Request) {
	c := mustClaims(r)
	ctx := r.Context()
	if err := s.sessions.Revoke(ctx, c.MemberID, c.SessionID); err != nil && domain.ErrorCode(err) != domain.ENOTFOUND {
		s.writeError(w, r, fmt.Errorf("revoke session: %w", err))
		return
	}
	s.deny(ctx, c)
	s.clearRefreshCookie(w)
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) clearRefreshCookie(w http.ResponseWriter) {
	if !s.refreshCookie {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: refreshCookie, Value: "", Path: refreshCookiePath, MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// deny puts the request's access token on the deny-list after its session
// was revoked. The revocation in SQL already ends the token, so a Redis
// failure here is logged, not answered: the deny-list only spares the
// session check a round trip.
func (s *server) deny(ctx context.Context, c auth.Claims) {
	if err := s.sessions.Deny(ctx, c.ID, c.ExpiresAt); err != nil {
		s.logger.WarnContext(ctx, "deny access token", slog.Any("err", err))
	}
}
