// Package auth issues and verifies the API's credentials: argon2id password
// hashes, short-lived signed access tokens (JWT, HS256), and refresh tokens
// whose sessions and deny-list live in Redis.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// ErrMalformedHash reports a stored password hash that is not an argon2id
// PHC string this package can verify. It is an internal error: the hash
// came from our own database.
var ErrMalformedHash = errors.New("malformed password hash")

// PasswordParams are the argon2id cost parameters of new password hashes.
type PasswordParams struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLen     uint32 // bytes
	KeyLen      uint32 // bytes
}

// DefaultPasswordParams returns OWASP's current argon2id recommendation:
// 19 MiB of memory, 2 iterations, 1 lane, a 16-byte salt and a 32-byte key.
func DefaultPasswordParams() PasswordParams {
	return PasswordParams{Memory: 19456, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}
}

// Validate checks p against the limits of argon2 (RFC 9106) and a 16-byte
// floor on the key.
func (p PasswordParams) Validate() error {
	var errs []error
	if p.Parallelism < 1 {
		errs = append(errs, errors.New("argon2 parallelism must be at least 1"))
	}
	if p.Memory < 8*uint32(p.Parallelism) {
		errs = append(errs, fmt.Errorf("argon2 memory must be at least 8 KiB per lane (%d KiB for parallelism %d)", 8*uint32(p.Parallelism), p.Parallelism))
	}
	if p.Iterations < 1 {
		errs = append(errs, errors.New("argon2 iterations must be at least 1"))
	}
	if p.SaltLen < 8 {
		errs = append(errs, errors.New("argon2 salt must be at least 8 bytes"))
	}
	if p.KeyLen < 16 {
		errs = append(errs, errors.New("argon2 key must be at least 16 bytes"))
	}
	return errors.Join(errs...)
}

// Hasher hashes and verifies passwords with argon2id. It is safe for
// concurrent use.
type Hasher struct {
	params PasswordParams
	// slots bounds the hashes running at once: each holds Memory KiB, so
	// a burst of logins cannot exhaust the process's memory.
	slots chan struct{}
	// dummy is verified against when an account does not exist, so that
	// case costs what a wrong password costs.
	dummy string
	// derivations counts argon2 runs made by Verify.
	derivations atomic.Uint64
}

// Verifications returns how many argon2 derivations Verify has run, the
// dummy ones for unknown accounts included: every login costs one, which
// is what keeps an unknown address from answering faster.
func (h *Hasher) Verifications() uint64 { return h.derivations.Load() }

// NewHasher returns a Hasher creating hashes with p. maxConcurrent bounds how
// many hashes run at once (peak memory is Memory × maxConcurrent); zero or
// less means runtime.GOMAXPROCS(0). It computes one hash up front for Verify
// to use on unknown accounts.
func NewHasher(p PasswordParams, maxConcurrent int) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("password params: %w", err)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: p, slots: make(chan struct{}, maxConcurrent)}
	dummy, err := h.Hash(context.Background(), rand.Text())
	if err != nil {
		return nil, fmt.Errorf("compute dummy password hash: %w", err)
	}
	h.dummy = dummy
	return h, nil
}

// Hash returns password's argon2id hash as a PHC string
// ($argon2id$v=19$m=…,t=…,p=…$salt$key, unpadded standard base64) with a
// fresh random salt. It waits for a free slot as long as ctx allows.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	p := h.params
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt) // never fails; it crashes the program instead
	key, err := h.derive(ctx, p, []byte(password), salt)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches the encoded hash. An empty encoded
// (no such account) is verified against a dummy hash and reports false, so
// an unknown e-mail costs the same time as a wrong password. needsRehash is
// true when encoded was made with parameters other than h's: store a new
// Hash after a successful login. A malformed encoded is an error wrapping
// ErrMalformedHash.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (ok, needsRehash bool, err error) {
	unknown := encoded == ""
	if unknown {
		encoded = h.dummy
	}
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	got, err := h.derive(ctx, p, []byte(password), salt)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	h.derivations.Add(1)
	if unknown {
		return false, false, nil
	}
	ok = subtle.ConstantTimeCompare(got, want) == 1
	return ok, p != h.params, nil
}

// derive runs argon2id in one of h's slots.
func (h *Hasher) derive(ctx context.Context, p PasswordParams, password, salt []byte) ([]byte, error) {
	// A request already given up on must not take a slot from one that
	// is still waiting.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wait for a hashing slot: %w", err)
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a hashing slot: %w", ctx.Err())
	}
	defer func() { <-h.slots }()
	return argon2.IDKey(password, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen), nil
}

// decodeHash parses a PHC argon2id string. Its error text never contains
// the salt or key.
func decodeHash(encoded string) (PasswordParams, []byte, []byte, error) {
	var p PasswordParams
	// PHC's base64 has no padding; strict, so each hash has one spelling.
	b64 := base64.RawStdEncoding.Strict()
	// "$argon2id$v=19$m=…,t=…,p=…$salt$key" splits into six parts, the
	// first empty.
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, fmt.Errorf("%w: want 5 $-separated fields, got %d", ErrMalformedHash, len(parts)-1)
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: algorithm is not argon2id", ErrMalformedHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: version is not %d", ErrMalformedHash, argon2.Version)
	}
	m, t, par, ok := parseCost(parts[3])
	if !ok {
		return p, nil, nil, fmt.Errorf("%w: parameters are not m=<KiB>,t=<iterations>,p=<lanes>", ErrMalformedHash)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("%w: salt is not unpadded base64", ErrMalformedHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return p, nil, nil, fmt.Errorf("%w: key is not unpadded base64", ErrMalformedHash)
	}
	p = PasswordParams{Memory: m, Iterations: t, Parallelism: par, SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	// argon2 panics on zero iterations or lanes; a stored hash must never
	// be able to crash the process.
	if err := p.Validate(); err != nil {
		return p, nil, nil, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	return p, salt, key, nil
}

// parseCost parses "m=<uint32>,t=<uint32>,p=<uint8>" in that order, the
// order the reference implementation writes.
func parseCost(s string) (m, t uint32, p uint8, ok bool) {
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return 0, 0, 0, false
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, found := strings.CutPrefix(fields[i], name)
		if !found {
			return 0, 0, 0, false
		}
		bits := 32
		if name == "p=" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil || strconv.FormatUint(n, 10) != v {
			return 0, 0, 0, false
		}
		vals[i] = n
	}
	return uint32(vals[0]), uint32(vals[1]), uint8(vals[2]), true
}
