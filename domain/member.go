package domain

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Role is what a member may do. Stored as a small integer, shown as text.
type Role int

// The roles. Zero is not a role, so a forgotten assignment is caught.
const (
	RoleMember Role = 1
	RoleAdmin  Role = 2
)

var roleNames = map[Role]string{RoleMember: "member", RoleAdmin: "admin"}

// String returns the role's wire name.
func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { _, ok := roleNames[r]; return ok }

// MarshalText writes the role's name.
func (r Role) MarshalText() ([]byte, error) {
	if !r.Valid() {
		return nil, fmt.Errorf("invalid role %d", int(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText reads a role's name.
func (r *Role) UnmarshalText(b []byte) error {
	role, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = role
	return nil
}

// ParseRole returns the role with the given name.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n == s {
			return r, nil
		}
	}
	return 0, FieldErrorf(EINVALID, "role", "Unknown role %q; roles are member and admin.", s)
}

// NotificationPrefs switches each delivery channel on or off for a member.
// In-app notifications are always kept.
type NotificationPrefs struct {
	Mail  bool
	SMS   bool
	Slack bool
}

// DefaultNotificationPrefs has every channel on; SMS still needs a phone
// number and consent, Slack a Slack e-mail.
func DefaultNotificationPrefs() NotificationPrefs {
	return NotificationPrefs{Mail: true, SMS: true, Slack: true}
}

// Member is a person with an account.
type Member struct {
	ID           string // opaque public id
	Email        string // normalised: see NormalizeEmail
	PasswordHash string // encoded password hash; never leaves the server
	Nickname     string
	Phone        string // E.164 (+821012345678) or ""
	SMSConsent   bool
	SlackEmail   string // the member's Slack account e-mail, or ""
	Prefs        NotificationPrefs
	Role         Role
	CreatedAt    time.Time
	UpdatedAt    time.Time
	DeletedAt    *time.Time // soft deletion; a deleted member is not found
	// EmailVerifiedAt is when the member proved they read Email (a code
	// mailed to it); nil until then.
	EmailVerifiedAt *time.Time
	// PhoneVerifiedAt is when the member proved they hold Phone (a code
	// sent by SMS); nil until then, and again after Phone changes. SMS
	// goes only to a verified number.
	PhoneVerifiedAt *time.Time
}

// IsAdmin reports whether m may use the admin endpoints.
func (m *Member) IsAdmin() bool { return m.Role == RoleAdmin }

// MemberUpdate is a partial change of a member: nil fields stay as they are.
// Phone and SlackEmail set to "" clear the value.
type MemberUpdate struct {
	Nickname     *string
	Phone        *string
	SMSConsent   *bool
	SlackEmail   *string
	PrefMail     *bool
	PrefSMS      *bool
	PrefSlack    *bool
	PasswordHash *string
}

// Limits of member fields.
const (
	MaxEmailLen    = 254 // RFC 5321 path limit
	MinPasswordLen = 8
	MaxPasswordLen = 128
	MinNicknameLen = 2
	MaxNicknameLen = 30
)

// NormalizeEmail checks an e-mail address and returns the form moim stores:
// surrounding space trimmed and lower-cased, so addresses compare without
// regard to case. Only a bare address is accepted (no display name), and
// its domain must have a dot. field names the input in the error.
func NormalizeEmail(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", FieldErrorf(EINVALID, field, "Field %q is required.", field)
	}
	if len(s) > MaxEmailLen {
		return "", FieldErrorf(EINVALID, field, "Field %q must be at most %d bytes.", field, MaxEmailLen)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", FieldErrorf(EINVALID, field, "Field %q must be an e-mail address such as name@example.com.", field)
	}
	at := strings.LastIndexByte(s, '@')
	domainPart := s[at+1:]
	if !strings.Contains(domainPart, ".") || strings.HasPrefix(domainPart, ".") ||
		strings.HasSuffix(domainPart, ".") || strings.Contains(domainPart, "..") {
		return "", FieldErrorf(EINVALID, field, "Field %q must be an e-mail address such as name@example.com.", field)
	}
	return strings.ToLower(s), nil
}

// ValidatePassword checks the password policy: 8 to 128 characters of valid
// UTF-8. Nothing else is required: length is what makes a password strong.
func ValidatePassword(field, s string) error {
	if !utf8.ValidString(s) {
		return FieldErrorf(EINVALID, field, "Field %q must be valid UTF-8.", field)
	}
	if n := utf8.RuneCountInString(s); n < MinPasswordLen || n > MaxPasswordLen {
		return FieldErrorf(EINVALID, field, "Field %q must be %d to %d characters.", field, MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// NormalizeNickname trims surrounding space and checks the nickname: 2 to 30
// characters, valid UTF-8, no control or invisible formatting characters.
// Anything else, HTML and SQL included, is stored as given.
func NormalizeNickname(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", FieldErrorf(EINVALID, "nickname", "Field \"nickname\" must be valid UTF-8.")
	}
	if n := utf8.RuneCountInString(s); n < MinNicknameLen || n > MaxNicknameLen {
		return "", FieldErrorf(EINVALID, "nickname", "Field \"nickname\" must be %d to %d characters.", MinNicknameLen, MaxNicknameLen)
	}
	for _, r := range s {
		if hidden(r) {
			return "", FieldErrorf(EINVALID, "nickname", "Field \"nickname\" must not contain control or invisible characters.")
		}
	}
	return s, nil
}

// hidden reports the characters member-written text may not hold: control
// characters (C0, DEL, C1), invisible formatting (zero-width space, bidi
// overrides that show text reversed) and the blank fillers. They let two
// names look identical, a text look empty, or a text read differently from
// what it says.
func hidden(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || isBlankFiller(r)
}

// isBlankFiller reports the letters that render as nothing: the Hangul
// fillers (Unicode calls them letters, not formatting) and the blank
// Braille pattern.
func isBlankFiller(r rune) bool {
	switch r {
	case '\u115F', '\u1160', '\u3164', '\uFFA0', '\u2800':
		return true
	}
	return false
}

// NicknameKey is the form nicknames are unique in: "Alice" and "alice" are
// the same nickname.
func NicknameKey(nickname string) string { return strings.ToLower(nickname) }

// NormalizePhone returns a phone number in E.164 form (+821012345678). It
// accepts E.164 itself and Korean mobile numbers written the domestic way
// (010-1234-5678, 01012345678); spaces, hyphens, dots and parentheses are
// ignored. "" stays "" (no phone).
func NormalizePhone(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", phoneError()
		}
	}
	n := b.String()
	switch {
	case strings.HasPrefix(n, "+"):
		digits := n[1:]
		if len(digits) < 8 || len(digits) > 15 || digits[0] == '0' {
			return "", phoneError()
		}
		if strings.HasPrefix(digits, "82") && strings.HasPrefix(digits[2:], "0") {
			// +82 010… is a common slip: the trunk zero is dropped abroad.
			// Without it the number must still be long enough.
			if len(digits)-1 < 8 {
				return "", phoneError()
			}
			return "+82" + digits[3:], nil
		}
		return n, nil
	case strings.HasPrefix(n, "01"):
		// Korean mobile prefixes 010, 011, 016, 017, 018, 019; 10 or 11 digits.
		if len(n) < 10 || len(n) > 11 || !strings.ContainsRune("016789", rune(n[2])) {
			return "", phoneError()
		}
		return "+82" + n[1:], nil
	}
	return "", phoneError()
}

func phoneError() error {
	return FieldErrorf(EINVALID, "phone", "Field \"phone\" must be a mobile number such as 010-1234-5678 or +821012345678.")
}
