package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/moim/moim/domain"
)

// The kinds of social-login provider.
const (
	// KindOIDC is an OpenID Connect provider: endpoints from the issuer's
	// discovery document, the account from the signed ID token.
	KindOIDC = "oidc"
	// KindOAuth2 is a plain OAuth2 provider: endpoints from the config, the
	// account from a user-info URL called with the access token.
	KindOAuth2 = "oauth2"
)

// Defaults of SocialParams.
const (
	DefaultStateTTL        = 10 * time.Minute
	DefaultProviderTimeout = 10 * time.Second
)

// maxUserInfoBytes caps a user-info answer; a profile is a few hundred bytes.
const maxUserInfoBytes = 1 << 20

// ProviderParams configure one social-login provider; the caller has filled
// in its preset and checked it.
type ProviderParams struct {
	Name         string // URL segment: /v1/auth/oauth/{Name}
	Kind         string // KindOIDC or KindOAuth2
	ClientID     string
	ClientSecret string
	Scopes       []string
	// RedirectURL is this API's callback as registered at the provider.
	RedirectURL string
	// Issuer is an OIDC provider's issuer URL.
	Issuer string
	// AuthURL, TokenURL and UserInfoURL are a plain OAuth2 provider's.
	AuthURL, TokenURL, UserInfoURL string
	// The user-info answer's fields, as dotted paths into its JSON
	// ("response.id"); IDField is required, the others optional.
	IDField, EmailField, EmailVerifiedField, NicknameField string
	// TrustEmail counts every address the provider gives as verified, for
	// providers that hand out only verified addresses without saying so.
	TrustEmail bool
}

// SocialParams configure social login.
type SocialParams struct {
	Providers []ProviderParams
	// StateKey signs the state parameter and derives the PKCE verifier and
	// the OIDC nonce; at least MinKeyLen bytes.
	StateKey []byte
	// StateTTL is how long a started login may take; DefaultStateTTL when 0.
	StateTTL time.Duration
	// Timeout bounds each call to a provider; DefaultProviderTimeout when 0.
	Timeout time.Duration
	// Transport makes the calls to providers; http.DefaultTransport when nil.
	Transport http.RoundTripper
	NowFunc   func() time.Time // time.Now when nil
}

// Social runs the authorization-code flow (with PKCE and, for OIDC, a
// nonce) against the configured providers. Its state is signed and bound
// to the browser: Start hands out a random browser secret for an HttpOnly
// cookie, and the state carries only a MAC of it, so a state taken from
// one browser is useless in another.
type Social struct {
	providers map[string]*socialProvider
	key       []byte
	ttl       time.Duration
	client    *http.Client
	now       func() time.Time
}

// socialProvider is one provider; an OIDC one discovers its endpoints on
// first use, so an unreachable provider does not stop the API starting.
type socialProvider struct {
	ProviderParams

	mu   sync.Mutex
	oidc *oidc.Provider
}

// NewSocial checks p and returns the flows. No provider is contacted.
func NewSocial(p SocialParams) (*Social, error) {
	if len(p.StateKey) < MinKeyLen {
		return nil, fmt.Errorf("social login: state key must be at least %d bytes", MinKeyLen)
	}
	s := &Social{
		providers: map[string]*socialProvider{},
		key:       p.StateKey,
		ttl:       p.StateTTL,
		now:       p.NowFunc,
	}
	if s.ttl <= 0 {
		s.ttl = DefaultStateTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultProviderTimeout
	}
	transport := p.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	s.client = &http.Client{Timeout: timeout, Transport: transport}
	var errs []error
	for _, pp := range p.Providers {
		if err := checkProvider(pp); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := s.providers[pp.Name]; dup {
			errs = append(errs, fmt.Errorf("provider %s: configured twice", pp.Name))
			continue
		}
		s.providers[pp.Name] = &socialProvider{ProviderParams: pp}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("social login: %w", err)
	}
	return s, nil
}

