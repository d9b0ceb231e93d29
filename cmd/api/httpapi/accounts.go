package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// AccountParams configure e-mail and phone verification and password
// reset. Zero values take the defaults below.
type AccountParams struct {
	// Key derives and hashes codes and reset tokens; the worker holds the
	// same. Required.
	Key            []byte
	EmailCodeTTL   time.Duration
	PhoneCodeTTL   time.Duration
	ResetTokenTTL  time.Duration
	Attempts       int
	ResendInterval time.Duration
	// PerDay bounds the codes of one kind to one member in 24 hours, and
	// the reset mails to one address.
	PerDay int
	// SMSPerNumberPerDay bounds the verification SMS to one number in 24
	// hours, whichever members ask.
	SMSPerNumberPerDay int
	// RequireVerifiedEmail names features (domain.EmailGatedFeatures) whose
	// changes need a verified e-mail address.
	RequireVerifiedEmail []string
}

// The defaults of AccountParams.
const (
	DefaultEmailCodeTTL       = 10 * time.Minute
	DefaultPhoneCodeTTL       = 5 * time.Minute
	DefaultResetTokenTTL      = 30 * time.Minute
	DefaultCodeAttempts       = 5
	DefaultCodesPerDay        = 10
	DefaultSMSPerNumberPerDay = 5
)

// sendWindow is the window of the daily send limits.
const sendWindow = 24 * time.Hour

func (p AccountParams) withDefaults() AccountParams {
	if p.EmailCodeTTL <= 0 {
		p.EmailCodeTTL = DefaultEmailCodeTTL
	}
	if p.PhoneCodeTTL <= 0 {
		p.PhoneCodeTTL = DefaultPhoneCodeTTL
	}
	if p.ResetTokenTTL <= 0 {
		p.ResetTokenTTL = DefaultResetTokenTTL
	}
	if p.Attempts <= 0 {
		p.Attempts = DefaultCodeAttempts
	}
	if p.PerDay <= 0 {
		p.PerDay = DefaultCodesPerDay
	}
	if p.SMSPerNumberPerDay <= 0 {
		p.SMSPerNumberPerDay = DefaultSMSPerNumberPerDay
	}
	return p
}

func (p AccountParams) ttl(purpose domain.CodePurpose) time.Duration {
	switch purpose {
	case domain.CodePhone:
		return p.PhoneCodeTTL
	case domain.CodeReset:
		return p.ResetTokenTTL
	}
	return p.EmailCodeTTL
}

// gatedPrefixes are the path prefixes whose changes need a verified
// e-mail address.
func (p AccountParams) gatedPrefixes() []string {
	all := domain.EmailGatedFeatures()
	var out []string
	for _, f := range p.RequireVerifiedEmail {
		out = append(out, all[f]...)
	}
	return out
}

// registerAccountRoutes mounts e-mail and phone verification and the
// password reset.
func (s *server) registerAccountRoutes(r chi.Router, limits RateLimits) {
	r = r.With(noStore)
	// Reset requests answer anyone, like sign-up, and share its per-IP rate.
	r.With(s.limitByIP(s.newLimiter("reset-ip", limits.SignupPerIP))).Post("/v1/auth/password-reset", s.handleResetRequest)
	r.With(s.limitByIP(s.newLimiter("reset-confirm-ip", limits.LoginPerIP))).Post("/v1/auth/password-reset/confirm", s.handleResetConfirm)
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/me/email/verification", s.handleEmailResend)
		r.Post("/v1/me/email/verify", s.handleEmailVerify)
		r.Post("/v1/me/phone", s.handlePhoneStart)
		r.Post("/v1/me/phone/verify", s.handlePhoneVerify)
	})
}

// codeSentResponse answers a request that sends a code.
type codeSentResponse struct {
	// Target is where it goes: the address (for a change, the new one) or
	// the number.
	Target    string    `json:"target"`
	ExpiresAt time.Time `json:"expires_at"`
}

