package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// oauthCookiePath scopes the flow's browser-secret cookie to the callback.
const oauthCookiePath = "/v1/auth/oauth"

// nicknameAttempts bounds the tries for a free nickname at a social sign-up.
const nicknameAttempts = 10

// registerOAuthRoutes mounts social login and the member's linked
// accounts. Starting and finishing a login answer anyone, so they share a
// per-IP limit with the password login.
func (s *server) registerOAuthRoutes(r chi.Router, limits RateLimits) {
	r.Group(func(r chi.Router) {
		r.Use(noStore)
		r.Get("/v1/auth/providers", s.handleProviderList)
		r.Group(func(r chi.Router) {
			r.Use(s.limitByIP(s.newLimiter("oauth-ip", limits.LoginPerIP)))
			r.Get("/v1/auth/oauth/{provider}", s.handleOAuthStart)
			r.Get("/v1/auth/oauth/{provider}/callback", s.handleOAuthCallback)
		})
		r.Group(func(r chi.Router) {
			r.Use(s.authenticate)
			r.Get("/v1/me/identities", s.handleIdentityList)
			r.Post("/v1/me/identities/{provider}", s.handleIdentityLinkStart)
			r.Delete("/v1/me/identities/{provider}", s.handleIdentityDelete)
		})
	})
}

type providerListResponse struct {
	Providers []string `json:"providers"`
}

// handleProviderList names the configured providers, for a login page.
func (s *server) handleProviderList(w http.ResponseWriter, r *http.Request) {
	names := s.social.Names()
	if names == nil {
		names = []string{}
	}
	s.writeJSON(w, r, http.StatusOK, providerListResponse{Providers: names})
}

// handleOAuthStart sends the browser to the provider, with the flow's
// secret in a cookie only this browser has.
func (s *server) handleOAuthStart(w http.ResponseWriter, r *http.Request) {
	u, err := s.startOAuth(w, r, "")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, u, http.StatusFound)
}

// startOAuth begins a flow for linkMember ("" to log in) and sets its
// cookie; it returns the provider's URL.
func (s *server) startOAuth(w http.ResponseWriter, r *http.Request, linkMember string) (string, error) {
	provider := chi.URLParam(r, "provider")
	u, secret, err := s.social.Start(r.Context(), provider, linkMember)
	if err != nil {
		return "", err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     auth.CookieName(provider),
		Value:    secret,
		Path:     oauthCookiePath,
		MaxAge:   int(s.social.StateTTL().Seconds()),
		HttpOnly: true,
		Secure:   true,
		// Lax, not Strict: the callback is a top-level navigation coming
		// from the provider's site.
		SameSite: http.SameSiteLaxMode,
	})
	return u, nil
}

