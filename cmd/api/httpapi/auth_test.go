package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
)

// memberBody is a member as the API shows it to the member.
type memberBody struct {
	ID            string  `json:"id"`
	Email         string  `json:"email"`
	Nickname      string  `json:"nickname"`
	Phone         *string `json:"phone"`
	SMSConsent    bool    `json:"sms_consent"`
	SlackEmail    *string `json:"slack_email"`
	Notifications struct {
		Mail  bool `json:"mail"`
		SMS   bool `json:"sms"`
		Slack bool `json:"slack"`
	} `json:"notifications"`
	Role      string             `json:"role"`
	Avatar    *attachedImageBody `json:"avatar"`
	CreatedAt string             `json:"created_at"`
	UpdatedAt string             `json:"updated_at"`

	EmailVerified bool    `json:"email_verified"`
	PhoneVerified bool    `json:"phone_verified"`
	PendingEmail  *string `json:"pending_email"`
}

// tokenBody is the answer of login and refresh.
type tokenBody struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// decodeStrict decodes body into v, refusing fields v does not have, so a
// response that grows a field (a password hash, say) fails the test.
func decodeStrict(t testing.TB, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

// countMembers counts member rows, deleted ones included.
func countMembers(t *testing.T, bdb *bun.DB) int {
	t.Helper()
	n, err := bdb.NewSelect().Table("members").Count(context.Background())
	if err != nil {
		t.Fatalf("count members: %v", err)
	}
	return int(n)
}

func signupBody(email, nickname string) string {
	return fmt.Sprintf(`{"email":%q,"password":"correct horse battery","nickname":%q}`, email, nickname)
}

// signup creates a member and fails the test otherwise.
func (s *testServer) signup(t testing.TB, email, nickname string) memberBody {
	t.Helper()
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/signup", body: signupBody(email, nickname)})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("signup %s: status = %d, want 201 (body %s)", email, resp.StatusCode, body)
	}
	var m memberBody
	decodeStrict(t, body, &m)
	return m
}

// login logs in with the password signup uses.
func (s *testServer) login(t testing.TB, email string) tokenBody {
	t.Helper()
	return s.loginAs(t, email, "correct horse battery", nil)
}

func (s *testServer) loginAs(t testing.TB, email, password string, header map[string]string) tokenBody {
	t.Helper()
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/login", header: header,
		body: fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s: status = %d, want 200 (body %s)", email, resp.StatusCode, body)
	}
	var tok tokenBody
	decodeStrict(t, body, &tok)
	return tok
}

func (s *testServer) refresh(t *testing.T, refreshToken string) (*http.Response, []byte) {
	t.Helper()
	return s.do(t, request{method: http.MethodPost, path: "/v1/auth/refresh",
		body: fmt.Sprintf(`{"refresh_token":%q}`, refreshToken)})
}

func TestAuthFlow(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)

		resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/signup",
			body: `{"email":" Mina@Example.COM ","password":"correct horse battery","nickname":"미나",` +
				`"phone":"010-1234-5678","sms_consent":true,"notifications":{"slack":false}}`})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("signup status = %d, want 201 (body %s)", resp.StatusCode, body)
		}
		var m memberBody
		decodeStrict(t, body, &m)
		if m.ID == "" || m.Email != "mina@example.com" || m.Nickname != "미나" || m.Role != "member" ||
			m.Phone == nil || *m.Phone != "+821012345678" || !m.SMSConsent || m.SlackEmail != nil ||
			!m.Notifications.Mail || !m.Notifications.SMS || m.Notifications.Slack {
			t.Errorf("signup answered %+v", m)
		}
		if loc := resp.Header.Get("Location"); loc != "/v1/members/"+m.ID {
			t.Errorf("Location = %q", loc)
		}
		if strings.Contains(string(body), "argon2") || strings.Contains(string(body), "password") {
			t.Errorf("signup answer shows the password: %s", body)
		}

		// E-mail addresses compare without case.
		tok := s.login(t, "MINA@example.com")
		if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || tok.AccessToken == "" || tok.RefreshToken == "" {
			t.Errorf("login answered %+v", tok)
		}

		resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tok.AccessToken})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/me status = %d (body %s)", resp.StatusCode, body)
		}
		var me memberBody
		decodeStrict(t, body, &me)
		if diff := cmp.Diff(m, me); diff != "" {
			t.Errorf("GET /v1/me differs from the sign-up answer (-signup +me):\n%s", diff)
		}

		// Refresh rotates: the new pair works, the old refresh token is
		// now a replay that revokes the whole session.
		resp, body = s.refresh(t, tok.RefreshToken)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh status = %d (body %s)", resp.StatusCode, body)
		}
		var rotated tokenBody
		decodeStrict(t, body, &rotated)
		if rotated.RefreshToken == tok.RefreshToken || rotated.AccessToken == tok.AccessToken {
			t.Error("refresh returned the same tokens")
		}
		if resp, _ := s.do(t, request{method: http.MethodGet, path: "/v1/me", token: rotated.AccessToken}); resp.StatusCode != http.StatusOK {
			t.Errorf("new access token: status = %d", resp.StatusCode)
		}
		resp, body = s.refresh(t, tok.RefreshToken)
		checkError(t, resp, body, http.StatusUnauthorized, "token_revoked", "")
		resp, body = s.refresh(t, rotated.RefreshToken)
		checkError(t, resp, body, http.StatusUnauthorized, "invalid_token", "")
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: rotated.AccessToken})
		checkError(t, resp, body, http.StatusUnauthorized, "token_revoked", "")

		// Logout: the access token is denied, the refresh token is gone.
		tok = s.login(t, "mina@example.com")
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/logout", token: tok.AccessToken})
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("logout status = %d (body %s)", resp.StatusCode, body)
		}
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tok.AccessToken})
		checkError(t, resp, body, http.StatusUnauthorized, "token_revoked", "")
		if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate = %q", got)
		}
		resp, body = s.refresh(t, tok.RefreshToken)
		checkError(t, resp, body, http.StatusUnauthorized, "invalid_token", "")
	})
}

