package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/domain"
)

// tokenNow is the fixed clock of the token tests.
var tokenNow = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func randomKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newTokens(t testing.TB, key []byte) *auth.Tokens {
	t.Helper()
	toks, err := auth.NewTokens(auth.TokenParams{
		Key:     key,
		TTL:     15 * time.Minute,
		NowFunc: func() time.Time { return tokenNow },
	})
	if err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	return toks
}

// validClaims are the claims Issue would write at tokenNow.
func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":  "moim",
		"aud":  []string{"moim-api"},
		"sub":  "m_alice",
		"jti":  "jti-1",
		"sid":  "sid-1",
		"role": "member",
		"iat":  tokenNow.Unix(),
		"nbf":  tokenNow.Unix(),
		"exp":  tokenNow.Add(15 * time.Minute).Unix(),
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// with returns the valid claims changed by set; a nil value deletes.
func with(set map[string]any) jwt.MapClaims {
	c := validClaims()
	for k, v := range set {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	toks := newTokens(t, randomKey(t))
	tok, issued, err := toks.Issue("m_alice", domain.RoleAdmin, "s_1")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	want := auth.Claims{
		MemberID:  "m_alice",
		Role:      domain.RoleAdmin,
		SessionID: "s_1",
		ID:        issued.ID,
		IssuedAt:  tokenNow,
		ExpiresAt: tokenNow.Add(15 * time.Minute),
	}
	if diff := cmp.Diff(want, issued); diff != "" {
		t.Errorf("Issue claims (-want +got):\n%s", diff)
	}
	parsed, err := toks.Parse(tok)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(issued, parsed); diff != "" {
		t.Errorf("Parse claims (-issued +parsed):\n%s", diff)
	}

	// The payload, as other services and debuggers see it.
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil {
		t.Fatal(err)
	}
	wantRaw := map[string]any{
		"iss": "moim", "aud": []any{"moim-api"}, "sub": "m_alice", "jti": issued.ID, "sid": "s_1",
		"role": "admin", "iat": float64(tokenNow.Unix()), "nbf": float64(tokenNow.Unix()),
		"exp": float64(tokenNow.Add(15 * time.Minute).Unix()),
	}
	if diff := cmp.Diff(wantRaw, raw); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if toks.TTL() != 15*time.Minute {
		t.Errorf("TTL() = %s, want 15m", toks.TTL())
	}
}

func TestTokenParseRejects(t *testing.T) {
	t.Parallel()
	key := randomKey(t)
	toks := newTokens(t, key)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodHS256, key, validClaims())
	goodParts := strings.Split(good, ".")

	// tamper swaps the payload of a correctly signed token.
	tamper := func(set map[string]any) string {
		b, err := json.Marshal(with(set))
		if err != nil {
			t.Fatal(err)
		}
		return goodParts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + goodParts[2]
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	past := tokenNow.Add(-time.Minute).Unix()
	future := tokenNow.Add(time.Minute).Unix()

	tests := []struct {
		name     string
		token    string
		wantCode string // "" = valid
	}{
		{"valid", good, ""},
		{"aud as a single string", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"aud": "moim-api"})), ""},
		{"alg none", none, domain.EINVALIDTOKEN},
		{"alg none with a signature", none + goodParts[2], domain.EINVALIDTOKEN},
		{"another key", sign(t, jwt.SigningMethodHS256, randomKey(t), validClaims()), domain.EINVALIDTOKEN},
		{"HS384 same key", sign(t, jwt.SigningMethodHS384, key, validClaims()), domain.EINVALIDTOKEN},
		{"HS512 same key", sign(t, jwt.SigningMethodHS512, key, validClaims()), domain.EINVALIDTOKEN},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, validClaims()), domain.EINVALIDTOKEN},
		{"wrong iss", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"iss": "other"})), domain.EINVALIDTOKEN},
		{"missing iss", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"iss": nil})), domain.EINVALIDTOKEN},
		{"wrong aud", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"aud": []string{"moim-admin"}})), domain.EINVALIDTOKEN},
		{"missing aud", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"aud": nil})), domain.EINVALIDTOKEN},
		{"expired", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"exp": past})), domain.ETOKENEXPIRED},
		{"expired within leeway", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"exp": tokenNow.Add(-5 * time.Second).Unix()})), ""},
		{"expired and wrong aud", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"exp": past, "aud": "x"})), domain.EINVALIDTOKEN},
		{"expired and no sid", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"exp": past, "sid": nil})), domain.EINVALIDTOKEN},
		{"expired with another key", sign(t, jwt.SigningMethodHS256, randomKey(t), with(map[string]any{"exp": past})), domain.EINVALIDTOKEN},
		{"nbf beyond leeway", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"nbf": future})), domain.EINVALIDTOKEN},
		{"nbf and iat within leeway", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"nbf": tokenNow.Add(5 * time.Second).Unix(), "iat": tokenNow.Add(5 * time.Second).Unix()})), ""},
		{"iat beyond leeway", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"iat": future})), domain.EINVALIDTOKEN},
		{"missing exp", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"exp": nil})), domain.EINVALIDTOKEN},
		{"missing nbf", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"nbf": nil})), domain.EINVALIDTOKEN},
		{"missing iat", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"iat": nil})), domain.EINVALIDTOKEN},
		{"exp not a number", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"exp": "soon"})), domain.EINVALIDTOKEN},
		{"missing sub", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"sub": nil})), domain.EINVALIDTOKEN},
		{"empty sub", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"sub": ""})), domain.EINVALIDTOKEN},
		{"missing jti", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"jti": nil})), domain.EINVALIDTOKEN},
		{"missing sid", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"sid": nil})), domain.EINVALIDTOKEN},
		{"unknown role", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"role": "owner"})), domain.EINVALIDTOKEN},
		{"role as number", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"role": 2})), domain.EINVALIDTOKEN},
		{"missing role", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"role": nil})), domain.EINVALIDTOKEN},
		{"tampered role", tamper(map[string]any{"role": "admin"}), domain.EINVALIDTOKEN},
		{"tampered sub", tamper(map[string]any{"sub": "m_bob"}), domain.EINVALIDTOKEN},
		// Signed with our key, yet living longer than Issue ever makes a
		// token: a leaked key's forgery, or a TTL lowered since.
		{"exp a day after iat", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"exp": tokenNow.Add(24 * time.Hour).Unix()})), domain.EINVALIDTOKEN},
		{"exp one second past the lifetime", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"exp": tokenNow.Add(15*time.Minute + time.Second).Unix()})), domain.EINVALIDTOKEN},
		{"exp shorter than the lifetime", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"exp": tokenNow.Add(time.Minute).Unix()})), ""},
		{"expired and too long", sign(t, jwt.SigningMethodHS256, key, with(map[string]any{"iat": tokenNow.Add(-48 * time.Hour).Unix(), "nbf": tokenNow.Add(-48 * time.Hour).Unix(), "exp": past})), domain.EINVALIDTOKEN},
		{"tampered exp", tamper(map[string]any{"exp": tokenNow.Add(24 * time.Hour).Unix()}), domain.EINVALIDTOKEN},
		{"signature removed", goodParts[0] + "." + goodParts[1] + ".", domain.EINVALIDTOKEN},
		{"signature padded", good + "=", domain.EINVALIDTOKEN},
		{"empty", "", domain.EINVALIDTOKEN},
		{"garbage", "not a token", domain.EINVALIDTOKEN},
		{"dots only", "..", domain.EINVALIDTOKEN},
		{"four segments", good + ".x", domain.EINVALIDTOKEN},
		{"bearer prefix", "Bearer " + good, domain.EINVALIDTOKEN},
		{"base64 junk", "eyJhbGciOi.eyJzdWIi.c2ln", domain.EINVALIDTOKEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := toks.Parse(tt.token)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if c.MemberID != "m_alice" || c.SessionID != "sid-1" || c.ID != "jti-1" || c.Role != domain.RoleMember {
					t.Errorf("Parse = %+v, want the claims signed", c)
				}
				return
			}
			if got := domain.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("Parse error = %v (code %q), want code %q", err, got, tt.wantCode)
			}
			var de *domain.Error
			errors.As(err, &de)
			wantMsg := map[string]string{
				domain.EINVALIDTOKEN: "Access token is invalid.",
				domain.ETOKENEXPIRED: "Access token has expired.",
			}[tt.wantCode]
			if de.Message != wantMsg {
				t.Errorf("message = %q, want %q", de.Message, wantMsg)
			}
			if de.Err == nil {
				t.Error("the cause is missing")
			}
			if tt.wantCode == domain.ETOKENEXPIRED && !errors.Is(err, jwt.ErrTokenExpired) {
				t.Errorf("error %v is not jwt.ErrTokenExpired", err)
			}
			if c != (auth.Claims{}) {
				t.Errorf("Parse returned claims %+v with an error", c)
			}
			msg := err.Error()
			if len(tt.token) > 10 && strings.Contains(msg, tt.token) {
				t.Errorf("error %q contains the token", msg)
			}
			if strings.Contains(msg, string(key)) || strings.Contains(msg, base64.RawURLEncoding.EncodeToString(key)) {
				t.Errorf("error %q contains the key", msg)
			}
		})
	}
}

