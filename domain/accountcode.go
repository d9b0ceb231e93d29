package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// CodePurpose is what a one-time account code proves. Stored as a small
// integer.
type CodePurpose int

// The purposes of account codes.
const (
	// CodeEmail verifies an e-mail address: the member's, or the one they
	// asked to change to (it becomes theirs once verified).
	CodeEmail CodePurpose = iota + 1
	// CodePhone verifies a phone number by SMS.
	CodePhone
	// CodeReset is a password-reset token, sent as a link.
	CodeReset
)

// Valid reports whether p is a known purpose.
func (p CodePurpose) Valid() bool { return p >= CodeEmail && p <= CodeReset }

// String returns the purpose's name.
func (p CodePurpose) String() string {
	switch p {
	case CodeEmail:
		return "EMAIL"
	case CodePhone:
		return "PHONE"
	case CodeReset:
		return "RESET"
	}
	return fmt.Sprintf("CodePurpose(%d)", int(p))
}

// AccountCode is one code or token sent to verify an address or number or
// to reset a password. Its plaintext is never stored: AccountCodeSecret
// derives it from the id with a server key, and CodeHash is a keyed hash
// of it, so a copy of the table reveals no usable code.
type AccountCode struct {
	ID      string
	Purpose CodePurpose
	// MemberID is the member's public id; "" for a reset asked for an
	// address no member has (recorded so that such a request costs the
	// same as a real one; nothing is sent for it).
	MemberID string
	// Target is where the code goes: the e-mail address (for an e-mail
	// change, the new one) or the phone number.
	Target    string
	CodeHash  string
	Attempts  int
	ExpiresAt time.Time
	// SentAt is when the worker handled the code: sent it, or decided that
	// there was nothing to send. Nil until then.
	SentAt    *time.Time
	UsedAt    *time.Time
	CreatedAt time.Time
}

// codeAlphabet is what e-mail codes are made of: capitals and digits
// without the look-alikes 0/O and 1/I, 32 symbols.
const codeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// CodeLen is the length of e-mail and phone codes.
const CodeLen = 6

// AccountCodeSecret derives the plaintext of code id: 6 characters for an
// e-mail address, 6 digits for a phone (typed from an SMS), and for a
// reset a 256-bit token "<id>.<secret>" carried by a link. API and worker
// derive the same value from the shared key, so the code itself never has
// to be stored or queued.
func AccountCodeSecret(key []byte, id string, p CodePurpose) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("moim account code v1\x00" + p.String() + "\x00" + id))
	sum := m.Sum(nil)
	switch p {
	case CodeReset:
		return id + "." + base64.RawURLEncoding.EncodeToString(sum)
	case CodePhone:
		n := binary.BigEndian.Uint64(sum[:8]) % 1_000_000
		return fmt.Sprintf("%06d", n)
	default:
		var b strings.Builder
		for i := range CodeLen {
			b.WriteByte(codeAlphabet[int(sum[i])%len(codeAlphabet)])
		}
		return b.String()
	}
}

// HashAccountCode is the keyed hash stored for code id. Keyed, because a
// six-character code has too few values for a plain hash to hide it.
func HashAccountCode(key []byte, id, code string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("moim account code hash v1\x00" + id + "\x00" + code))
	return hex.EncodeToString(m.Sum(nil))
}

// CodeMatches reports in constant time whether code is c's.
func (c *AccountCode) CodeMatches(key []byte, code string) bool {
	return hmac.Equal([]byte(HashAccountCode(key, c.ID, code)), []byte(c.CodeHash))
}

// NormalizeCode returns a typed code as it was derived: surrounding space
// and inner spaces or dashes dropped, letters in capitals.
func NormalizeCode(field, code string) (string, error) {
	code = strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(code)))
	if code == "" {
		return "", FieldErrorf(EINVALID, field, "Field %q is required.", field)
	}
	if len(code) != CodeLen {
		return "", FieldErrorf(EINVALID, field, "Field %q must be %d characters.", field, CodeLen)
	}
	return code, nil
}

// CheckUsable returns why c cannot be tried at now with at most
// maxAttempts attempts: ECODEUSED, ECODEEXPIRED or ETOOMANYATTEMPTS; nil
// when it can.
func (c *AccountCode) CheckUsable(now time.Time, maxAttempts int, field string) error {
	switch {
	case c.UsedAt != nil:
		return FieldErrorf(ECODEUSED, field, "This code was used already.")
	case !now.Before(c.ExpiresAt):
		return FieldErrorf(ECODEEXPIRED, field, "This code has expired; ask for a new one.")
	case c.Attempts >= maxAttempts:
		return FieldErrorf(ETOOMANYATTEMPTS, field, "Too many wrong attempts; ask for a new code.")
	}
	return nil
}

// EmailGatedFeatures are the features a deployment may reserve to members
// with a verified e-mail address (auth.require_verified_email), each with
// the API path prefixes whose changes it covers. Reading stays open.
func EmailGatedFeatures() map[string][]string {
	return map[string][]string{
		"rooms":    {"/v1/rooms", "/v1/comments"},
		"matching": {"/v1/random-matches", "/v1/matches"},
		"missions": {"/v1/missions"},
		"tasks":    {"/v1/tasks"},
	}
}