func TestLogoutDenyListLastsTheTokenLifetime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	s := newServer(t, e, nil, nil)
	s.signup(t, "deny@example.com", "deny")
	tok := s.login(t, "deny@example.com")
	claims, err := e.tokens.Parse(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/logout", token: tok.AccessToken}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout status = %d (body %s)", resp.StatusCode, body)
	}
	var keys []string
	iter := e.redis.Scan(t.Context(), 0, "*deny*", 100).Iterator()
	for iter.Next(t.Context()) {
		keys = append(keys, iter.Val())
	}
	if len(keys) != 1 || !strings.HasSuffix(keys[0], claims.ID) {
		t.Fatalf("deny-list keys = %v, want one ending in the jti", keys)
	}
	ttl, err := e.redis.PTTL(t.Context(), keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The token is accepted until exp plus the verifier's leeway, so the
	// entry lasts that long too.
	if remaining := time.Until(claims.ExpiresAt) + auth.DefaultLeeway; ttl <= 0 || ttl > remaining+time.Second || ttl < remaining-5*time.Second {
		t.Errorf("deny-list TTL = %v, want the token's remaining lifetime and leeway %v", ttl, remaining)
	}
}

func TestSignupRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		// A body limit above 10 KB, so the long password reaches validation.
		s := newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) { d.BodyLimit = 64 << 10 }, nil)
		s.signup(t, "taken@example.com", "Taken")
		const path = "/v1/auth/signup"
		pw := `"password":"correct horse battery"`
		tests := []struct {
			name       string
			body       string
			wantStatus int
			wantCode   string
			wantField  string
		}{
			{"empty body", ``, 400, "invalid", ""},
			{"malformed json", `{"email":`, 400, "invalid_json", ""},
			{"missing email", `{` + pw + `,"nickname":"nick"}`, 400, "invalid", "email"},
			{"missing password", `{"email":"a@example.com","nickname":"nick"}`, 400, "invalid", "password"},
			{"missing nickname", `{"email":"a@example.com",` + pw + `}`, 400, "invalid", "nickname"},
			{"invalid email", `{"email":"not-an-address",` + pw + `,"nickname":"nick"}`, 400, "invalid", "email"},
			{"email with name", `{"email":"Nick <a@example.com>",` + pw + `,"nickname":"nick"}`, 400, "invalid", "email"},
			{"email wrong type", `{"email":7,` + pw + `,"nickname":"nick"}`, 400, "invalid", "email"},
			{"short password", `{"email":"a@example.com","password":"short","nickname":"nick"}`, 400, "invalid", "password"},
			{"10 KB password", `{"email":"a@example.com","password":"` + strings.Repeat("p", 10<<10) + `","nickname":"nick"}`, 400, "invalid", "password"},
			{"nickname too short", `{"email":"a@example.com",` + pw + `,"nickname":"n"}`, 400, "invalid", "nickname"},
			{"nickname too long", `{"email":"a@example.com",` + pw + `,"nickname":"` + strings.Repeat("가", 31) + `"}`, 400, "invalid", "nickname"},
			{"nickname control character", `{"email":"a@example.com",` + pw + `,"nickname":"ni\u0000ck"}`, 400, "invalid", "nickname"},
			{"nickname newline", `{"email":"a@example.com",` + pw + `,"nickname":"ni\nck"}`, 400, "invalid", "nickname"},
			{"bad phone", `{"email":"a@example.com",` + pw + `,"nickname":"nick","phone":"02-123-4567"}`, 400, "invalid", "phone"},
			{"bad slack email", `{"email":"a@example.com",` + pw + `,"nickname":"nick","slack_email":"nope"}`, 400, "invalid", "slack_email"},
			{"unknown field", `{"email":"a@example.com",` + pw + `,"nickname":"nick","role":"admin"}`, 400, "invalid", "role"},
			{"email taken", signupBody("taken@example.com", "other"), 409, "email_taken", "email"},
			{"email taken other case", signupBody("TAKEN@Example.com", "other"), 409, "email_taken", "email"},
			{"nickname taken", signupBody("new@example.com", "Taken"), 409, "nickname_taken", "nickname"},
			{"nickname taken other case", signupBody("new@example.com", "taken"), 409, "nickname_taken", "nickname"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodPost, path: path, body: tt.body,
					contentType: "application/json"})
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
				if n := countMembers(t, bdb); n != 1 {
					t.Errorf("%d members stored, want only the first", n)
				}
			})
		}
	})
}