func checkProvider(p ProviderParams) error {
	var missing []string
	need := func(name, v string) {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if !domain.ValidProviderName(p.Name) {
		return fmt.Errorf("provider %q: the name must be lower-case letters and digits", p.Name)
	}
	need("client id", p.ClientID)
	need("client secret", p.ClientSecret)
	need("redirect URL", p.RedirectURL)
	switch p.Kind {
	case KindOIDC:
		need("issuer", p.Issuer)
	case KindOAuth2:
		need("auth URL", p.AuthURL)
		need("token URL", p.TokenURL)
		need("user-info URL", p.UserInfoURL)
		need("id field", p.IDField)
	default:
		return fmt.Errorf("provider %s: kind %q is neither %s nor %s", p.Name, p.Kind, KindOIDC, KindOAuth2)
	}
	if len(missing) > 0 {
		return fmt.Errorf("provider %s: missing %s", p.Name, strings.Join(missing, ", "))
	}
	return nil
}

// Names returns the configured providers' names, sorted.
func (s *Social) Names() []string {
	if s == nil {
		return nil
	}
	names := make([]string, 0, len(s.providers))
	for n := range s.providers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// StateTTL is how long a started flow stays valid; the browser cookie
// should live as long.
func (s *Social) StateTTL() time.Duration { return s.ttl }

// CookieName is the name of the cookie holding the browser secret of a flow
// with provider; one per provider, so two tabs logging in with different
// providers do not spoil each other.
func CookieName(provider string) string { return "moim_oauth_" + provider }

// errUnknownProvider is the answer for a provider that is not configured.
func errUnknownProvider() error {
	return domain.Errorf(domain.ENOTFOUND, "No such login provider.")
}

// Start begins a flow with provider. linkMember is "" for a login, or the
// member the account is to be linked to. It returns the provider's
// authorization URL and the browser secret for the cookie. Errors:
// ENOTFOUND for an unknown provider, EPROVIDERFAILED when an OIDC
// provider's discovery fails.
func (s *Social) Start(ctx context.Context, provider, linkMember string) (authURL, browserSecret string, err error) {
	p, err := s.provider(provider)
	if err != nil {
		return "", "", err
	}
	conf, err := s.config(ctx, p)
	if err != nil {
		return "", "", err
	}
	secret := randomText()
	st := statePayload{
		Provider: provider,
		Member:   linkMember,
		Expires:  s.now().Add(s.ttl).Unix(),
		Browser:  s.derive("browser", secret),
	}
	state, err := s.signState(st)
	if err != nil {
		return "", "", err
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(s.derive("pkce", secret))}
	if p.Kind == KindOIDC {
		opts = append(opts, oidc.Nonce(s.derive("nonce", secret)))
	}
	return conf.AuthCodeURL(state, opts...), secret, nil
}

// Callback is what the provider's redirect brought back.
type Callback struct {
	Provider string
	State    string
	// BrowserSecret is the flow's cookie, "" when the browser sent none.
	BrowserSecret string
	Code          string
	// Error and ErrorDescription are the provider's error response
	// (access_denied when the member said no).
	Error, ErrorDescription string
}

// Profile is the provider account a flow ended with.
type Profile struct {
	Provider string
	Subject  string
	// Email is normalised (domain.NormalizeEmail), "" when the provider
	// gave none or one that is not an address.
	Email         string
	EmailVerified bool
	// Nickname is the profile's name as the provider has it, unchecked.
	Nickname string
	// LinkMember is the member the flow was started to link to, "" for a
	// login.
	LinkMember string
}

// Finish checks the callback's state against the browser secret, exchanges
// the code (with the PKCE verifier) and reads the account. Errors:
// ENOTFOUND (unknown provider), EOAUTHSTATE (missing, forged or expired
// state, or one from another browser), EOAUTHDENIED (the member said no),
// EOAUTHCODE (the provider refused the code: used or expired),
// EINVALIDIDTOKEN (OIDC: the ID token does not verify or has another
// nonce), EPROVIDERFAILED (the provider failed or answered nonsense). The
// cause of a provider error is kept for the log; the client secret is in
// none of them.
func (s *Social) Finish(ctx context.Context, cb Callback) (*Profile, error) {
	p, err := s.provider(cb.Provider)
	if err != nil {
		return nil, err
	}
	st, err := s.checkState(cb)
	if err != nil {
		return nil, err
	}
	if cb.Error != "" {
		if cb.Error == "access_denied" {
			return nil, domain.Errorf(domain.EOAUTHDENIED, "You did not allow the login at %s.", p.Name)
		}
		return nil, &domain.Error{Code: domain.EPROVIDERFAILED, Message: "The login provider answered with an error.",
			Err: fmt.Errorf("provider %s: error %q: %q", p.Name, cb.Error, cb.ErrorDescription)}
	}
	if cb.Code == "" {
		return nil, domain.FieldErrorf(domain.EINVALID, "code", "The callback has no code.")
	}
	ctx, cancel := context.WithTimeout(ctx, s.client.Timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.client)
	conf, err := s.config(ctx, p)
	if err != nil {
		return nil, err
	}
	tok, err := conf.Exchange(ctx, cb.Code, oauth2.VerifierOption(s.derive("pkce", cb.BrowserSecret)))
	if err != nil {
		return nil, exchangeError(p.Name, err)
	}
	var prof *Profile
	if p.Kind == KindOIDC {
		prof, err = s.oidcProfile(ctx, p, tok, s.derive("nonce", cb.BrowserSecret))
	} else {
		prof, err = s.userInfoProfile(ctx, p, tok)
	}
	if err != nil {
		return nil, err
	}
	prof.Provider, prof.LinkMember = p.Name, st.Member
	if prof.Email != "" && p.TrustEmail {
		prof.EmailVerified = true
	}
	return prof, nil
}

func (s *Social) provider(name string) (*socialProvider, error) {
	if s == nil {
		return nil, errUnknownProvider()
	}
	p, ok := s.providers[name]
	if !ok {
		return nil, errUnknownProvider()
	}
	return p, nil
}

// config returns p's oauth2 configuration, discovering an OIDC provider's
// endpoints the first time.
func (s *Social) config(ctx context.Context, p *socialProvider) (*oauth2.Config, error) {
	conf := &oauth2.Config{
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret,
		RedirectURL:  p.RedirectURL,
		Scopes:       p.Scopes,
		Endpoint:     oauth2.Endpoint{AuthURL: p.AuthURL, TokenURL: p.TokenURL},
	}
	if p.Kind == KindOIDC {
		op, err := s.discover(ctx, p)
		if err != nil {
			return nil, err
		}
		conf.Endpoint = op.Endpoint()
	}
	return conf, nil
}

func (s *Social) discover(ctx context.Context, p *socialProvider) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oidc != nil {
		return p.oidc, nil
	}
	// The key set keeps this client (and its timeout) for its later
	// fetches, but not the context's deadline.
	ctx, cancel := context.WithTimeout(ctx, s.client.Timeout)
	defer cancel()
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, s.client), p.Issuer)
	if err != nil {
		return nil, &domain.Error{Code: domain.EPROVIDERFAILED, Message: "The login provider cannot be reached; try again later.",
			Err: fmt.Errorf("discover provider %s: %w", p.Name, err)}
	}
	p.oidc = op
	return op, nil
}

