package domain

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Identity is a member's account at a social-login provider: the provider
// (its configured name, such as "kakao") and the provider's stable id of the
// account (the OIDC "sub", or the user-info id). One account is on at most
// one member, and a member has at most one account per provider.
type Identity struct {
	MemberID string
	Provider string
	Subject  string
	// Email is the address the provider gave when the account was linked,
	// "" when none; shown to the member so they can tell accounts apart.
	Email     string
	CreatedAt time.Time
}

// Limits of identity fields, as the identities table stores them.
const (
	MaxProviderNameLen = 32
	MaxSubjectLen      = 255
)

// providerName is what a configured provider may be called: it is a URL
// segment and part of an environment variable name.
var providerName = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// ValidProviderName reports whether name can name a provider.
func ValidProviderName(name string) bool {
	return len(name) <= MaxProviderNameLen && providerName.MatchString(name)
}

// CanUnlink reports whether a member may drop one of their identities: some
// way to log in must remain, a password or another identity.
func CanUnlink(hasPassword bool, identities int) bool {
	return hasPassword || identities > 1
}

// fallbackNickname is the base of a nickname when the provider's profile
// has no usable one.
const fallbackNickname = "member"

// NicknameFromProfile turns a provider profile's name into a valid nickname
// (see NormalizeNickname): hidden characters dropped, cut to the length
// limit, "member" when nothing usable is left.
func NicknameFromProfile(name string) string {
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "")
	}
	var b strings.Builder
	for _, r := range strings.TrimSpace(name) {
		if !hidden(r) {
			b.WriteRune(r)
		}
	}
	s := cutRunes(strings.TrimSpace(b.String()), MaxNicknameLen)
	if n, err := NormalizeNickname(s); err == nil {
		return n
	}
	return fallbackNickname
}

// NicknameCandidate is the attempt-th nickname tried for base when earlier
// ones were taken: base itself first, then base with a number that keeps
// the whole within the length limit ("mina2", "mina3", …).
func NicknameCandidate(base string, attempt int) string {
	if attempt <= 0 {
		return base
	}
	suffix := fmt.Sprint(attempt + 1)
	return strings.TrimSpace(cutRunes(base, MaxNicknameLen-len(suffix))) + suffix
}

// cutRunes returns s cut to at most n runes.
func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