func TestSignupStoresInputVerbatim(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		const nick = `<b>'); DROP TABLE members;--`
		resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/signup",
			body: fmt.Sprintf(`{"email":"o'brien+1=1--@example.com","password":"<script>alert(1)</script>","nickname":%q}`, nick)})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status = %d (body %s)", resp.StatusCode, body)
		}
		if strings.Contains(string(body), "<") {
			t.Errorf("answer carries raw HTML: %s", body)
		}
		var m memberBody
		decodeStrict(t, body, &m)
		if m.Nickname != nick || m.Email != "o'brien+1=1--@example.com" {
			t.Errorf("stored %q / %q", m.Nickname, m.Email)
		}
		tok := s.loginAs(t, "o'brien+1=1--@example.com", "<script>alert(1)</script>", nil)
		_, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tok.AccessToken})
		var me memberBody
		decodeStrict(t, body, &me)
		if me.Nickname != nick {
			t.Errorf("read back nickname %q, want %q", me.Nickname, nick)
		}
		if n := countMembers(t, bdb); n != 1 {
			t.Errorf("%d members, want 1 (the table survived)", n)
		}
	})
}

func TestLoginRejects(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	s := newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) { d.BodyLimit = 64 << 10 }, nil)
	s.signup(t, "mina@example.com", "mina")
	for _, tt := range []struct {
		name, body string
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"wrong password", `{"email":"mina@example.com","password":"wrong password"}`, 401, "unauthorized", ""},
		{"unknown email", `{"email":"nobody@example.com","password":"correct horse battery"}`, 401, "unauthorized", ""},
		{"missing password", `{"email":"mina@example.com"}`, 400, "invalid", "password"},
		{"invalid email", `{"email":"mina","password":"correct horse battery"}`, 400, "invalid", "email"},
		{"huge password", `{"email":"mina@example.com","password":"` + strings.Repeat("p", 10<<10) + `"}`, 400, "invalid", "password"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/login", body: tt.body})
			checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
		})
	}
	// A wrong password and an unknown address read the same.
	_, wrong := s.do(t, request{method: http.MethodPost, path: "/v1/auth/login", body: `{"email":"mina@example.com","password":"wrong password"}`})
	_, unknown := s.do(t, request{method: http.MethodPost, path: "/v1/auth/login", body: `{"email":"nobody@example.com","password":"wrong password"}`})
	if string(wrong) != string(unknown) {
		t.Errorf("answers differ:\n%s\n%s", wrong, unknown)
	}
}

// newRealPasswordsServer is a server hashing with the default argon2id
// parameters, with mina@example.com signed up; it returns the hasher too.
func newRealPasswordsServer(t testing.TB) (*testServer, *auth.Hasher) {
	t.Helper()
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	hasher, err := auth.NewHasher(auth.DefaultPasswordParams(), 0)
	if err != nil {
		t.Fatal(err)
	}
	e.hasher = hasher
	s := newServer(t, e, nil, nil)
	s.signup(t, "mina@example.com", "mina")
	return s, hasher
}

// TestLoginCostDoesNotRevealAccounts: an unknown address costs one argon2
// derivation with the real parameters, as a wrong password does, so it
// answers in the same time. (Counting derivations, not timing them, keeps
// the test stable on a busy machine; BenchmarkLogin shows the cost.)
func TestLoginCostDoesNotRevealAccounts(t *testing.T) {
	t.Parallel()
	s, hasher := newRealPasswordsServer(t)
	for _, email := range []string{"mina@example.com", "nobody@example.com"} {
		before := hasher.Verifications()
		resp, _ := s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
			body: fmt.Sprintf(`{"email":%q,"password":"wrong password"}`, email)})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: status = %d, want 401", email, resp.StatusCode)
		}
		if n := hasher.Verifications() - before; n != 1 {
			t.Errorf("%s: %d argon2 derivations, want 1", email, n)
		}
	}
}

func TestTokenRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s := newServer(t, e, nil, nil)
		m := s.signup(t, "mina@example.com", "mina")
		good := s.login(t, "mina@example.com")
		claims, err := e.tokens.Parse(good.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		mapClaims := jwt.MapClaims{
			"sub": m.ID, "sid": claims.SessionID, "jti": "x", "role": "member",
			"iss": "moim", "aud": []string{"moim-api"},
			"iat": time.Now().Unix(), "nbf": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		}
		none, err := jwt.NewWithClaims(jwt.SigningMethodNone, mapClaims).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		otherKey, err := jwt.NewWithClaims(jwt.SigningMethodHS256, mapClaims).SignedString([]byte("another-key-0123456789-0123456789-0123"))
		if err != nil {
			t.Fatal(err)
		}
		hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, mapClaims).SignedString(testJWTKey)
		if err != nil {
			t.Fatal(err)
		}
		past, err := auth.NewTokens(auth.TokenParams{Key: testJWTKey, TTL: 15 * time.Minute,
			NowFunc: func() time.Time { return time.Now().Add(-time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		expired, _, err := past.Issue(m.ID, claims.Role, claims.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(good.AccessToken, ".")
		tampered := parts[0] + "." + strings.TrimRight(parts[1], "A") + "B." + parts[2]

		for _, tt := range []struct {
			name     string
			header   string
			wantCode string
		}{
			{"no header", "", "unauthorized"},
			{"basic scheme", "Basic " + "bWluYTpwdw==", "unauthorized"},
			{"empty bearer", "Bearer ", "unauthorized"},
			{"garbage", "Bearer not.a.token", "invalid_token"},
			{"alg none", "Bearer " + none, "invalid_token"},
			{"other key", "Bearer " + otherKey, "invalid_token"},
			{"HS512", "Bearer " + hs512, "invalid_token"},
			{"tampered payload", "Bearer " + tampered, "invalid_token"},
			{"expired", "Bearer " + expired, "token_expired"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				header := map[string]string{}
				if tt.header != "" {
					header["Authorization"] = tt.header
				}
				resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/me", header: header})
				checkError(t, resp, body, http.StatusUnauthorized, tt.wantCode, "")
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate challenge")
				}
			})
		}
		// The good token still works: nothing above disturbed it.
		if resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/me", token: good.AccessToken}); resp.StatusCode != 200 {
			t.Errorf("good token: status = %d (body %s)", resp.StatusCode, body)
		}
	})
}

func TestAdminRoutesNeedTheAdminRole(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	e := newEnv(t, bdb)
	s := newServer(t, e, nil, nil)
	s.signup(t, "member@example.com", "member")
	admin := s.signup(t, "boss@example.com", "boss")
	if _, err := bdb.NewUpdate().Table("members").Set("role = 2").Where("public_id = ?", admin.ID).Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	member := s.login(t, "member@example.com")
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/admin/pings", token: member.AccessToken})
	checkError(t, resp, body, http.StatusForbidden, "forbidden", "")
	if pings, outbox := stored(t, bdb); pings != 0 || outbox != 0 {
		t.Errorf("a member's request stored %d pings, %d outbox rows", pings, outbox)
	}
	boss := s.login(t, "boss@example.com")
	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/admin/pings", token: boss.AccessToken})
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("admin token: status = %d (body %s)", resp.StatusCode, body)
	}
	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/admin/pings", token: "garbage"})
	checkError(t, resp, body, http.StatusUnauthorized, "invalid_token", "")
	resp, _ = s.do(t, request{method: http.MethodPost, path: "/v1/admin/pings", auth: authAdmin})
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("operator Basic credentials: status = %d", resp.StatusCode)
	}
}

func TestMeUpdate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		s.signup(t, "mina@example.com", "mina")
		s.signup(t, "joon@example.com", "Joon")
		tok := s.login(t, "mina@example.com")
		other := s.login(t, "mina@example.com") // a second device

		patch := func(body string) (*http.Response, []byte) {
			return s.do(t, request{method: http.MethodPatch, path: "/v1/me", token: tok.AccessToken, body: body})
		}
		resp, body := patch(`{"nickname":"미나","phone":"+82 10 9876 5432","slack_email":"Mina@Slack.example","notifications":{"mail":false}}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d (body %s)", resp.StatusCode, body)
		}
		var m memberBody
		decodeStrict(t, body, &m)
		if m.Nickname != "미나" || m.Phone == nil || *m.Phone != "+821098765432" || m.SlackEmail == nil ||
			*m.SlackEmail != "mina@slack.example" || m.Notifications.Mail || !m.Notifications.SMS || m.SMSConsent {
			t.Errorf("after PATCH: %+v", m)
		}
		resp, body = patch(`{"phone":""}`)
		decodeStrict(t, body, &m)
		if resp.StatusCode != http.StatusOK || m.Phone != nil || m.Nickname != "미나" {
			t.Errorf("clearing the phone: status %d, %+v", resp.StatusCode, m)
		}

		for _, tt := range []struct {
			name, body          string
			wantStatus          int
			wantCode, wantField string
		}{
			{"nickname taken", `{"nickname":"JOON"}`, 409, "nickname_taken", "nickname"},
			{"nickname control", `{"nickname":"a\u0007b"}`, 400, "invalid", "nickname"},
			{"bad phone", `{"phone":"12345"}`, 400, "invalid", "phone"},
			{"malformed new email", `{"email":"not an address"}`, 400, "invalid", "email"},
			{"new password without current", `{"new_password":"another long one"}`, 400, "invalid", "current_password"},
			{"current without new", `{"current_password":"correct horse battery"}`, 400, "invalid", "new_password"},
			{"short new password", `{"current_password":"correct horse battery","new_password":"short"}`, 400, "invalid", "new_password"},
			{"wrong current password", `{"current_password":"wrong password","new_password":"another long one"}`, 400, "invalid", "current_password"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := patch(tt.body)
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
				_, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tok.AccessToken})
				var now memberBody
				decodeStrict(t, body, &now)
				if now.Nickname != "미나" || now.Phone != nil {
					t.Errorf("a rejected PATCH changed the member: %+v", now)
				}
			})
		}

		// Changing the password ends the other device's session only.
		resp, body = patch(`{"current_password":"correct horse battery","new_password":"another long one"}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("password change: status = %d (body %s)", resp.StatusCode, body)
		}
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: other.AccessToken})
		checkError(t, resp, body, http.StatusUnauthorized, "token_revoked", "")
		resp, body = s.refresh(t, other.RefreshToken)
		checkError(t, resp, body, http.StatusUnauthorized, "invalid_token", "")
		if resp, _ := s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tok.AccessToken}); resp.StatusCode != 200 {
			t.Errorf("current session after password change: status = %d", resp.StatusCode)
		}
		resp, _ = s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
			body: `{"email":"mina@example.com","password":"correct horse battery"}`})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("old password still logs in: status = %d", resp.StatusCode)
		}
		s.loginAs(t, "mina@example.com", "another long one", nil)
	})
}