// exchangeError classifies a failed code exchange: a refused grant is the
// client's (a code used twice, or too late), anything else the provider's.
func exchangeError(provider string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		return &domain.Error{Code: domain.EOAUTHCODE, Message: "The provider refused the login code: it was used already or expired. Start again.",
			Err: fmt.Errorf("exchange code at %s: %w", provider, err)}
	}
	return &domain.Error{Code: domain.EPROVIDERFAILED, Message: "The login provider failed to complete the login; try again later.",
		Err: fmt.Errorf("exchange code at %s: %w", provider, err)}
}

func providerFailed(provider, what string, err error) error {
	return &domain.Error{Code: domain.EPROVIDERFAILED, Message: "The login provider answered what cannot be read.",
		Err: fmt.Errorf("%s from %s: %w", what, provider, err)}
}

// oidcClaims are the ID token claims moim reads.
type oidcClaims struct {
	Email             string     `json:"email"`
	EmailVerified     stringBool `json:"email_verified"`
	Nickname          string     `json:"nickname"`
	PreferredUsername string     `json:"preferred_username"`
	Name              string     `json:"name"`
}

func (s *Social) oidcProfile(ctx context.Context, p *socialProvider, tok *oauth2.Token, nonce string) (*Profile, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, providerFailed(p.Name, "token answer", errors.New("no id_token"))
	}
	op, err := s.discover(ctx, p)
	if err != nil {
		return nil, err
	}
	idt, err := op.Verifier(&oidc.Config{ClientID: p.ClientID, Now: s.now}).Verify(oidc.ClientContext(ctx, s.client), raw)
	if err != nil {
		return nil, &domain.Error{Code: domain.EINVALIDIDTOKEN, Message: "The provider's ID token did not verify.",
			Err: fmt.Errorf("verify ID token of %s: %w", p.Name, err)}
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, &domain.Error{Code: domain.EINVALIDIDTOKEN, Message: "The provider's ID token is not for this login.",
			Err: fmt.Errorf("ID token of %s: nonce mismatch", p.Name)}
	}
	var c oidcClaims
	if err := idt.Claims(&c); err != nil {
		return nil, providerFailed(p.Name, "ID token claims", err)
	}
	if idt.Subject == "" || len(idt.Subject) > domain.MaxSubjectLen {
		return nil, providerFailed(p.Name, "ID token", errors.New("no usable sub"))
	}
	prof := &Profile{Subject: idt.Subject, Nickname: firstNonEmpty(c.Nickname, c.PreferredUsername, c.Name)}
	prof.Email, prof.EmailVerified = profileEmail(c.Email, bool(c.EmailVerified))
	return prof, nil
}