func TestTokenIssueClaims(t *testing.T) {
	t.Parallel()
	toks, err := auth.NewTokens(auth.TokenParams{
		Key:      randomKey(t),
		Issuer:   "moim-staging",
		Audience: "moim-staging-api",
		TTL:      time.Hour,
		Leeway:   time.Second,
	})
	if err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	tok, issued, err := toks.Issue("m_1", domain.RoleMember, "s_1")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if d := issued.ExpiresAt.Sub(issued.IssuedAt); d != time.Hour {
		t.Errorf("exp - iat = %s, want 1h", d)
	}
	if d := time.Since(issued.IssuedAt); d < 0 || d > 2*time.Second {
		t.Errorf("iat is %s ago, want now (time.Now by default)", d)
	}
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "moim-staging" || len(c.Audience) != 1 || c.Audience[0] != "moim-staging-api" {
		t.Errorf("iss, aud = %q, %q; want the configured ones", c.Issuer, c.Audience)
	}
	if _, err := toks.Parse(tok); err != nil {
		t.Errorf("Parse: %v", err)
	}
	// A token of the default issuer and audience is another service's.
	other := newTokens(t, randomKey(t))
	if _, err := other.Parse(tok); domain.ErrorCode(err) != domain.EINVALIDTOKEN {
		t.Errorf("Parse by other Tokens error = %v, want %s", err, domain.EINVALIDTOKEN)
	}

	for _, bad := range []struct {
		name              string
		member, sessionID string
		role              domain.Role
	}{
		{"no member", "", "s", domain.RoleMember},
		{"no session", "m", "", domain.RoleMember},
		{"zero role", "m", "s", 0},
		{"unknown role", "m", "s", 9},
	} {
		if _, _, err := toks.Issue(bad.member, bad.role, bad.sessionID); err == nil {
			t.Errorf("Issue(%s) error = nil, want one", bad.name)
		}
	}
}

