package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// TestTokensSignedButInconsistent: tokens made with the real key (as a
// leaked key would make them) that Issue never makes are refused: a sid of
// another member's session, and an exp further after iat than the
// configured lifetime.
func TestTokensSignedButInconsistent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s := newServer(t, e, nil, nil)
		mina := s.signup(t, "mina@example.com", "mina")
		s.signup(t, "joon@example.com", "joon")
		joonTok := s.login(t, "joon@example.com")
		joon, err := e.tokens.Parse(joonTok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		// Mina's id with Joon's live session.
		forged, _, err := e.tokens.Issue(mina.ID, domain.RoleMember, joon.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		// Same key and clock as the server's tokens, a day's lifetime.
		long, err := auth.NewTokens(auth.TokenParams{Key: testJWTKey, TTL: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		minaTok := s.login(t, "mina@example.com")
		mc, err := e.tokens.Parse(minaTok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		longLived, _, err := long.Issue(mina.ID, domain.RoleMember, mc.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct{ name, token string }{
			{"another member's sid", forged},
			// Twice: the first check filled the session cache.
			{"another member's sid, cached", forged},
			{"exp a day after iat", longLived},
		} {
			resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tt.token})
			checkError(t, resp, body, http.StatusUnauthorized, "invalid_token", "")
		}
		// The real tokens of both still work.
		for _, tok := range []string{joonTok.AccessToken, minaTok.AccessToken} {
			if resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tok}); resp.StatusCode != http.StatusOK {
				t.Errorf("real token: status = %d (body %s)", resp.StatusCode, body)
			}
		}
	})
}

// TestAdminRoleIsReadNow: admin routes go by the member's role in SQL, not
// by the role claim of a token that is still valid.
func TestAdminRoleIsReadNow(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		boss := s.signup(t, "boss@example.com", "boss")
		setRole := func(id string, role domain.Role) {
			t.Helper()
			if err := (db.Members{}).SetRole(t.Context(), bdb, id, role, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
		}
		ping := func(token string) (*http.Response, []byte) {
			return s.do(t, request{method: http.MethodPost, path: "/v1/admin/pings", token: token})
		}
		setRole(boss.ID, domain.RoleAdmin)
		tok := s.login(t, "boss@example.com") // says "admin"
		if resp, body := ping(tok.AccessToken); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("admin: status = %d (body %s)", resp.StatusCode, body)
		}
		pingsBefore, outboxBefore := stored(t, bdb)

		setRole(boss.ID, domain.RoleMember)
		resp, body := ping(tok.AccessToken)
		checkError(t, resp, body, http.StatusForbidden, "forbidden", "")
		if p, o := stored(t, bdb); p != pingsBefore || o != outboxBefore {
			t.Errorf("a demoted admin's request stored %d pings, %d outbox rows; want %d, %d", p, o, pingsBefore, outboxBefore)
		}
		// The token is otherwise fine: member routes still take it.
		if resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tok.AccessToken}); resp.StatusCode != http.StatusOK {
			t.Errorf("member route: status = %d (body %s)", resp.StatusCode, body)
		}

		// Promotion takes effect as soon, with a token that says "member".
		member := s.login(t, "boss@example.com")
		setRole(boss.ID, domain.RoleAdmin)
		if resp, body := ping(member.AccessToken); resp.StatusCode != http.StatusAccepted {
			t.Errorf("promoted member: status = %d (body %s)", resp.StatusCode, body)
		}
	})
}