func TestMeDelete(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		m := s.signup(t, "mina@example.com", "mina")
		watcher := s.signup(t, "joon@example.com", "joon")
		tok := s.login(t, "mina@example.com")
		other := s.login(t, "mina@example.com")
		joon := s.login(t, "joon@example.com")
		_ = watcher

		resp, body := s.do(t, request{method: http.MethodDelete, path: "/v1/me", token: tok.AccessToken})
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE /v1/me: status = %d (body %s)", resp.StatusCode, body)
		}
		for _, access := range []string{tok.AccessToken, other.AccessToken} {
			resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: access})
			checkError(t, resp, body, http.StatusUnauthorized, "token_revoked", "")
		}
		resp, body = s.refresh(t, other.RefreshToken)
		checkError(t, resp, body, http.StatusUnauthorized, "invalid_token", "")
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
			body: `{"email":"mina@example.com","password":"correct horse battery"}`})
		checkError(t, resp, body, http.StatusUnauthorized, "unauthorized", "")
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/members/" + m.ID, token: joon.AccessToken})
		checkError(t, resp, body, http.StatusNotFound, "not_found", "")
		// The address and nickname are free again; the old row stays.
		again := s.signup(t, "mina@example.com", "mina")
		if again.ID == m.ID {
			t.Error("a new sign-up got the deleted member's id")
		}
		if n := countMembers(t, bdb); n != 3 {
			t.Errorf("%d member rows, want 3 (soft deletion keeps the row)", n)
		}
	})
}

func TestSessions(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, dbtest.Open(t, "sqlite")), nil, nil)
	s.signup(t, "mina@example.com", "mina")
	s.signup(t, "joon@example.com", "joon")
	phone := s.loginAs(t, "mina@example.com", "correct horse battery", map[string]string{"User-Agent": "moim-ios/1.0"})
	laptop := s.loginAs(t, "mina@example.com", "correct horse battery", map[string]string{"User-Agent": "Firefox/140"})
	joon := s.login(t, "joon@example.com")

	type sessionBody struct {
		ID         string `json:"id"`
		UserAgent  string `json:"user_agent"`
		IP         string `json:"ip"`
		CreatedAt  string `json:"created_at"`
		LastUsedAt string `json:"last_used_at"`
		Current    bool   `json:"current"`
	}
	var list struct {
		Sessions []sessionBody `json:"sessions"`
	}
	resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/me/sessions", token: laptop.AccessToken})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (body %s)", resp.StatusCode, body)
	}
	decodeStrict(t, body, &list)
	if len(list.Sessions) != 2 {
		t.Fatalf("sessions = %+v, want 2", list.Sessions)
	}
	var phoneID string
	for _, sess := range list.Sessions {
		switch sess.UserAgent {
		case "Firefox/140":
			if !sess.Current {
				t.Error("the laptop session is not marked current")
			}
		case "moim-ios/1.0":
			phoneID = sess.ID
			if sess.Current {
				t.Error("the phone session is marked current")
			}
		default:
			t.Errorf("unexpected session %+v", sess)
		}
		if sess.IP != "127.0.0.1" || sess.CreatedAt == "" || sess.LastUsedAt == "" {
			t.Errorf("session %+v lacks its details", sess)
		}
	}
	// Another member's session is not found, and stays.
	resp, body = s.do(t, request{method: http.MethodDelete, path: "/v1/me/sessions/" + phoneID, token: joon.AccessToken})
	checkError(t, resp, body, http.StatusNotFound, "not_found", "")
	if resp, _ := s.do(t, request{method: http.MethodGet, path: "/v1/me", token: phone.AccessToken}); resp.StatusCode != 200 {
		t.Errorf("phone session after another member's DELETE: status = %d", resp.StatusCode)
	}
	resp, _ = s.do(t, request{method: http.MethodDelete, path: "/v1/me/sessions/" + phoneID, token: laptop.AccessToken})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE own session: status = %d", resp.StatusCode)
	}
	resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: phone.AccessToken})
	checkError(t, resp, body, http.StatusUnauthorized, "token_revoked", "")
	resp, body = s.refresh(t, phone.RefreshToken)
	checkError(t, resp, body, http.StatusUnauthorized, "invalid_token", "")
	resp, body = s.do(t, request{method: http.MethodDelete, path: "/v1/me/sessions/" + phoneID, token: laptop.AccessToken})
	checkError(t, resp, body, http.StatusNotFound, "not_found", "")
}