// issueCode records a code for target and its send task in tx, after
// checking the send limits. The member's row is locked first (a no-op
// update), so one member's concurrent requests count one after the other;
// memberID "" (a reset for an unknown address) locks nothing but runs the
// same statements. limited reports a request over a limit that the caller
// wants answered as if it went through (resets); otherwise it is an
// ESENDLIMIT error.
func (s *server) issueCode(ctx context.Context, tx bun.IDB, purpose domain.CodePurpose, memberID, target string, now time.Time, quiet bool) (c *domain.AccountCode, limited bool, err error) {
	if _, err := tx.NewUpdate().Table("members").Set("id = id").Where("public_id = ?", memberID).Exec(ctx); err != nil {
		return nil, false, fmt.Errorf("lock member: %w", err)
	}
	counts, err := (db.AccountCodes{}).CountSends(ctx, tx, purpose, memberID, target, now.Add(-sendWindow))
	if err != nil {
		return nil, false, err
	}
	if err := s.checkSendLimits(purpose, counts, now); err != nil {
		if quiet {
			return nil, true, nil
		}
		return nil, false, err
	}
	id := db.NewAccountCodeID()
	c = &domain.AccountCode{
		ID:        id,
		Purpose:   purpose,
		MemberID:  memberID,
		Target:    target,
		CodeHash:  domain.HashAccountCode(s.accounts.Key, id, domain.AccountCodeSecret(s.accounts.Key, id, purpose)),
		ExpiresAt: now.Add(s.accounts.ttl(purpose)),
		CreatedAt: now,
	}
	if err := (db.AccountCodes{}).Create(ctx, tx, c); err != nil {
		return nil, false, err
	}
	task, err := jobs.NewAccountSendCodeTask(c)
	if err != nil {
		return nil, false, err
	}
	if err := jobs.Enqueue(ctx, tx, task); err != nil {
		return nil, false, fmt.Errorf("enqueue account code: %w", err)
	}
	return c, false, nil
}

// checkSendLimits refuses a send beyond the member's daily count, sooner
// than the resend interval after the member's last one, or (SMS) beyond
// the number's daily count; a reset counts by address.
func (s *server) checkSendLimits(purpose domain.CodePurpose, n db.SendCounts, now time.Time) error {
	p := s.accounts
	switch {
	case n.Member >= p.PerDay, purpose == domain.CodeReset && n.Target >= p.PerDay:
		return domain.Errorf(domain.ESENDLIMIT, "Too many codes were sent today; try again tomorrow.")
	case purpose == domain.CodePhone && n.Target >= p.SMSPerNumberPerDay:
		return domain.FieldErrorf(domain.ESENDLIMIT, "phone", "Too many codes were sent to this number today; try again tomorrow.")
	case !n.Last.IsZero() && now.Sub(n.Last) < p.ResendInterval:
		wait := p.ResendInterval - now.Sub(n.Last)
		return domain.Errorf(domain.ESENDLIMIT, "A code was sent just now; ask again in %d seconds.", int((wait+time.Second-1)/time.Second))
	}
	return nil
}

// checkCode spends one attempt on c and checks code against it. Every try
// counts, the right one too, so concurrent guesses stay within the bound.
func (s *server) checkCode(ctx context.Context, c *domain.AccountCode, code, field string, now time.Time) error {
	if err := c.CheckUsable(now, s.accounts.Attempts, field); err != nil {
		return err
	}
	counted, err := (db.AccountCodes{}).CountAttempt(ctx, s.db, c.ID, s.accounts.Attempts, now)
	if err != nil {
		return err
	}
	if !counted {
		// Used, or its attempts spent, since it was read.
		fresh, err := (db.AccountCodes{}).FindByID(ctx, s.db, c.ID, c.Purpose, field)
		if err != nil {
			return err
		}
		if err := fresh.CheckUsable(now, s.accounts.Attempts, field); err != nil {
			return err
		}
		return domain.FieldErrorf(domain.ECODEUSED, field, "This code was used already.")
	}
	if !c.CodeMatches(s.accounts.Key, code) {
		left := s.accounts.Attempts - c.Attempts - 1
		return domain.FieldErrorf(domain.ECODEWRONG, field, "Wrong code; %d attempts left.", max(left, 0))
	}
	return nil
}

// useCode marks c used in tx; of concurrent uses exactly one gets nil.
func useCode(ctx context.Context, tx bun.IDB, c *domain.AccountCode, field string, now time.Time) error {
	ok, err := (db.AccountCodes{}).MarkUsed(ctx, tx, c.ID, now)
	if err != nil {
		return err
	}
	if !ok {
		return domain.FieldErrorf(domain.ECODEUSED, field, "This code was used already.")
	}
	return nil
}