// handleOAuthCallback ends a flow: it logs in (signing up first when the
// account is new) or, for a flow started by a member, links the account.
func (s *server) handleOAuthCallback(w http.ResponseWriter, r *http.Request) {
	provider := chi.URLParam(r, "provider")
	q := r.URL.Query()
	cb := auth.Callback{Provider: provider, State: q.Get("state"), Code: q.Get("code"),
		Error: q.Get("error"), ErrorDescription: q.Get("error_description")}
	if c, err := r.Cookie(auth.CookieName(provider)); err == nil {
		cb.BrowserSecret = c.Value
	}
	prof, err := s.social.Finish(r.Context(), cb)
	if domain.ValidProviderName(provider) {
		// Spent whatever the outcome: a new attempt starts a new flow.
		http.SetCookie(w, &http.Cookie{Name: auth.CookieName(provider), Value: "", Path: oauthCookiePath,
			MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	}
	if err != nil {
		if code := domain.ErrorCode(err); code == domain.EPROVIDERFAILED || code == domain.EINVALIDIDTOKEN {
			s.logger.WarnContext(r.Context(), "social login failed", slog.String("provider", provider), slog.Any("err", err))
		}
		s.writeError(w, r, err)
		return
	}
	if prof.LinkMember != "" {
		s.linkIdentity(w, r, prof)
		return
	}
	s.socialLogin(w, r, prof)
}

// socialLogin logs in the member of the provider account, linking it first
// to the member with its e-mail address when the provider vouches for the
// address, or signing up a new member. A race with another callback for
// the same account or address is settled by the unique keys and one more
// look.
func (s *server) socialLogin(w http.ResponseWriter, r *http.Request, prof *auth.Profile) {
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		m, err := s.socialMember(ctx, prof)
		if code := domain.ErrorCode(err); attempt < 2 && (code == domain.EIDENTITYTAKEN || code == domain.EEMAILTAKEN) {
			continue
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		sess, refresh, err := s.sessions.Create(ctx, m.ID, r.UserAgent(), clientIP(ctx))
		if err != nil {
			s.writeError(w, r, fmt.Errorf("create session: %w", err))
			return
		}
		s.logger.InfoContext(ctx, "member logged in", slog.String("member_id", m.ID),
			slog.String("session_id", sess.ID), slog.String("provider", prof.Provider))
		s.writeTokens(w, r, m, sess.ID, refresh)
		return
	}
}

// socialMember finds, links or creates the member of prof's account.
func (s *server) socialMember(ctx context.Context, prof *auth.Profile) (*domain.Member, error) {
	id, err := (db.Identities{}).FindBySubject(ctx, s.db, prof.Provider, prof.Subject)
	if err == nil {
		return (db.Members{}).FindByID(ctx, s.db, id.MemberID)
	}
	if domain.ErrorCode(err) != domain.ENOTFOUND {
		return nil, err
	}
	if prof.Email != "" {
		m, err := (db.Members{}).FindByEmail(ctx, s.db, prof.Email)
		switch {
		case err == nil && !prof.EmailVerified:
			// Linking on an address the provider does not vouch for would
			// hand the account to whoever typed it in there.
			return nil, domain.Errorf(domain.ELINKREQUIRED,
				"A member has this e-mail address, but %s does not say it is verified: log in and link the account from POST /v1/me/identities/%s.",
				prof.Provider, prof.Provider)
		case err == nil:
			if err := (db.Identities{}).Create(ctx, s.db, s.newIdentity(prof, m.ID)); err != nil {
				return nil, err
			}
			s.logger.InfoContext(ctx, "identity linked by verified e-mail", slog.String("member_id", m.ID),
				slog.String("provider", prof.Provider))
			return m, nil
		case domain.ErrorCode(err) != domain.ENOTFOUND:
			return nil, err
		}
	}
	return s.socialSignup(ctx, prof)
}

func (s *server) newIdentity(prof *auth.Profile, memberID string) *domain.Identity {
	return &domain.Identity{MemberID: memberID, Provider: prof.Provider, Subject: prof.Subject,
		Email: prof.Email, CreatedAt: s.now().UTC()}
}

// socialSignup creates a member with the provider account linked. The
// member has no password (and so logs in only through linked accounts) and
// the provider's address only when the provider vouches for it. The
// nickname is the profile's, numbered when taken.
func (s *server) socialSignup(ctx context.Context, prof *auth.Profile) (*domain.Member, error) {
	base := domain.NicknameFromProfile(prof.Nickname)
	var err error
	for attempt := range nicknameAttempts {
		n := attempt
		if attempt >= nicknameAttempts/2 {
			// Numbered names are crowded: jump somewhere random.
			n = 10 + rand.IntN(100_000)
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		m := domain.Member{
			Nickname:  domain.NicknameCandidate(base, n),
			Prefs:     domain.DefaultNotificationPrefs(),
			Role:      domain.RoleMember,
			CreatedAt: now,
			UpdatedAt: now,
		}
		if prof.EmailVerified {
			m.Email = prof.Email
		}
		err = db.RunInTx(ctx, s.db, func(ctx context.Context, tx bun.Tx) error {
			if err := (db.Members{}).Create(ctx, tx, &m); err != nil {
				return err
			}
			return (db.Identities{}).Create(ctx, tx, s.newIdentity(prof, m.ID))
		})
		if domain.ErrorCode(err) == domain.ENICKNAMETAKEN {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.logger.InfoContext(ctx, "member signed up", slog.String("member_id", m.ID), slog.String("provider", prof.Provider))
		return &m, nil
	}
	return nil, err
}

// identityResponse is a linked account as its member sees it.
type identityResponse struct {
	Provider  string    `json:"provider"`
	Email     *string   `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

func newIdentityResponse(id *domain.Identity) identityResponse {
	return identityResponse{Provider: id.Provider, Email: nullable(id.Email), CreatedAt: id.CreatedAt.UTC()}
}

// linkIdentity links the account of a flow a member started to that
// member; the signed state says who.
func (s *server) linkIdentity(w http.ResponseWriter, r *http.Request, prof *auth.Profile) {
	ctx := r.Context()
	have, err := (db.Identities{}).FindBySubject(ctx, s.db, prof.Provider, prof.Subject)
	switch {
	case err == nil && have.MemberID == prof.LinkMember:
		// Linking again what is linked already is no error.
		s.writeJSON(w, r, http.StatusOK, newIdentityResponse(have))
		return
	case err == nil:
		err = domain.Errorf(domain.EIDENTITYTAKEN, "That %s account is linked to another member.", prof.Provider)
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		// The unique keys settle a race with another link or sign-up.
		id := s.newIdentity(prof, prof.LinkMember)
		if err = (db.Identities{}).Create(ctx, s.db, id); err == nil {
			s.logger.InfoContext(ctx, "identity linked", slog.String("member_id", prof.LinkMember), slog.String("provider", prof.Provider))
			s.writeJSON(w, r, http.StatusCreated, newIdentityResponse(id))
			return
		}
	}
	s.writeError(w, r, err)
}

type identityListResponse struct {
	Identities []identityResponse `json:"identities"`
	// HasPassword says whether the member can log in with a password too.
	HasPassword bool `json:"has_password"`
}

func (s *server) handleIdentityList(w http.ResponseWriter, r *http.Request) {
	m, err := s.currentMember(r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	ids, err := (db.Identities{}).ListByMember(r.Context(), s.db, m.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := identityListResponse{Identities: make([]identityResponse, len(ids)), HasPassword: m.PasswordHash != ""}
	for i := range ids {
		resp.Identities[i] = newIdentityResponse(&ids[i])
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

type linkStartResponse struct {
	RedirectURL string `json:"redirect_url"`
}

// handleIdentityLinkStart starts a flow that links the provider account to
// the member instead of logging in: the browser that got the cookie opens
// redirect_url, and the callback links.
func (s *server) handleIdentityLinkStart(w http.ResponseWriter, r *http.Request) {
	u, err := s.startOAuth(w, r, mustClaims(r).MemberID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, linkStartResponse{RedirectURL: u})
}

func (s *server) handleIdentityDelete(w http.ResponseWriter, r *http.Request) {
	c := mustClaims(r)
	provider := chi.URLParam(r, "provider")
	if err := (db.Identities{}).Delete(r.Context(), s.db, c.MemberID, provider, s.now().UTC()); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.logger.InfoContext(r.Context(), "identity unlinked", slog.String("member_id", c.MemberID), slog.String("provider", provider))
	w.WriteHeader(http.StatusNoContent)
}