func TestMemberPublicProfile(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, dbtest.Open(t, "sqlite")), nil, nil)
	m := s.signup(t, "mina@example.com", "mina")
	s.signup(t, "joon@example.com", "joon")
	joon := s.login(t, "joon@example.com")
	resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/members/" + m.ID, token: joon.AccessToken})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (body %s)", resp.StatusCode, body)
	}
	var pub struct {
		ID            string             `json:"id"`
		Nickname      string             `json:"nickname"`
		MannerPoints  int                `json:"manner_points"`
		Avatar        *attachedImageBody `json:"avatar"`
		Skills        json.RawMessage    `json:"skills"`
		Activity      json.RawMessage    `json:"activity"`
		EmailVerified bool               `json:"email_verified"`
		PhoneVerified bool               `json:"phone_verified"`
		HelperReviews json.RawMessage    `json:"helper_reviews"`
	}
	decodeStrict(t, body, &pub) // nothing but id, nickname, manner points and avatar
	if pub.ID != m.ID || pub.Nickname != "mina" || pub.MannerPoints != 50 || pub.Avatar != nil {
		t.Errorf("profile = %+v", pub)
	}
	resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/members/nope", token: joon.AccessToken})
	checkError(t, resp, body, http.StatusNotFound, "not_found", "")
	resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/members/" + m.ID})
	checkError(t, resp, body, http.StatusUnauthorized, "unauthorized", "")
}

func TestRefreshRaceRotatesOnce(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, dbtest.Open(t, "sqlite")), nil, nil)
	s.signup(t, "mina@example.com", "mina")
	tok := s.login(t, "mina@example.com")
	const n = 10
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, _ := s.refresh(t, tok.RefreshToken)
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	if ok := slices.Index(codes, http.StatusOK); ok < 0 || slices.Contains(codes[ok+1:], http.StatusOK) {
		t.Errorf("statuses %v, want exactly one 200", codes)
	}
}

func TestRefreshCookie(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, dbtest.Open(t, "sqlite")), func(d *httpapi.Deps) { d.RefreshCookie = true }, nil)
	s.signup(t, "mina@example.com", "mina")
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
		body: `{"email":"mina@example.com","password":"correct horse battery"}`})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (body %s)", resp.StatusCode, body)
	}
	cookie := findCookie(t, resp, "moim_refresh")
	if !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/v1/auth" || cookie.MaxAge != 3600 {
		t.Errorf("cookie = %+v", cookie)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	// Refresh by cookie alone, without a body.
	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/refresh",
		header: map[string]string{"Cookie": "moim_refresh=" + cookie.Value}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh by cookie: status = %d (body %s)", resp.StatusCode, body)
	}
	next := findCookie(t, resp, "moim_refresh")
	var tok tokenBody
	decodeStrict(t, body, &tok)
	if next.Value == cookie.Value || next.Value != tok.RefreshToken {
		t.Error("refresh did not set the rotated token as the cookie")
	}
	resp, _ = s.do(t, request{method: http.MethodPost, path: "/v1/auth/logout", token: tok.AccessToken})
	if gone := findCookie(t, resp, "moim_refresh"); gone.MaxAge >= 0 || gone.Value != "" {
		t.Errorf("logout left the cookie: %+v", gone)
	}
	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/refresh"})
	checkError(t, resp, body, http.StatusBadRequest, "invalid", "refresh_token")
}

