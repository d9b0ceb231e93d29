package auth

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moim/moim/domain"
)

// Defaults of TokenParams.
const (
	DefaultIssuer   = "moim"
	DefaultAudience = "moim-api"
	// DefaultLeeway absorbs clock skew between API hosts.
	DefaultLeeway = 10 * time.Second
	// MinKeyLen is the shortest HS256 key accepted: as many bytes as the
	// hash's output (RFC 7518 section 3.2).
	MinKeyLen = 32
)

// TokenParams configure access tokens.
type TokenParams struct {
	Key      []byte // HS256 key, at least MinKeyLen bytes
	Issuer   string // DefaultIssuer when empty
	Audience string // DefaultAudience when empty
	TTL      time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat; zero means
	// DefaultLeeway.
	Leeway  time.Duration
	NowFunc func() time.Time // time.Now when nil
}

// Claims are what an access token says.
type Claims struct {
	MemberID  string // sub: the member's public id
	Role      domain.Role
	SessionID string // sid: the login session the token was issued in
	ID        string // jti: 128 random bits, unpadded base64url
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Tokens issues and parses access tokens: JWTs signed with HS256. It is
// safe for concurrent use.
type Tokens struct {
	key      []byte
	issuer   string
	audience string
	ttl      time.Duration
	// maxLifetime is the longest exp−iat accepted: the TTL rounded up to
	// the second that NumericDate keeps.
	maxLifetime time.Duration
	now         func() time.Time
	parser      *jwt.Parser
}

// NewTokens checks p and returns Tokens using it.
func NewTokens(p TokenParams) (*Tokens, error) {
	var errs []error
	if len(p.Key) < MinKeyLen {
		// The length only: the key itself never goes into an error.
		errs = append(errs, fmt.Errorf("token key is %d bytes, want at least %d", len(p.Key), MinKeyLen))
	}
	if p.TTL <= 0 {
		errs = append(errs, fmt.Errorf("token TTL %s is not positive", p.TTL))
	}
	if p.Leeway < 0 {
		errs = append(errs, fmt.Errorf("token leeway %s is negative", p.Leeway))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t := &Tokens{
		key:      append([]byte(nil), p.Key...), // the caller may reuse its slice
		issuer:   cmp.Or(p.Issuer, DefaultIssuer),
		audience: cmp.Or(p.Audience, DefaultAudience),
		ttl:      p.TTL,
		now:      p.NowFunc,
	}
	t.maxLifetime = (p.TTL + time.Second - 1).Truncate(time.Second)
	if t.now == nil {
		t.now = time.Now
	}
	leeway := p.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	t.parser = jwt.NewParser(
		// Pinned, so a token cannot pick its own algorithm ("none", or an
		// RSA public key used as an HMAC secret).
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.audience),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
		// One spelling per token: no padded or non-canonical base64.
		jwt.WithStrictDecoding(),
	)
	return t, nil
}

// TTL returns how long an access token is valid.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// jwtClaims is the token's JSON payload.
type jwtClaims struct {
	jwt.RegisteredClaims
	Role      string `json:"role"`
	SessionID string `json:"sid"`
	// maxLifetime is set by Parse: a token living longer than we issue
	// was not made by Issue (a leaked key, or a TTL since lowered).
	maxLifetime time.Duration
}

// errClaim reports a claim of ours that is missing or wrong in a token whose
// signature is valid.
var errClaim = errors.New("token has an invalid moim claim")

// Validate is called by the parser after the registered claims are checked,
// so its findings join theirs.
func (c *jwtClaims) Validate() error {
	var errs []error
	if c.Subject == "" {
		errs = append(errs, fmt.Errorf("%w: sub is empty", errClaim))
	}
	if c.ID == "" {
		errs = append(errs, fmt.Errorf("%w: jti is empty", errClaim))
	}
	if c.SessionID == "" {
		errs = append(errs, fmt.Errorf("%w: sid is empty", errClaim))
	}
	if c.IssuedAt == nil {
		errs = append(errs, fmt.Errorf("%w: iat is missing", errClaim))
	} else if c.ExpiresAt != nil && c.maxLifetime > 0 && c.ExpiresAt.Sub(c.IssuedAt.Time) > c.maxLifetime {
		errs = append(errs, fmt.Errorf("%w: exp is more than the token lifetime after iat", errClaim))
	}
	if _, err := domain.ParseRole(c.Role); err != nil {
		errs = append(errs, fmt.Errorf("%w: role is unknown", errClaim))
	}
	return errors.Join(errs...)
}

// Issue returns a new signed access token for the member and its claims. The
// token is valid from now until now+TTL (to the second).
func (t *Tokens) Issue(memberID string, role domain.Role, sessionID string) (string, Claims, error) {
	if memberID == "" || sessionID == "" {
		return "", Claims{}, errors.New("issue access token: member id and session id are required")
	}
	roleName, err := role.MarshalText()
	if err != nil {
		return "", Claims{}, fmt.Errorf("issue access token: %w", err)
	}
	now := t.now()
	iat := jwt.NewNumericDate(now)
	exp := jwt.NewNumericDate(now.Add(t.ttl))
	c := jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   memberID,
			Audience:  jwt.ClaimStrings{t.audience},
			ExpiresAt: exp,
			NotBefore: iat,
			IssuedAt:  iat,
			ID:        newTokenID(),
		},
		Role:      string(roleName),
		SessionID: sessionID,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &c).SignedString(t.key)
	if err != nil {
		return "", Claims{}, fmt.Errorf("sign access token: %w", err)
	}
	return signed, Claims{
		MemberID:  memberID,
		Role:      role,
		SessionID: sessionID,
		ID:        c.ID,
		IssuedAt:  iat.UTC(),
		ExpiresAt: exp.UTC(),
	}, nil
}

// Parse verifies an access token and returns its claims. An expired token
// gives ETOKENEXPIRED (refreshing helps); anything else wrong gives
// EINVALIDTOKEN with the parser's error as the cause. It does not consult
// the deny-list: see Sessions.Check.
func (t *Tokens) Parse(token string) (Claims, error) {
	c := jwtClaims{maxLifetime: t.maxLifetime}
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil })
	if err != nil {
		if onlyExpired(err) {
			return Claims{}, &domain.Error{Code: domain.ETOKENEXPIRED, Message: "Access token has expired.", Err: err}
		}
		return Claims{}, &domain.Error{Code: domain.EINVALIDTOKEN, Message: "Access token is invalid.", Err: err}
	}
	role, _ := domain.ParseRole(c.Role) // checked in Validate
	return Claims{
		MemberID:  c.Subject,
		Role:      role,
		SessionID: c.SessionID,
		ID:        c.ID,
		IssuedAt:  c.IssuedAt.UTC(),
		ExpiresAt: c.ExpiresAt.UTC(),
	}, nil
}

// onlyExpired reports whether expiry is all that is wrong with a token. The
// parser checks claims only once the signature is good, and it reports every
// failing claim, so a token that is wrong in some other way as well stays
// invalid: a client must not be told that refreshing would help.
func onlyExpired(err error) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) {
		return false
	}
	for _, other := range []error{
		jwt.ErrTokenNotValidYet, jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenInvalidIssuer,
		jwt.ErrTokenInvalidAudience, jwt.ErrTokenRequiredClaimMissing, jwt.ErrInvalidType, errClaim,
	} {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}

// newTokenID returns 128 random bits, unpadded base64url: a jti that never
// repeats in practice.
func newTokenID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails; it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}