func TestTokenIDsUnique(t *testing.T) {
	t.Parallel()
	toks := newTokens(t, randomKey(t))
	const n = 10000
	seen := make(map[string]bool, n)
	for range n {
		_, c, err := toks.Issue("m", domain.RoleMember, "s")
		if err != nil {
			t.Fatal(err)
		}
		if b, err := base64.RawURLEncoding.DecodeString(c.ID); err != nil || len(b) != 16 {
			t.Fatalf("jti %q is not 16 bytes of unpadded base64url", c.ID)
		}
		if seen[c.ID] {
			t.Fatalf("jti %q repeated", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestNewTokensParams(t *testing.T) {
	t.Parallel()
	key := randomKey(t)
	tests := []struct {
		name string
		p    auth.TokenParams
		ok   bool
	}{
		{"ok", auth.TokenParams{Key: key, TTL: time.Minute}, true},
		{"short key", auth.TokenParams{Key: key[:31], TTL: time.Minute}, false},
		{"no key", auth.TokenParams{TTL: time.Minute}, false},
		{"no TTL", auth.TokenParams{Key: key}, false},
		{"negative TTL", auth.TokenParams{Key: key, TTL: -time.Minute}, false},
		{"negative leeway", auth.TokenParams{Key: key, TTL: time.Minute, Leeway: -time.Second}, false},
	}
	for _, tt := range tests {
		_, err := auth.NewTokens(tt.p)
		if (err == nil) != tt.ok {
			t.Errorf("%s: NewTokens error = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), string(key[:31])) {
			t.Errorf("%s: error %q contains the key", tt.name, err)
		}
	}
}

func TestTokensKeepOwnKey(t *testing.T) {
	t.Parallel()
	key := randomKey(t)
	toks := newTokens(t, key)
	tok, _, err := toks.Issue("m", domain.RoleMember, "s")
	if err != nil {
		t.Fatal(err)
	}
	clear(key) // the caller zeroes or reuses its buffer
	if _, err := toks.Parse(tok); err != nil {
		t.Errorf("Parse after the caller's key changed: %v", err)
	}
}
