package domain_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/moim/moim/domain"
)

// checkErr fails unless err is nil when wantField is "", and otherwise an
// *domain.Error with code "invalid" about wantField.
func checkErr(t *testing.T, err error, wantField string) {
	t.Helper()
	if wantField == "" {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("err = %v (%T), want *domain.Error", err, err)
	}
	if de.Code != domain.EINVALID {
		t.Errorf("code = %q, want %q", de.Code, domain.EINVALID)
	}
	if de.Field != wantField {
		t.Errorf("field = %q, want %q", de.Field, wantField)
	}
	if de.Message == "" {
		t.Error("message is empty, want a text for the client")
	}
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	// 64 + 1 + 185 + 4 = 254 bytes: the longest address accepted.
	longest := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com"
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"plain", "alice@example.com", "alice@example.com", false},
		{"case folded", "Alice.Kim@Example.COM", "alice.kim@example.com", false},
		{"trimmed", " \t alice@example.com \n", "alice@example.com", false},
		{"plus tag", "alice+moim@example.co.kr", "alice+moim@example.co.kr", false},
		{"254 bytes", longest, longest, false},
		{"255 bytes", "a" + longest, "", true},
		// Characters that look dangerous in SQL or HTML but are legal in a
		// local part are kept: the stores bind parameters and the templates
		// escape, so rejecting them would only turn real addresses away.
		{"sql quote", "O'Reilly@Example.com", "o'reilly@example.com", false},
		{"sql injection shaped", "x'or'1'='1@example.com", "x'or'1'='1@example.com", false},
		{"sql comment shaped", "Robert'--@example.com", "robert'--@example.com", false},
		{"sql statement separator", "a;b@example.com", "", true}, // ';' is not allowed unquoted
		{"html-ish specials", "{x}|`a`&b=c@example.com", "{x}|`a`&b=c@example.com", false},
		{"html tag", "<b>@example.com", "", true},
		{"empty", "", "", true},
		{"only space", "   ", "", true},
		{"display name", "Alice <alice@example.com>", "", true},
		{"quoted display name", `"Alice" <alice@example.com>`, "", true},
		{"angle brackets only", "<alice@example.com>", "", true},
		{"comment", "alice@example.com (Alice)", "", true},
		{"two addresses", "a@example.com, b@example.com", "", true},
		{"no at", "alice.example.com", "", true},
		{"no dot in domain", "alice@localhost", "", true},
		{"double dot in domain", "a@b..c", "", true},
		{"leading dot in domain", "a@.example.com", "", true},
		{"trailing dot in domain", "a@example.com.", "", true},
		{"no local part", "@example.com", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NormalizeEmail("email", tt.in)
			if tt.wantErr {
				checkErr(t, err, "email")
				return
			}
			checkErr(t, err, "")
			if got != tt.want {
				t.Errorf("NormalizeEmail(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}

	// The field name given is the one reported.
	_, err := domain.NormalizeEmail("slack_email", "nope")
	checkErr(t, err, "slack_email")
}

func TestValidatePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"7 characters", strings.Repeat("p", 7), true},
		{"8 characters", strings.Repeat("p", 8), false},
		{"128 characters", strings.Repeat("p", 128), false},
		{"129 characters", strings.Repeat("p", 129), true},
		// Counted in characters, not bytes: 8 Hangul syllables are 24 bytes.
		{"8 Korean characters", "비밀번호비밀번호", false},
		{"7 Korean characters", "비밀번호비밀번", true},
		{"128 Korean characters", strings.Repeat("가", 128), false},
		{"129 Korean characters", strings.Repeat("가", 129), true},
		{"spaces count", "        ", false},
		{"invalid UTF-8", "password\xff\xfe", true},
		{"10 KB", strings.Repeat("p", 10<<10), true},
		{"empty", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := domain.ValidatePassword("password", tt.in)
			if tt.wantErr {
				checkErr(t, err, "password")
			} else {
				checkErr(t, err, "")
			}
		})
	}
}

func TestNormalizeNickname(t *testing.T) {
	t.Parallel()
	const sqlish = "'; DROP TABLE members;--"
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"1 character", "a", "", true},
		{"2 characters", "ab", "ab", false},
		{"30 characters", strings.Repeat("n", 30), strings.Repeat("n", 30), false},
		{"31 characters", strings.Repeat("n", 31), "", true},
		{"2 Korean characters", "모임", "모임", false},
		{"30 Korean characters", strings.Repeat("모", 30), strings.Repeat("모", 30), false},
		{"31 Korean characters", strings.Repeat("모", 31), "", true},
		{"trimmed", "  Alice \t", "Alice", false},
		{"trimmed to 1 character", "  a  ", "", true},
		{"inner space kept", "Alice Kim", "Alice Kim", false},
		{"empty", "", "", true},
		{"NUL", "ab\x00cd", "", true},
		{"newline", "ab\ncd", "", true},
		{"tab", "ab\tcd", "", true},
		{"DEL", "ab\x7fcd", "", true},
		{"zero-width space", "ab\u200bcd", "", true},
		{"hangul filler", "\u3164\u3164", "", true},
		{"halfwidth hangul filler", "ab\uffa0", "", true},
		{"right-to-left override", "ab\u202ecd", "", true},
		{"invalid UTF-8", "ab\xffcd", "", true},
		// Markup and SQL are data: stored verbatim, escaped on output.
		{"html", "<b>hi</b>", "<b>hi</b>", false},
		{"script tag of 25 characters", "<script>alert(1)</script>", "<script>alert(1)</script>", false},
		{"script tag too long", "<script>alert(document.cookie)</script>", "", true},
		{"sql", sqlish, sqlish, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NormalizeNickname(tt.in)
			if tt.wantErr {
				checkErr(t, err, "nickname")
				return
			}
			checkErr(t, err, "")
			if got != tt.want {
				t.Errorf("NormalizeNickname(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n < domain.MinNicknameLen || n > domain.MaxNicknameLen {
				t.Errorf("NormalizeNickname(%q) has %d characters, want %d to %d", tt.in, n, domain.MinNicknameLen, domain.MaxNicknameLen)
			}
		})
	}
}