// pendingEmail is the address the member asked to change to and has not
// verified yet, or "".
func pendingEmail(ctx context.Context, idb bun.IDB, m *domain.Member) (string, error) {
	c, err := (db.AccountCodes{}).Latest(ctx, idb, m.ID, domain.CodeEmail, "code")
	if domain.ErrorCode(err) == domain.ECODEEXPIRED {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if c.UsedAt == nil && c.Target != m.Email {
		return c.Target, nil
	}
	return "", nil
}

// handleEmailResend sends a new code to the pending address, or to the
// member's own while it is unverified.
func (s *server) handleEmailResend(w http.ResponseWriter, r *http.Request) {
	m, err := s.currentMember(r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	ctx := r.Context()
	target, err := pendingEmail(ctx, s.db, m)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if target == "" {
		if m.EmailVerifiedAt != nil {
			s.writeError(w, r, domain.Errorf(domain.EALREADYVERIFIED, "Your e-mail address is verified already."))
			return
		}
		target = m.Email
	}
	s.sendCode(w, r, domain.CodeEmail, m.ID, target)
}

// sendCode issues a code in its own transaction and answers 202.
func (s *server) sendCode(w http.ResponseWriter, r *http.Request, purpose domain.CodePurpose, memberID, target string) {
	ctx := r.Context()
	now := s.now().UTC().Truncate(time.Microsecond)
	var c *domain.AccountCode
	err := s.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		c, _, err = s.issueCode(ctx, tx, purpose, memberID, target, now, false)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusAccepted, codeSentResponse{Target: c.Target, ExpiresAt: c.ExpiresAt})
}

// codeRequest is the body of the verify endpoints.
type codeRequest struct {
	Code string `json:"code"`
}

func (req *codeRequest) Validate() error {
	var err error
	req.Code, err = domain.NormalizeCode("code", req.Code)
	return err
}

// handleEmailVerify checks the code of the member's latest e-mail code and
// makes its address the member's, verified.
func (s *server) handleEmailVerify(w http.ResponseWriter, r *http.Request) {
	s.verifyCode(w, r, domain.CodeEmail, func(ctx context.Context, tx bun.Tx, c *domain.AccountCode, now time.Time) error {
		return (db.Members{}).VerifyEmail(ctx, tx, c.MemberID, c.Target, now)
	})
}

// handlePhoneVerify checks the member's latest SMS code and makes its
// number the member's, verified.
func (s *server) handlePhoneVerify(w http.ResponseWriter, r *http.Request) {
	s.verifyCode(w, r, domain.CodePhone, func(ctx context.Context, tx bun.Tx, c *domain.AccountCode, now time.Time) error {
		return (db.Members{}).VerifyPhone(ctx, tx, c.MemberID, c.Target, now)
	})
}

// verifyCode is the shared body of the verify endpoints: check the code
// of the member's latest one, then apply it with the code's use in one
// transaction, and answer the member.
func (s *server) verifyCode(w http.ResponseWriter, r *http.Request, purpose domain.CodePurpose,
	apply func(context.Context, bun.Tx, *domain.AccountCode, time.Time) error) {
	var req codeRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	memberID := mustClaims(r).MemberID
	now := s.now().UTC().Truncate(time.Microsecond)
	c, err := (db.AccountCodes{}).Latest(ctx, s.db, memberID, purpose, "code")
	if err == nil {
		err = s.checkCode(ctx, c, req.Code, "code", now)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var m *domain.Member
	err = s.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := useCode(ctx, tx, c, "code", now); err != nil {
			return err
		}
		if err := apply(ctx, tx, c, now); err != nil {
			return err
		}
		m, err = (db.Members{}).FindByID(ctx, tx, memberID)
		return err
	})
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	s.logger.InfoContext(ctx, "account code verified", slog.String("member_id", memberID), slog.String("purpose", purpose.String()))
	s.writeJSON(w, r, http.StatusOK, newMemberResponse(m))
}

// phoneRequest is the body of POST /v1/me/phone.
type phoneRequest struct {
	Phone string `json:"phone"`
}

func (req *phoneRequest) Validate() error {
	if strings.TrimSpace(req.Phone) == "" {
		return domain.FieldErrorf(domain.EINVALID, "phone", "Field \"phone\" is required.")
	}
	var err error
	req.Phone, err = domain.NormalizePhone(req.Phone)
	return err
}

