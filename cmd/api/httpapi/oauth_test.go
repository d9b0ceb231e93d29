package httpapi_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
)

// The test providers' client credentials; the secret must never show in
// an answer or a log.
const (
	testClientID     = "moim-test-client"
	testClientSecret = "client-secret-never-shown-0123456789"
)

// providerAccount is an account at a test provider.
type providerAccount struct {
	sub, email, nickname string
	verified             bool
}

// grant is what the test provider remembers of an authorization.
type grant struct {
	acct      providerAccount
	challenge string
	nonce     string
	redirect  string
	used      bool
}

// testProvider is an OAuth2 authorization server started in the test. As
// an OIDC provider it serves discovery, keys and signed ID tokens; as a
// plain one a Naver-shaped user-info answer. Its knobs break it the ways
// real providers and attackers do.
type testProvider struct {
	srv  *httptest.Server
	oidc bool
	key  *rsa.PrivateKey
	now  func() time.Time

	mu     sync.Mutex
	grants map[string]*grant
	tokens map[string]providerAccount
	// Knobs.
	signWith  *rsa.PrivateKey // signs ID tokens with a key it does not publish
	nonceFor  string          // puts this nonce in ID tokens instead
	failToken bool            // the token endpoint answers 500
}

var (
	providerKeyOnce sync.Once
	providerKeys    [2]*rsa.PrivateKey
)

// testKeys returns two RSA keys, made once: generating them is slow under
// the race detector.
func testKeys(t *testing.T) (published, other *rsa.PrivateKey) {
	t.Helper()
	providerKeyOnce.Do(func() {
		for i := range providerKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			providerKeys[i] = k
		}
	})
	return providerKeys[0], providerKeys[1]
}