func TestNicknameKey(t *testing.T) {
	t.Parallel()
	if a, b := domain.NicknameKey("Alice"), domain.NicknameKey("aLICE"); a != b {
		t.Errorf("NicknameKey(Alice) = %q, NicknameKey(aLICE) = %q, want equal", a, b)
	}
	if got := domain.NicknameKey("모임"); got != "모임" {
		t.Errorf("NicknameKey(모임) = %q, want unchanged", got)
	}
}

func TestNormalizePhone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"empty means none", "", "", false},
		{"only space means none", "  ", "", false},
		{"domestic with hyphens", "010-1234-5678", "+821012345678", false},
		{"domestic digits", "01012345678", "+821012345678", false},
		{"domestic with dots", "010.1234.5678", "+821012345678", false},
		{"domestic with parentheses", "(010) 1234 5678", "+821012345678", false},
		{"old 011 of 10 digits", "011-123-4567", "+82111234567", false},
		{"old 019", "019-1234-5678", "+821912345678", false},
		{"E.164 with spaces", "+82 10 1234 5678", "+821012345678", false},
		{"E.164 with trunk zero", "+82 010-1234-5678", "+821012345678", false},
		{"E.164 with trunk zero, no spaces", "+8201012345678", "+821012345678", false},
		{"E.164 US", "+14155552671", "+14155552671", false},
		{"trimmed", " 010-1234-5678 ", "+821012345678", false},
		{"Seoul landline", "02-123-4567", "", true},
		{"other landline", "031-123-4567", "", true},
		{"unknown 012 prefix", "012-1234-5678", "", true},
		{"letters", "010-CALL-MOIM", "", true},
		{"letter suffix", "01012345678x", "", true},
		{"plus zero", "+01012345678", "", true},
		{"double plus", "++821012345678", "", true},
		{"plus inside", "82+1012345678", "", true},
		{"domestic too short", "010123456", "", true},
		{"domestic too long", "010123456789", "", true},
		{"E.164 too short", "+1234567", "", true},
		{"E.164 too long", "+1234567890123456", "", true},
		{"E.164 too short without trunk zero", "+82012345", "", true},
		{"E.164 shortest without trunk zero", "+820123456", "+82123456", false},
		{"only plus", "+", "", true},
		{"only separators", "--", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NormalizePhone(tt.in)
			if tt.wantErr {
				checkErr(t, err, "phone")
				return
			}
			checkErr(t, err, "")
			if got != tt.want {
				t.Errorf("NormalizePhone(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRoleText(t *testing.T) {
	t.Parallel()
	for _, r := range []domain.Role{domain.RoleMember, domain.RoleAdmin} {
		b, err := r.MarshalText()
		if err != nil {
			t.Fatalf("%v.MarshalText: %v", r, err)
		}
		if string(b) != r.String() {
			t.Errorf("MarshalText = %q, want %q", b, r.String())
		}
		var got domain.Role
		if err := got.UnmarshalText(b); err != nil {
			t.Fatalf("UnmarshalText(%q): %v", b, err)
		}
		if got != r {
			t.Errorf("UnmarshalText(%q) = %v, want %v", b, got, r)
		}
		parsed, err := domain.ParseRole(r.String())
		if err != nil || parsed != r {
			t.Errorf("ParseRole(%q) = %v, %v; want %v", r.String(), parsed, err, r)
		}
	}
	if got := domain.RoleMember.String(); got != "member" {
		t.Errorf("RoleMember = %q, want member", got)
	}
	if got := domain.RoleAdmin.String(); got != "admin" {
		t.Errorf("RoleAdmin = %q, want admin", got)
	}

	for _, s := range []string{"", "owner", "Admin", " admin"} {
		_, err := domain.ParseRole(s)
		checkErr(t, err, "role")
	}
	r := domain.RoleAdmin
	checkErr(t, r.UnmarshalText([]byte("root")), "role")
	if r != domain.RoleAdmin {
		t.Errorf("failed UnmarshalText changed the role to %v", r)
	}

	// Zero and unknown values are not roles and cannot be written out.
	for _, bad := range []domain.Role{0, 3} {
		if bad.Valid() {
			t.Errorf("Role(%d).Valid() = true, want false", int(bad))
		}
		if _, err := bad.MarshalText(); err == nil {
			t.Errorf("Role(%d).MarshalText: err = nil, want an error", int(bad))
		}
	}
}