// handlePhoneStart sends an SMS code to a number the member wants to use;
// the number becomes theirs once the code comes back.
func (s *server) handlePhoneStart(w http.ResponseWriter, r *http.Request) {
	var req phoneRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, err := s.currentMember(r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	if m.Phone == req.Phone && m.PhoneVerifiedAt != nil {
		s.writeError(w, r, domain.FieldErrorf(domain.EALREADYVERIFIED, "phone", "This number is verified already."))
		return
	}
	s.sendCode(w, r, domain.CodePhone, m.ID, req.Phone)
}

// resetRequest is the body of POST /v1/auth/password-reset.
type resetRequest struct {
	Email string `json:"email"`
}

func (req *resetRequest) Validate() error {
	var err error
	req.Email, err = domain.NormalizeEmail("email", req.Email)
	return err
}

// handleResetRequest answers 202 whatever the address. Known and unknown
// addresses run the same statements and hashes: the lookup, the lock (of
// no row for an unknown one), the count, and the insert of the code and
// its task; the worker sends nothing for a code without a member. Over
// the address's daily limit nothing is recorded, again for both.
func (s *server) handleResetRequest(w http.ResponseWriter, r *http.Request) {
	var req resetRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	memberID := ""
	m, err := (db.Members{}).FindByEmail(ctx, s.db, req.Email)
	switch {
	case err == nil:
		memberID = m.ID
	case domain.ErrorCode(err) != domain.ENOTFOUND:
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	err = s.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		_, _, err := s.issueCode(ctx, tx, domain.CodeReset, memberID, req.Email, now, true)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// resetConfirmRequest is the body of POST /v1/auth/password-reset/confirm.
type resetConfirmRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (req *resetConfirmRequest) Validate() error {
	req.Token = strings.TrimSpace(req.Token)
	if req.Token == "" {
		return domain.FieldErrorf(domain.EINVALID, "token", "Field \"token\" is required.")
	}
	if id, _, ok := strings.Cut(req.Token, "."); !ok || id == "" || len(req.Token) > 128 {
		return domain.FieldErrorf(domain.EINVALID, "token", "Field \"token\" is not a reset token.")
	}
	return domain.ValidatePassword("password", req.Password)
}

// handleResetConfirm sets the new password with a reset token, ends every
// session of the member (which refuses their live access tokens at their
// next request) and answers 204.
func (s *server) handleResetConfirm(w http.ResponseWriter, r *http.Request) {
	var req resetConfirmRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	now := s.now().UTC().Truncate(time.Microsecond)
	id, _, _ := strings.Cut(req.Token, ".")
	c, err := (db.AccountCodes{}).FindByID(ctx, s.db, id, domain.CodeReset, "token")
	if err == nil && c.MemberID == "" {
		// Never sent: no such account. Answered as a stale link.
		err = domain.FieldErrorf(domain.ECODEEXPIRED, "token", "This link has expired; ask for a new one.")
	}
	if err == nil {
		err = s.checkCode(ctx, c, req.Token, "token", now)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hash, err := s.passwords.Hash(ctx, req.Password)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("hash password: %w", err))
		return
	}
	err = s.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := useCode(ctx, tx, c, "token", now); err != nil {
			return err
		}
		_, err := (db.Members{}).Update(ctx, tx, c.MemberID, domain.MemberUpdate{PasswordHash: &hash}, now)
		return err
	})
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		err = domain.FieldErrorf(domain.ECODEEXPIRED, "token", "This link has expired; ask for a new one.")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// After the commit, as for a password change: a login racing this sees
	// the new hash and gives its session up (handleLogin).
	if err := s.sessions.RevokeAll(ctx, c.MemberID, ""); err != nil {
		s.writeError(w, r, fmt.Errorf("revoke sessions: %w", err))
		return
	}
	s.logger.InfoContext(ctx, "password reset", slog.String("member_id", c.MemberID))
	w.WriteHeader(http.StatusNoContent)
}

// requireVerifiedEmail refuses changes to the gated features from a
// member whose e-mail address is unverified. It runs inside authenticate,
// and only when a feature is gated, so nobody else pays the read.
func (s *server) requireVerifiedEmail(r *http.Request, memberID string) error {
	if len(s.gated) == 0 {
		return nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	gated := false
	for _, p := range s.gated {
		if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
			gated = true
			break
		}
	}
	if !gated {
		return nil
	}
	m, err := (db.Members{}).FindByID(r.Context(), s.db, memberID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	if err != nil {
		return err
	}
	if m.EmailVerifiedAt == nil {
		return domain.Errorf(domain.EEMAILUNVERIFIED, "Verify your e-mail address first (POST /v1/me/email/verify).")
	}
	return nil
}