func newTestProvider(t *testing.T, oidc bool, now func() time.Time) *testProvider {
	t.Helper()
	key, _ := testKeys(t)
	p := &testProvider{oidc: oidc, key: key, now: now, grants: map[string]*grant{}, tokens: map[string]providerAccount{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /keys", p.keys)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /me", p.userInfo)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testProvider) params(name string) auth.ProviderParams {
	pp := auth.ProviderParams{Name: name, ClientID: testClientID, ClientSecret: testClientSecret,
		RedirectURL: "https://moim.test/v1/auth/oauth/" + name + "/callback"}
	if p.oidc {
		pp.Kind, pp.Issuer, pp.Scopes = auth.KindOIDC, p.srv.URL, []string{"openid", "email", "profile"}
		return pp
	}
	pp.Kind, pp.Scopes = auth.KindOAuth2, []string{"profile"}
	pp.AuthURL, pp.TokenURL, pp.UserInfoURL = p.srv.URL+"/authorize", p.srv.URL+"/token", p.srv.URL+"/me"
	pp.IDField, pp.EmailField, pp.EmailVerifiedField, pp.NicknameField =
		"response.id", "response.email", "response.email_verified", "response.nickname"
	return pp
}

func (p *testProvider) set(fn func(p *testProvider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p)
}

func (p *testProvider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeTestJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.srv.URL,
		"authorization_endpoint":                p.srv.URL + "/authorize",
		"token_endpoint":                        p.srv.URL + "/token",
		"jwks_uri":                              p.srv.URL + "/keys",
		"userinfo_endpoint":                     p.srv.URL + "/me",
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (p *testProvider) keys(w http.ResponseWriter, _ *http.Request) {
	pub := p.key.PublicKey
	writeTestJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k1",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// approve is the member saying yes at the provider to the authorization
// URL authURL: it returns the code the provider sends back.
func (p *testProvider) approve(t *testing.T, authURL string, acct providerAccount) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("client_id") != testClientID || q.Get("response_type") != "code" {
		t.Fatalf("authorization URL %s: wrong client or response type", authURL)
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		t.Fatalf("authorization URL %s: no PKCE challenge", authURL)
	}
	if p.oidc && q.Get("nonce") == "" {
		t.Fatalf("authorization URL %s: no nonce", authURL)
	}
	code := rand.Text()
	p.set(func(p *testProvider) {
		p.grants[code] = &grant{acct: acct, challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
	})
	return code
}

func (p *testProvider) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failToken {
		http.Error(w, "upstream trouble", http.StatusInternalServerError)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeTestJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != testClientID || secret != testClientSecret {
		writeTestJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	g := p.grants[r.PostForm.Get("code")]
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if g == nil || g.used || r.PostForm.Get("grant_type") != "authorization_code" ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge || r.PostForm.Get("redirect_uri") != g.redirect {
		writeTestJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	g.used = true
	access := rand.Text()
	p.tokens[access] = g.acct
	resp := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600}
	if p.oidc {
		nonce := g.nonce
		if p.nonceFor != "" {
			nonce = p.nonceFor
		}
		now := p.now()
		claims := jwt.MapClaims{"iss": p.srv.URL, "sub": g.acct.sub, "aud": testClientID,
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "nonce": nonce,
			"nickname": g.acct.nickname}
		if g.acct.email != "" {
			claims["email"], claims["email_verified"] = g.acct.email, g.acct.verified
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = "k1"
		key := p.key
		if p.signWith != nil {
			key = p.signWith
		}
		signed, err := tok.SignedString(key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp["id_token"] = signed
	}
	writeTestJSON(w, http.StatusOK, resp)
}

// userInfo answers like Naver: the profile under "response", the id a
// number, the verified flag "Y" or "N".
func (p *testProvider) userInfo(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	acct, ok := p.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	p.mu.Unlock()
	if !ok {
		writeTestJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	verified := "N"
	if acct.verified {
		verified = "Y"
	}
	profile := map[string]any{"id": json.Number(acct.sub), "nickname": acct.nickname, "email_verified": verified}
	if acct.email != "" {
		profile["email"] = acct.email
	}
	writeTestJSON(w, http.StatusOK, map[string]any{"resultcode": "00", "message": "success", "response": profile})
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthBundle is an API with an OIDC provider "oidc" and a plain OAuth2
// provider "plain", on a clock the test moves.
type oauthBundle struct {
	s     *testServer
	db    *bun.DB
	oidc  *testProvider
	plain *testProvider
	clock *roomClock
	// noRedirect sees the 302 instead of following it.
	noRedirect *http.Client
}

// oauthStateTTL is the test API's state lifetime.
const oauthStateTTL = 10 * time.Minute

func newOAuthBundle(t *testing.T, bdb *bun.DB) *oauthBundle {
	t.Helper()
	clock := &roomClock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	b := &oauthBundle{db: bdb, clock: clock,
		oidc:  newTestProvider(t, true, clock.Now),
		plain: newTestProvider(t, false, clock.Now),
		noRedirect: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
	social, err := auth.NewSocial(auth.SocialParams{
		Providers: []auth.ProviderParams{b.oidc.params("oidc"), b.plain.params("plain")},
		StateKey:  []byte("test-state-key-0123456789-0123456789"),
		StateTTL:  oauthStateTTL,
		Timeout:   5 * time.Second,
		NowFunc:   clock.Now,
	})
	if err != nil {
		t.Fatalf("new social: %v", err)
	}
	b.s = newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) { d.Social = social; d.NowFunc = clock.Now }, nil)
	return b
}

// started is a flow as the browser holds it: the provider URL and the
// cookie.
type started struct {
	authURL, state, cookie string
}

// start begins a login (token "") or a link (as the token's member).
func (b *oauthBundle) start(t *testing.T, provider, token string) started {
	t.Helper()
	method, path := http.MethodGet, "/v1/auth/oauth/"+provider
	if token != "" {
		method, path = http.MethodPost, "/v1/me/identities/"+provider
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := b.noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var f started
	if token == "" {
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("%s %s: status = %d, want 302", method, path, resp.StatusCode)
		}
		f.authURL = resp.Header.Get("Location")
	} else {
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: status = %d, want 200", method, path, resp.StatusCode)
		}
		var body struct {
			RedirectURL string `json:"redirect_url"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		f.authURL = body.RedirectURL
	}
	c := findCookie(t, resp, auth.CookieName(provider))
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/v1/auth/oauth" {
		t.Errorf("cookie %+v: want HttpOnly, Secure, SameSite=Lax, Path=/v1/auth/oauth", c)
	}
	f.cookie = c.Value
	u, err := url.Parse(f.authURL)
	if err != nil {
		t.Fatal(err)
	}
	f.state = u.Query().Get("state")
	if f.state == "" || strings.Contains(f.authURL, f.cookie) {
		t.Fatalf("authorization URL %s: no state, or it shows the browser secret", f.authURL)
	}
	return f
}

// callback is the browser's return to the API with query q and cookie.
func (b *oauthBundle) callback(t *testing.T, provider string, q url.Values, cookie string) (*http.Response, []byte) {
	t.Helper()
	req := request{method: http.MethodGet, path: "/v1/auth/oauth/" + provider + "/callback?" + q.Encode()}
	if cookie != "" {
		req.header = map[string]string{"Cookie": auth.CookieName(provider) + "=" + cookie}
	}
	return b.s.do(t, req)
}

// flow runs a login or link through the provider for acct and returns the
// callback's answer.
func (b *oauthBundle) flow(t *testing.T, provider, token string, acct providerAccount) (*http.Response, []byte) {
	t.Helper()
	p := b.oidc
	if provider == "plain" {
		p = b.plain
	}
	f := b.start(t, provider, token)
	code := p.approve(t, f.authURL, acct)
	return b.callback(t, provider, url.Values{"state": {f.state}, "code": {code}}, f.cookie)
}

// loginWith runs a login flow that must succeed and returns the tokens.
func (b *oauthBundle) loginWith(t *testing.T, provider string, acct providerAccount) tokenBody {
	t.Helper()
	resp, body := b.flow(t, provider, "", acct)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s login of %s: status = %d, want 200 (body %s)", provider, acct.sub, resp.StatusCode, body)
	}
	var tok tokenBody
	decodeStrict(t, body, &tok)
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("login answer %s is not a token pair", body)
	}
	return tok
}

func (b *oauthBundle) me(t *testing.T, token string) memberBody {
	t.Helper()
	var m memberBody
	b.s.getOK(t, "/v1/me", token, &m)
	return m
}

type identityListBody struct {
	Identities []struct {
		Provider  string  `json:"provider"`
		Email     *string `json:"email"`
		CreatedAt string  `json:"created_at"`
	} `json:"identities"`
	HasPassword bool `json:"has_password"`
}

func (b *oauthBundle) identities(t *testing.T, token string) (providers []string, hasPassword bool) {
	t.Helper()
	var l identityListBody
	b.s.getOK(t, "/v1/me/identities", token, &l)
	for _, id := range l.Identities {
		providers = append(providers, id.Provider)
	}
	return providers, l.HasPassword
}

// counts is how many members and identities are stored.
func (b *oauthBundle) counts(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("members=%d identities=%d", countRows(t, b.db, "members"), countRows(t, b.db, "member_identities"))
}

func TestSocialLoginFlow(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		b := newOAuthBundle(t, bdb)

		// Sign-up through OIDC: the nickname and verified address come
		// from the ID token.
		mina := providerAccount{sub: "oidc-mina", email: "Mina@Example.com", nickname: "미나", verified: true}
		tok := b.loginWith(t, "oidc", mina)
		minaMe := b.me(t, tok.AccessToken)
		if minaMe.Nickname != "미나" || minaMe.Email != "mina@example.com" {
			t.Errorf("signed-up member = %+v, want 미나 with mina@example.com", minaMe)
		}
		if got, hasPassword := b.identities(t, tok.AccessToken); len(got) != 1 || got[0] != "oidc" || hasPassword {
			t.Errorf("identities = %v, has_password %v; want [oidc], false", got, hasPassword)
		}
		// No password logs her in: she has none.
		resp, body := b.s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
			body: `{"email":"mina@example.com","password":"anything at all"}`})
		checkError(t, resp, body, http.StatusUnauthorized, "unauthorized", "")

		// A later login is the same member, with a working token pair.
		again := b.loginWith(t, "oidc", mina)
		if got := b.me(t, again.AccessToken); got.ID != minaMe.ID {
			t.Errorf("later login is member %s, want %s", got.ID, minaMe.ID)
		}
		if resp, body := b.s.refresh(t, again.RefreshToken); resp.StatusCode != http.StatusOK {
			t.Errorf("refresh after social login: status = %d (body %s)", resp.StatusCode, body)
		}

		// A taken nickname is numbered; an unverified address is not kept.
		other := b.loginWith(t, "oidc", providerAccount{sub: "oidc-other", nickname: "미나", email: "other@example.com"})
		if got := b.me(t, other.AccessToken); got.Nickname != "미나2" || got.Email != "" {
			t.Errorf("second 미나 = %q <%s>, want 미나2 without an address", got.Nickname, got.Email)
		}
		// A profile without a usable name gets a placeholder.
		blank := b.loginWith(t, "plain", providerAccount{sub: "77", nickname: " \u200b "})
		if got := b.me(t, blank.AccessToken); got.Nickname != "member" {
			t.Errorf("nameless profile's nickname = %q, want member", got.Nickname)
		}

		// Plain OAuth2: the numeric id from the user-info answer.
		jin := b.loginWith(t, "plain", providerAccount{sub: "4242", nickname: "jin", email: "jin@example.com", verified: true})
		jinMe := b.me(t, jin.AccessToken)
		if jinMe.Nickname != "jin" || jinMe.Email != "jin@example.com" {
			t.Errorf("plain sign-up = %+v", jinMe)
		}
		if got := b.me(t, b.loginWith(t, "plain", providerAccount{sub: "4242", nickname: "renamed"}).AccessToken); got.ID != jinMe.ID {
			t.Errorf("plain login again is %s, want %s", got.ID, jinMe.ID)
		}

		// A password member's address: an unverified one does not link.
		jun := b.s.signup(t, "jun@example.com", "준호")
		before := b.counts(t)
		resp, body = b.flow(t, "oidc", "", providerAccount{sub: "oidc-jun", email: "jun@example.com", nickname: "준호"})
		checkError(t, resp, body, http.StatusConflict, "identity_link_required", "")
		if !strings.Contains(string(body), "/v1/me/identities/oidc") {
			t.Errorf("identity_link_required answer %s does not say where to link", body)
		}
		if after := b.counts(t); after != before {
			t.Errorf("refused link stored something: %s, then %s", before, after)
		}
		// A verified one links, and logs in as that member.
		junTok := b.loginWith(t, "oidc", providerAccount{sub: "oidc-jun", email: "jun@example.com", nickname: "준호", verified: true})
		if got := b.me(t, junTok.AccessToken); got.ID != jun.ID {
			t.Errorf("verified address logged in %s, want jun %s", got.ID, jun.ID)
		}

		// Linking from a logged-in member: the callback links, not logs in.
		resp, body = b.flow(t, "plain", junTok.AccessToken, providerAccount{sub: "5000", nickname: "준호"})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("link: status = %d, want 201 (body %s)", resp.StatusCode, body)
		}
		if got, hasPassword := b.identities(t, junTok.AccessToken); strings.Join(got, ",") != "oidc,plain" || !hasPassword {
			t.Errorf("jun's identities = %v (has_password %v), want oidc,plain and a password", got, hasPassword)
		}
		// Linking it again is no error; linking another account of the
		// same provider is.
		resp, body = b.flow(t, "plain", junTok.AccessToken, providerAccount{sub: "5000"})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("link again: status = %d, want 200 (body %s)", resp.StatusCode, body)
		}
		resp, body = b.flow(t, "plain", junTok.AccessToken, providerAccount{sub: "5001"})
		checkError(t, resp, body, http.StatusConflict, "provider_already_linked", "")

		// An account linked to someone else cannot be linked (409),
		// nothing changes.
		before = b.counts(t)
		resp, body = b.flow(t, "plain", tok.AccessToken, providerAccount{sub: "5000"})
		checkError(t, resp, body, http.StatusConflict, "identity_taken", "")
		if after := b.counts(t); after != before {
			t.Errorf("refused link stored something: %s, then %s", before, after)
		}

		// Unlinking: mina's only way to log in stays.
		del := func(token, provider string) (*http.Response, []byte) {
			return b.s.do(t, request{method: http.MethodDelete, path: "/v1/me/identities/" + provider, token: token})
		}
		resp, body = del(tok.AccessToken, "oidc")
		checkError(t, resp, body, http.StatusConflict, "last_login_method", "")
		resp, body = del(tok.AccessToken, "plain")
		checkError(t, resp, body, http.StatusNotFound, "not_found", "")
		if resp, body := b.flow(t, "plain", tok.AccessToken, providerAccount{sub: "6000"}); resp.StatusCode != http.StatusCreated {
			t.Fatalf("mina links plain: status = %d (body %s)", resp.StatusCode, body)
		}
		if resp, body := del(tok.AccessToken, "oidc"); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("unlink with another left: status = %d (body %s)", resp.StatusCode, body)
		}
		resp, body = del(tok.AccessToken, "plain")
		checkError(t, resp, body, http.StatusConflict, "last_login_method", "")
		// Jun has a password: he may unlink both.
		for _, p := range []string{"oidc", "plain"} {
			if resp, body := del(junTok.AccessToken, p); resp.StatusCode != http.StatusNoContent {
				t.Errorf("jun unlinks %s: status = %d (body %s)", p, resp.StatusCode, body)
			}
		}
		// The unlinked OIDC account is a stranger now: it signs up anew
		// with a numbered nickname, since the verified address is mina's.
		if got := b.me(t, b.loginWith(t, "oidc", providerAccount{sub: "oidc-mina", nickname: "미나"}).AccessToken); got.ID == minaMe.ID {
			t.Error("an unlinked account still logs in its old member")
		}

		// A deleted member's accounts go with the account.
		if resp, body := b.s.do(t, request{method: http.MethodDelete, path: "/v1/me", token: jin.AccessToken}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delete jin: status = %d (body %s)", resp.StatusCode, body)
		}
		if got := b.me(t, b.loginWith(t, "plain", providerAccount{sub: "4242", nickname: "jin"}).AccessToken); got.ID == jinMe.ID {
			t.Error("a deleted member's account logs in")
		}

		var list struct {
			Providers []string `json:"providers"`
		}
		b.s.getOK(t, "/v1/auth/providers", "", &list)
		if strings.Join(list.Providers, ",") != "oidc,plain" {
			t.Errorf("providers = %v, want oidc,plain", list.Providers)
		}
	})
}

func TestSocialLoginRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		b := newOAuthBundle(t, bdb)
		acct := providerAccount{sub: "oidc-1", nickname: "미나", email: "mina@example.com", verified: true}
		_, otherKey := testKeys(t)

		// A fresh, approved flow, for cases that spoil one part of it.
		fresh := func(provider string) (started, string) {
			p := b.oidc
			if provider == "plain" {
				p = b.plain
			}
			f := b.start(t, provider, "")
			return f, p.approve(t, f.authURL, acct)
		}
		tests := []struct {
			name       string
			setup      func(p *testProvider) // a knob of the OIDC provider
			call       func() (*http.Response, []byte)
			wantStatus int
			wantCode   string
		}{
			{"no state", nil, func() (*http.Response, []byte) {
				f, code := fresh("oidc")
				return b.callback(t, "oidc", url.Values{"code": {code}}, f.cookie)
			}, http.StatusBadRequest, "invalid_oauth_state"},
			{"forged state", nil, func() (*http.Response, []byte) {
				f, code := fresh("oidc")
				return b.callback(t, "oidc", url.Values{"state": {f.state + "x"}, "code": {code}}, f.cookie)
			}, http.StatusBadRequest, "invalid_oauth_state"},
			{"state of another provider", nil, func() (*http.Response, []byte) {
				f, code := fresh("plain")
				return b.callback(t, "oidc", url.Values{"state": {f.state}, "code": {code}}, f.cookie)
			}, http.StatusBadRequest, "invalid_oauth_state"},
			{"no cookie", nil, func() (*http.Response, []byte) {
				f, code := fresh("oidc")
				return b.callback(t, "oidc", url.Values{"state": {f.state}, "code": {code}}, "")
			}, http.StatusBadRequest, "invalid_oauth_state"},
			{"cookie of another browser", nil, func() (*http.Response, []byte) {
				f, code := fresh("oidc")
				g := b.start(t, "oidc", "") // another browser's flow
				return b.callback(t, "oidc", url.Values{"state": {f.state}, "code": {code}}, g.cookie)
			}, http.StatusBadRequest, "invalid_oauth_state"},
			{"expired state", nil, func() (*http.Response, []byte) {
				f, code := fresh("oidc")
				b.clock.Advance(oauthStateTTL)
				defer b.clock.Advance(-oauthStateTTL)
				return b.callback(t, "oidc", url.Values{"state": {f.state}, "code": {code}}, f.cookie)
			}, http.StatusBadRequest, "invalid_oauth_state"},
			{"unknown provider start", nil, func() (*http.Response, []byte) {
				return b.s.do(t, request{method: http.MethodGet, path: "/v1/auth/oauth/nope"})
			}, http.StatusNotFound, "not_found"},
			{"unknown provider callback", nil, func() (*http.Response, []byte) {
				f, code := fresh("oidc")
				return b.callback(t, "nope", url.Values{"state": {f.state}, "code": {code}}, f.cookie)
			}, http.StatusNotFound, "not_found"},
			{"access denied", nil, func() (*http.Response, []byte) {
				f, _ := fresh("oidc")
				return b.callback(t, "oidc", url.Values{"state": {f.state}, "error": {"access_denied"}}, f.cookie)
			}, http.StatusForbidden, "oauth_denied"},
			{"provider error response", nil, func() (*http.Response, []byte) {
				f, _ := fresh("plain")
				return b.callback(t, "plain", url.Values{"state": {f.state}, "error": {"server_error"}}, f.cookie)
			}, http.StatusBadGateway, "provider_failed"},
			{"unknown code", nil, func() (*http.Response, []byte) {
				f, _ := fresh("plain")
				return b.callback(t, "plain", url.Values{"state": {f.state}, "code": {"made-up"}}, f.cookie)
			}, http.StatusBadRequest, "oauth_code_rejected"},
			{"bad ID-token signature", func(p *testProvider) { p.signWith = otherKey }, func() (*http.Response, []byte) {
				return b.flow(t, "oidc", "", acct)
			}, http.StatusUnauthorized, "invalid_id_token"},
			{"wrong nonce", func(p *testProvider) { p.nonceFor = "someone-elses-nonce" }, func() (*http.Response, []byte) {
				return b.flow(t, "oidc", "", acct)
			}, http.StatusUnauthorized, "invalid_id_token"},
			{"token endpoint fails", func(p *testProvider) { p.failToken = true }, func() (*http.Response, []byte) {
				return b.flow(t, "oidc", "", acct)
			}, http.StatusBadGateway, "provider_failed"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.setup != nil {
					b.oidc.set(tt.setup)
					defer b.oidc.set(func(p *testProvider) { p.signWith, p.nonceFor, p.failToken = nil, "", false })
				}
				before := b.counts(t)
				resp, body := tt.call()
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, "")
				if after := b.counts(t); after != before {
					t.Errorf("refused callback stored something: %s, then %s", before, after)
				}
				if strings.Contains(string(body), testClientSecret) {
					t.Errorf("answer shows the client secret: %s", body)
				}
			})
		}

		// A code used once is refused the second time, even with its
		// state and cookie.
		f, code := fresh("oidc")
		q := url.Values{"state": {f.state}, "code": {code}}
		if resp, body := b.callback(t, "oidc", q, f.cookie); resp.StatusCode != http.StatusOK {
			t.Fatalf("first use: status = %d (body %s)", resp.StatusCode, body)
		}
		resp, body := b.callback(t, "oidc", q, f.cookie)
		checkError(t, resp, body, http.StatusBadRequest, "oauth_code_rejected", "")

		// Without a token the member routes are closed.
		resp, body = b.s.do(t, request{method: http.MethodPost, path: "/v1/me/identities/oidc"})
		checkError(t, resp, body, http.StatusUnauthorized, "unauthorized", "")
		tok := b.loginWith(t, "oidc", acct)
		resp, body = b.s.do(t, request{method: http.MethodPost, path: "/v1/me/identities/nope", token: tok.AccessToken})
		checkError(t, resp, body, http.StatusNotFound, "not_found", "")

		if logs := b.s.logs.String(); strings.Contains(logs, testClientSecret) {
			t.Error("the log shows the client secret")
		}
	})
}
