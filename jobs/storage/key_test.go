package storage_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/moim/moim/jobs/storage"
)

func TestNewKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id, variant string
		want        string // "" = refused
	}{
		{"abcdef234567", "original", "ab/abcdef234567/original"},
		{"ab", "w384", "ab/ab/w384"},
		{"x9z", "thumb_380-sq", "x9/x9z/thumb_380-sq"},
		{strings.Repeat("a", 64), "v", "aa/" + strings.Repeat("a", 64) + "/v"},
		{strings.Repeat("a", 65), "v", ""},
		{"a", "original", ""},
		{"", "original", ""},
		{"abc", "", ""},
		{"abc", strings.Repeat("v", 33), ""},
		{"ABC", "original", ""},
		{"..", "original", ""},
		{"ab/..", "original", ""},
		{"ab", "..", ""},
		{"ab", "../../etc/passwd", ""},
		{"ab", "photo.jpg", ""},
		{"ab", "a/b", ""},
		{"ab\\cd", "original", ""},
		{"ab cd", "original", ""},
		{"ab", "orig%2f", ""},
		{"abc", "original\x00", ""},
		{"ab", "Original", ""},
	}
	for _, tt := range tests {
		k, err := storage.NewKey(tt.id, tt.variant)
		if tt.want == "" {
			if !errors.Is(err, storage.ErrInvalidKey) || !k.IsZero() {
				t.Errorf("NewKey(%q, %q) = %q, %v; want ErrInvalidKey", tt.id, tt.variant, k, err)
			}
			continue
		}
		if err != nil || k.String() != tt.want {
			t.Errorf("NewKey(%q, %q) = %q, %v; want %q", tt.id, tt.variant, k, err, tt.want)
			continue
		}
		if k.PublicID() != tt.id || k.Variant() != tt.variant {
			t.Errorf("NewKey(%q, %q) parts = %q, %q", tt.id, tt.variant, k.PublicID(), k.Variant())
		}
		back, err := storage.ParseKey(k.String())
		if err != nil || back != k {
			t.Errorf("ParseKey(%q) = %v, %v; want the same key", k, back, err)
		}
	}
}

func TestParseKeyRefuses(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "ab", "ab/abc", "ab/abc/original/x", "cd/abc/original", "../abc/original",
		"ab/../original", "ab/abc/..", "/ab/abc/original", "ab//original", "ab/abc/original/",
		"a/a/original", "ab/abc/original.meta", "ab/abc/.original.tmp-x",
	} {
		if k, err := storage.ParseKey(s); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("ParseKey(%q) = %q, %v; want ErrInvalidKey", s, k, err)
		}
	}
}

func TestZeroKey(t *testing.T) {
	t.Parallel()
	var k storage.Key
	if !k.IsZero() || k.String() != "" {
		t.Errorf("zero Key: IsZero %v, String %q", k.IsZero(), k)
	}
}
