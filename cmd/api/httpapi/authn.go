package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

const claimsKey ctxKey = clientIPKey + 1

// claimsFrom returns the verified access token of the request; ok is false
// outside routes behind authenticate.
func claimsFrom(ctx context.Context) (auth.Claims, bool) {
	c, ok := ctx.Value(claimsKey).(auth.Claims)
	return c, ok
}

// mustClaims is claimsFrom for handlers mounted behind authenticate.
func mustClaims(r *http.Request) auth.Claims {
	c, ok := claimsFrom(r.Context())
	if !ok {
		panic("httpapi: handler needs authenticate middleware")
	}
	return c
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// verify checks an access token's signature and claims, then asks the
// session store (a Redis cache in front of SQL) whether it was revoked.
func (s *server) verify(ctx context.Context, token string) (auth.Claims, error) {
	c, err := s.tokens.Parse(token)
	if err != nil {
		return auth.Claims{}, err
	}
	if err := s.sessions.Check(ctx, c.ID, c.SessionID, c.MemberID); err != nil {
		return auth.Claims{}, err
	}
	return c, nil
}

// authenticate requires a valid access token; the handlers behind it read
// it with mustClaims.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="moim"`)
			s.writeError(w, r, domain.Errorf(domain.EUNAUTHORIZED, "An access token is required (Authorization: Bearer)."))
			return
		}
		c, err := s.verify(r.Context(), token)
		if err == nil {
			err = s.requireVerifiedEmail(r, c.MemberID)
		}
		if err != nil {
			s.writeAuthError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey, c)))
	})
}

// writeAuthError answers a token failure with the RFC 6750 challenge.
func (s *server) writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	if statusOf(domain.ErrorCode(err)) == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="moim", error="invalid_token"`)
	}
	s.writeError(w, r, err)
}

// requireAdmin guards the admin endpoints and the queue UI. It takes either
// the access token of a member who is an admin now (by SQL, not by the
// token's role claim; a member's gets 403) or the operator's Basic
// credentials, which a browser can send to the queue UI; nothing of the
// guarded handler runs otherwise.
func (s *server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token, ok := bearerToken(r); ok {
			c, err := s.verify(r.Context(), token)
			if err != nil {
				s.writeAuthError(w, r, err)
				return
			}
			role, err := currentRole(r.Context(), s.db, c.MemberID)
			if err != nil {
				s.writeAuthError(w, r, err)
				return
			}
			if role != domain.RoleAdmin {
				s.writeError(w, r, domain.Errorf(domain.EFORBIDDEN, "Admins only."))
				return
			}
			c.Role = role
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey, c)))
			return
		}
		if !s.admin.ok(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="moim admin"`)
			s.writeError(w, r, domain.Errorf(domain.EUNAUTHORIZED, "Admin credentials required."))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// currentRole reads the member's role from SQL. Decisions that need admin
// rights must not rest on the token's role claim, which outlives a
// demotion by up to the access-token lifetime. They are few and rare, so
// there is no cache: a demotion counts from the request after it commits.
// A deleted member gives ETOKENREVOKED.
func currentRole(ctx context.Context, idb bun.IDB, memberID string) (domain.Role, error) {
	m, err := (db.Members{}).FindByID(ctx, idb, memberID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return 0, domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	if err != nil {
		return 0, fmt.Errorf("read role: %w", err)
	}
	return m.Role, nil
}