func (s *Social) userInfoProfile(ctx context.Context, p *socialProvider, tok *oauth2.Token) (*Profile, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.UserInfoURL, nil)
	if err != nil {
		return nil, providerFailed(p.Name, "user info", err)
	}
	req.Header.Set("Accept", "application/json")
	tok.SetAuthHeader(req)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, &domain.Error{Code: domain.EPROVIDERFAILED, Message: "The login provider cannot be reached; try again later.",
			Err: fmt.Errorf("user info from %s: %w", p.Name, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserInfoBytes))
	if err != nil {
		return nil, providerFailed(p.Name, "user info", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, providerFailed(p.Name, "user info", fmt.Errorf("status %d", resp.StatusCode))
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, providerFailed(p.Name, "user info", err)
	}
	sub := scalarAt(doc, p.IDField)
	if sub == "" || len(sub) > domain.MaxSubjectLen {
		return nil, providerFailed(p.Name, "user info", fmt.Errorf("no usable %s", p.IDField))
	}
	prof := &Profile{Subject: sub, Nickname: scalarAt(doc, p.NicknameField)}
	verified := false
	if p.EmailVerifiedField != "" {
		verified = truthy(scalarAt(doc, p.EmailVerifiedField))
	}
	prof.Email, prof.EmailVerified = profileEmail(scalarAt(doc, p.EmailField), verified)
	return prof, nil
}

// profileEmail normalises a provider's address; one that is not a valid
// address counts as none.
func profileEmail(email string, verified bool) (string, bool) {
	if email == "" {
		return "", false
	}
	e, err := domain.NormalizeEmail("email", email)
	if err != nil {
		return "", false
	}
	return e, verified
}

// scalarAt returns the string, number or boolean at the dotted path in
// doc, as text; "" when there is none or path is "".
func scalarAt(doc any, path string) string {
	if path == "" {
		return ""
	}
	for _, part := range strings.Split(path, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return ""
		}
		doc = m[part]
	}
	switch v := doc.(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// truthy reads a provider's yes: true, "true", "Y" (Naver's style).
func truthy(s string) bool {
	switch strings.ToLower(s) {
	case "true", "y", "yes", "1":
		return true
	}
	return false
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// stringBool is a JSON boolean that some providers send as a string.
type stringBool bool

func (b *stringBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case bool:
		*b = stringBool(t)
	case string:
		*b = stringBool(truthy(t))
	}
	return nil
}

// statePayload is what the state parameter carries, signed.
type statePayload struct {
	Provider string `json:"p"`
	// Member is the member to link to; "" for a login.
	Member  string `json:"m,omitempty"`
	Expires int64  `json:"e"`
	// Browser is a MAC of the browser secret in the flow's cookie.
	Browser string `json:"b"`
}

func (s *Social) signState(st statePayload) (string, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("encode state: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + s.derive("state", payload), nil
}

func errState(msg string) error { return domain.Errorf(domain.EOAUTHSTATE, "%s", msg) }

// checkState verifies the callback's state: signed by us, for this
// provider, not expired, and started in this browser.
func (s *Social) checkState(cb Callback) (*statePayload, error) {
	if cb.State == "" {
		return nil, errState("The callback has no state; start the login again.")
	}
	payload, mac, ok := strings.Cut(cb.State, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.derive("state", payload))) {
		return nil, errState("The login state is not valid; start the login again.")
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var st statePayload
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil || st.Provider != cb.Provider {
		return nil, errState("The login state is not valid; start the login again.")
	}
	if !s.now().Before(time.Unix(st.Expires, 0)) {
		return nil, errState("The login took too long; start it again.")
	}
	if cb.BrowserSecret == "" || !hmac.Equal([]byte(st.Browser), []byte(s.derive("browser", cb.BrowserSecret))) {
		return nil, errState("The login was started in another browser; start it again here.")
	}
	return &st, nil
}

// derive returns a value bound to purpose and input under the state key:
// the state's MAC, the browser secret's MAC the state carries, the PKCE
// verifier and the OIDC nonce. Only the server and the browser holding the
// secret can compute the verifier; the provider sees its hash.
func (s *Social) derive(purpose, input string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("moim social " + purpose + "\x00" + input))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// randomText returns 256 random bits, URL-safe.
func randomText() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails; it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}