func findCookie(t *testing.T, resp *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", name, resp.Header.Values("Set-Cookie"))
	return nil
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	e := newEnv(t, bdb)
	s := newServer(t, e, func(d *httpapi.Deps) {
		d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		d.RateLimits = httpapi.RateLimits{
			SignupPerIP:  httpapi.Rate{Requests: 2, Window: time.Hour},
			LoginPerIP:   httpapi.Rate{Requests: 3, Window: time.Hour},
			RefreshPerIP: httpapi.Rate{Requests: 1, Window: time.Hour},
		}
	}, nil)
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	wrongLogin := func(ip string) (*http.Response, []byte) {
		return s.do(t, request{method: http.MethodPost, path: "/v1/auth/login", header: from(ip),
			body: `{"email":"mina@example.com","password":"wrong password"}`})
	}
	checkLimited := func(resp *http.Response, body []byte) {
		t.Helper()
		checkError(t, resp, body, http.StatusTooManyRequests, "rate_limited", "")
		if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After = %q", ra)
		}
	}

	// Sign-up: two per IP; a third from the same IP is refused and not stored.
	for i := range 2 {
		resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/signup", header: from("203.0.113.1"),
			body: signupBody(fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("user%d", i))})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("signup %d: status = %d (body %s)", i, resp.StatusCode, body)
		}
	}
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/signup", header: from("203.0.113.1"),
		body: signupBody("mina@example.com", "mina")})
	checkLimited(resp, body)
	if n := countMembers(t, bdb); n != 2 {
		t.Errorf("%d members after a limited sign-up, want 2", n)
	}
	resp, _ = s.do(t, request{method: http.MethodPost, path: "/v1/auth/signup", header: from("203.0.113.2"),
		body: signupBody("mina@example.com", "mina")})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("sign-up from another IP: status = %d", resp.StatusCode)
	}

	// Login: three per IP...
	for range 3 {
		if resp, _ := wrongLogin("198.51.100.1"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("login within the limit: status = %d", resp.StatusCode)
		}
	}
	checkLimited(wrongLogin("198.51.100.1"))
	// (Failures per address are the login limits' own test.)
	// Another address from a fresh IP is unaffected.
	tok := s.loginAs(t, "user0@example.com", "correct horse battery", from("198.51.100.4"))

	// Refresh: one per IP.
	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/refresh", header: from("192.0.2.1"),
		body: fmt.Sprintf(`{"refresh_token":%q}`, tok.RefreshToken)})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: status = %d (body %s)", resp.StatusCode, body)
	}
	var rotated tokenBody
	decodeStrict(t, body, &rotated)
	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/refresh", header: from("192.0.2.1"),
		body: fmt.Sprintf(`{"refresh_token":%q}`, rotated.RefreshToken)})
	checkLimited(resp, body)

	// The counters are in Redis, shared by every API instance: a second
	// server over the same Redis sees the first one's count.
	s2 := newServer(t, e, func(d *httpapi.Deps) {
		d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		d.RateLimits = httpapi.RateLimits{LoginPerIP: httpapi.Rate{Requests: 3, Window: time.Hour}}
	}, nil)
	resp, body = s2.do(t, request{method: http.MethodPost, path: "/v1/auth/login", header: from("198.51.100.1"),
		body: `{"email":"user1@example.com","password":"wrong password"}`})
	checkLimited(resp, body)
}

func TestAuthLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, dbtest.Open(t, "sqlite")), nil, nil)
	s.signup(t, "mina@example.com", "mina")
	tok := s.login(t, "mina@example.com")
	resp, body := s.refresh(t, tok.RefreshToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %s", resp.StatusCode, body)
	}
	var rotated tokenBody
	decodeStrict(t, body, &rotated)
	s.refresh(t, tok.RefreshToken) // a replay: logged as a warning
	s.do(t, request{method: http.MethodPost, path: "/v1/auth/login", body: `{"email":"mina@example.com","password":"wrong password"}`})
	logs := s.logs.String()
	for name, secret := range map[string]string{
		"password": "correct horse battery", "wrong password": "wrong password",
		"access token": tok.AccessToken, "refresh token": tok.RefreshToken,
		"rotated access token": rotated.AccessToken, "rotated refresh token": rotated.RefreshToken,
		"refresh secret": tok.RefreshToken[strings.IndexByte(tok.RefreshToken, '.')+1:],
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
	if !strings.Contains(logs, "refresh token reused") {
		t.Error("the replay was not logged")
	}
}

// sessionKeys counts the session hashes in Redis.
func sessionKeys(t *testing.T, e *env) int {
	t.Helper()
	keys, err := e.redis.Keys(t.Context(), "moim:auth:session:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func TestRejectedAuthStoresNoSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	s := newServer(t, e, nil, nil)
	s.signup(t, "mina@example.com", "mina")
	for _, tt := range []struct {
		name, path, body    string
		wantStatus          int
		wantCode, wantField string
	}{
		{"wrong password", "/v1/auth/login", `{"email":"mina@example.com","password":"wrong password"}`, 401, "unauthorized", ""},
		{"unknown email", "/v1/auth/login", `{"email":"nobody@example.com","password":"wrong password"}`, 401, "unauthorized", ""},
		{"login malformed json", "/v1/auth/login", `{"email":"mina@example.com",`, 400, "invalid_json", ""},
		{"login wrong type", "/v1/auth/login", `{"email":"mina@example.com","password":12345678}`, 400, "invalid", "password"},
		{"login unknown field", "/v1/auth/login", `{"email":"mina@example.com","password":"x","remember":true}`, 400, "invalid", "remember"},
		{"refresh malformed json", "/v1/auth/refresh", `{"refresh_token":`, 400, "invalid_json", ""},
		{"refresh wrong type", "/v1/auth/refresh", `{"refresh_token":7}`, 400, "invalid", "refresh_token"},
		{"refresh garbage token", "/v1/auth/refresh", `{"refresh_token":"garbage"}`, 401, "invalid_token", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, request{method: http.MethodPost, path: tt.path, body: tt.body})
			checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
			if n := sessionKeys(t, e); n != 0 {
				t.Errorf("%d sessions stored", n)
			}
		})
	}
}

func TestMeUpdateRejectsWithoutChanging(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		s.signup(t, "joon@example.com", "joon")
		s.signup(t, "mina@example.com", "mina")
		tok := s.login(t, "mina@example.com")
		me := func() memberBody {
			_, body := s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tok.AccessToken})
			var m memberBody
			decodeStrict(t, body, &m)
			return m
		}
		before := me()
		for _, tt := range []struct {
			name, body          string
			wantStatus          int
			wantCode, wantField string
		}{
			{"malformed json", `{"nickname":`, 400, "invalid_json", ""},
			{"wrong type", `{"sms_consent":"yes"}`, 400, "invalid", "sms_consent"},
			{"prefs wrong type", `{"notifications":{"mail":"off"}}`, 400, "invalid", "notifications.mail"},
			{"nickname taken", `{"nickname":"JOON","phone":"010-9999-8888"}`, 409, "nickname_taken", "nickname"},
			{"bad phone with good nickname", `{"nickname":"새이름","phone":"12345"}`, 400, "invalid", "phone"},
			{"empty body", ``, 400, "invalid", ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodPatch, path: "/v1/me", token: tok.AccessToken,
					body: tt.body, contentType: "application/json"})
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
				if diff := cmp.Diff(before, me()); diff != "" {
					t.Errorf("a rejected PATCH changed the member (-before +after):\n%s", diff)
				}
			})
		}
		// Markup and SQL are data: stored verbatim, escaped on the wire.
		const nick = `<img src=x onerror=alert(1)>`
		resp, body := s.do(t, request{method: http.MethodPatch, path: "/v1/me", token: tok.AccessToken,
			body: fmt.Sprintf(`{"nickname":%q,"slack_email":"x'or'1'='1@example.com"}`, nick)})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d (body %s)", resp.StatusCode, body)
		}
		if strings.Contains(string(body), "<img") {
			t.Errorf("answer carries raw HTML: %s", body)
		}
		if m := me(); m.Nickname != nick || m.SlackEmail == nil || *m.SlackEmail != "x'or'1'='1@example.com" {
			t.Errorf("stored %+v", m)
		}
	})
}

// TestLoginRacingAccountChanges runs logins while the account is deleted or
// its password changed: whichever order things happen in, no session opened
// with the old password may outlive the change.
func TestLoginRacingAccountChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	// Costlier than the other tests' hashing, so logins are still verifying
	// when the change lands.
	hasher, err := auth.NewHasher(auth.PasswordParams{Memory: 4096, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.hasher = hasher
	s := newServer(t, e, nil, nil)
	for round := range 8 {
		email := fmt.Sprintf("racer%d@example.com", round)
		s.signup(t, email, fmt.Sprintf("racer%d", round))
		keeper := s.login(t, email)
		change := request{method: http.MethodDelete, path: "/v1/me", token: keeper.AccessToken}
		if round%2 == 1 {
			change = request{method: http.MethodPatch, path: "/v1/me", token: keeper.AccessToken,
				body: `{"current_password":"correct horse battery","new_password":"a brand new password"}`}
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []tokenBody
		for range 6 {
			wg.Go(func() {
				resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
					body: fmt.Sprintf(`{"email":%q,"password":"correct horse battery"}`, email)})
				if resp.StatusCode == http.StatusOK {
					var tok tokenBody
					decodeStrict(t, body, &tok)
					mu.Lock()
					won = append(won, tok)
					mu.Unlock()
				}
			})
		}
		wg.Go(func() {
			time.Sleep(time.Duration(round) * time.Millisecond)
			if resp, body := s.do(t, change); resp.StatusCode >= 300 {
				t.Errorf("round %d: change: %d %s", round, resp.StatusCode, body)
			}
		})
		wg.Wait()
		for _, tok := range won {
			if resp, _ := s.do(t, request{method: http.MethodGet, path: "/v1/me/sessions", token: tok.AccessToken}); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("round %d: a login with the old password still works (status %d)", round, resp.StatusCode)
			}
			if resp, _ := s.refresh(t, tok.RefreshToken); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("round %d: its refresh token still works (status %d)", round, resp.StatusCode)
			}
		}
	}
}

// TestNoStore: answers that carry tokens or the member's own account are
// never kept by a browser or proxy cache.
func TestNoStore(t *testing.T) {
	t.Parallel()
	s := newServer(t, newEnv(t, dbtest.Open(t, dbtest.SQLite)), nil, nil)
	check := func(name string, resp *http.Response, body []byte, want int) {
		t.Helper()
		if resp.StatusCode != want {
			t.Fatalf("%s: status = %d, want %d (body %s)", name, resp.StatusCode, want, body)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control = %q, want no-store", name, got)
		}
	}
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/signup", body: signupBody("mina@example.com", "mina")})
	check("signup", resp, body, http.StatusCreated)
	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
		body: `{"email":"mina@example.com","password":"correct horse battery"}`})
	check("login", resp, body, http.StatusOK)
	var tok tokenBody
	decodeStrict(t, body, &tok)
	resp, body = s.refresh(t, tok.RefreshToken)
	check("refresh", resp, body, http.StatusOK)
	decodeStrict(t, body, &tok)
	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
		body: `{"email":"mina@example.com","password":"wrong"}`})
	check("failed login", resp, body, http.StatusUnauthorized)
	resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: tok.AccessToken})
	check("me", resp, body, http.StatusOK)
	resp, body = s.do(t, request{method: http.MethodPatch, path: "/v1/me", token: tok.AccessToken, body: `{"nickname":"mina2"}`})
	check("me update", resp, body, http.StatusOK)
	resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/me/sessions", token: tok.AccessToken})
	check("sessions", resp, body, http.StatusOK)
}
