package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/moim/moim/cmd/api/auth"
)

// cheapParams keep tests fast; one test uses the defaults.
func cheapParams() auth.PasswordParams {
	return auth.PasswordParams{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
}

func newHasher(t testing.TB, p auth.PasswordParams) *auth.Hasher {
	t.Helper()
	h, err := auth.NewHasher(p, 4)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	return h
}

func hash(t *testing.T, h *auth.Hasher, password string) string {
	t.Helper()
	enc, err := h.Hash(context.Background(), password)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return enc
}

func TestPasswordRoundTrip(t *testing.T) {
	t.Parallel()
	h := newHasher(t, cheapParams())
	ctx := context.Background()
	for _, pw := range []string{
		"correct horse battery staple",
		"비밀번호는모임123",       // Korean
		"🔐 sécret 🦄 emoji", // emoji and accents
		"x",
	} {
		enc := hash(t, h, pw)
		if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Errorf("Hash(%q) = %q, want the argon2id PHC prefix", pw, enc)
		}
		ok, rehash, err := h.Verify(ctx, enc, pw)
		if err != nil || !ok || rehash {
			t.Errorf("Verify(right %q) = %v, %v, %v; want true, false, nil", pw, ok, rehash, err)
		}
		ok, _, err = h.Verify(ctx, enc, pw+" ")
		if err != nil || ok {
			t.Errorf("Verify(wrong for %q) = %v, %v; want false, nil", pw, ok, err)
		}
	}
}

func TestPasswordWrong(t *testing.T) {
	t.Parallel()
	h := newHasher(t, cheapParams())
	enc := hash(t, h, "비밀번호")
	for _, wrong := range []string{"", "비밀번호 ", "비밀번", "비밀번호\x00", "BIMILBEONHO"} {
		ok, rehash, err := h.Verify(context.Background(), enc, wrong)
		if err != nil || ok || rehash {
			t.Errorf("Verify(%q) = %v, %v, %v; want false, false, nil", wrong, ok, rehash, err)
		}
	}
}

func TestPasswordSaltsDiffer(t *testing.T) {
	t.Parallel()
	h := newHasher(t, cheapParams())
	seen := map[string]bool{}
	for range 20 {
		enc := hash(t, h, "same password")
		salt := strings.Split(enc, "$")[4]
		if seen[salt] {
			t.Fatalf("salt %q repeated", salt)
		}
		seen[salt] = true
	}
}

func TestPasswordNeedsRehash(t *testing.T) {
	t.Parallel()
	old := newHasher(t, cheapParams())
	enc := hash(t, old, "pass phrase")

	changes := map[string]func(*auth.PasswordParams){
		"memory":      func(p *auth.PasswordParams) { p.Memory = 128 },
		"iterations":  func(p *auth.PasswordParams) { p.Iterations = 2 },
		"parallelism": func(p *auth.PasswordParams) { p.Parallelism = 2 },
		"salt length": func(p *auth.PasswordParams) { p.SaltLen = 24 },
		"key length":  func(p *auth.PasswordParams) { p.KeyLen = 16 },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := cheapParams()
			change(&p)
			h := newHasher(t, p)
			ok, rehash, err := h.Verify(context.Background(), enc, "pass phrase")
			if err != nil || !ok || !rehash {
				t.Errorf("Verify = %v, %v, %v; want true, true, nil", ok, rehash, err)
			}
			ok, rehash, err = h.Verify(context.Background(), enc, "wrong")
			if err != nil || ok {
				t.Errorf("Verify(wrong) = %v, %v, %v; want false, _, nil", ok, rehash, err)
			}
		})
	}
}

func TestPasswordMalformed(t *testing.T) {
	t.Parallel()
	h := newHasher(t, cheapParams())
	good := hash(t, h, "pw")
	parts := strings.Split(good, "$") // "", alg, v, params, salt, key
	salt, key := parts[4], parts[5]
	join := func(p ...string) string { return strings.Join(p, "$") }

	tests := []struct{ name, encoded string }{
		{"not phc", "plaintext"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", join("", "argon2i", "v=19", "m=64,t=1,p=1", salt, key)},
		{"argon2d", join("", "argon2d", "v=19", "m=64,t=1,p=1", salt, key)},
		{"v=18", join("", "argon2id", "v=18", "m=64,t=1,p=1", salt, key)},
		{"no version", join("", "argon2id", "m=64,t=1,p=1", salt, key)},
		{"missing key", join("", "argon2id", "v=19", "m=64,t=1,p=1", salt)},
		{"extra field", good + "$x"},
		{"trailing dollar", good + "$"},
		{"no leading dollar", strings.TrimPrefix(good, "$")},
		{"bad salt base64", join("", "argon2id", "v=19", "m=64,t=1,p=1", "!!!!", key)},
		{"bad key base64", join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, key+"*")},
		{"padded key", join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, key+"=")},
		{"empty salt", join("", "argon2id", "v=19", "m=64,t=1,p=1", "", key)},
		{"short key", join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, "AAAA")},
		{"params reordered", join("", "argon2id", "v=19", "t=1,m=64,p=1", salt, key)},
		{"params missing", join("", "argon2id", "v=19", "m=64,t=1", salt, key)},
		{"params not numbers", join("", "argon2id", "v=19", "m=x,t=1,p=1", salt, key)},
		{"params leading zero", join("", "argon2id", "v=19", "m=064,t=1,p=1", salt, key)},
		{"zero iterations", join("", "argon2id", "v=19", "m=64,t=0,p=1", salt, key)},
		{"zero lanes", join("", "argon2id", "v=19", "m=64,t=1,p=0", salt, key)},
		{"lanes overflow", join("", "argon2id", "v=19", "m=64,t=1,p=256", salt, key)},
		{"memory below 8 per lane", join("", "argon2id", "v=19", "m=8,t=1,p=2", salt, key)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, rehash, err := h.Verify(context.Background(), tt.encoded, "pw")
			if !errors.Is(err, auth.ErrMalformedHash) || ok || rehash {
				t.Fatalf("Verify = %v, %v, %v; want false, false, ErrMalformedHash", ok, rehash, err)
			}
			if strings.Contains(err.Error(), salt) || strings.Contains(err.Error(), key) {
				t.Errorf("error %q shows the salt or key", err)
			}
		})
	}
}

func TestPasswordUnknownAccount(t *testing.T) {
	t.Parallel()
	h := newHasher(t, cheapParams())
	for _, pw := range []string{"", "anything"} {
		ok, rehash, err := h.Verify(context.Background(), "", pw)
		if err != nil || ok || rehash {
			t.Errorf("Verify(\"\", %q) = %v, %v, %v; want false, false, nil", pw, ok, rehash, err)
		}
	}
}

func TestPasswordContextCancelled(t *testing.T) {
	t.Parallel()
	h := newHasher(t, cheapParams())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash(cancelled) error = %v, want context.Canceled", err)
	}
	if _, _, err := h.Verify(ctx, hash(t, h, "pw"), "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify(cancelled) error = %v, want context.Canceled", err)
	}
}

func TestPasswordDefaultParams(t *testing.T) {
	t.Parallel()
	p := auth.DefaultPasswordParams()
	want := auth.PasswordParams{Memory: 19456, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	if p != want {
		t.Fatalf("DefaultPasswordParams() = %+v, want %+v", p, want)
	}
	h := newHasher(t, p)
	enc := hash(t, h, "모임 비밀번호 🔑")
	parts := strings.Split(enc, "$")
	if len(parts) != 6 || parts[3] != "m=19456,t=2,p=1" || len(parts[4]) != 22 || len(parts[5]) != 43 {
		t.Fatalf("Hash = %q, want m=19456,t=2,p=1 with a 22-char salt and 43-char key", enc)
	}
	ok, rehash, err := h.Verify(context.Background(), enc, "모임 비밀번호 🔑")
	if err != nil || !ok || rehash {
		t.Errorf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestPasswordParamsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*auth.PasswordParams)
		ok     bool
	}{
		{"cheap", func(*auth.PasswordParams) {}, true},
		{"8 KiB per lane", func(p *auth.PasswordParams) { p.Memory, p.Parallelism = 32, 4 }, true},
		{"memory below 8 per lane", func(p *auth.PasswordParams) { p.Memory, p.Parallelism = 31, 4 }, false},
		{"no lanes", func(p *auth.PasswordParams) { p.Parallelism = 0 }, false},
		{"no iterations", func(p *auth.PasswordParams) { p.Iterations = 0 }, false},
		{"salt 8 bytes", func(p *auth.PasswordParams) { p.SaltLen = 8 }, true},
		{"salt 7 bytes", func(p *auth.PasswordParams) { p.SaltLen = 7 }, false},
		{"key 15 bytes", func(p *auth.PasswordParams) { p.KeyLen = 15 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := cheapParams()
			tt.change(&p)
			if err := p.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if _, err := auth.NewHasher(p, 1); (err == nil) != tt.ok {
				t.Errorf("NewHasher() error = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// BenchmarkHashDefault is the cost of one login's hash with the default
// parameters, the figure that sizes maxConcurrent.
func BenchmarkHashDefault(b *testing.B) {
	h := newHasher(b, auth.DefaultPasswordParams())
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDefault is the cost of one login's verification with the
// default parameters.
func BenchmarkVerifyDefault(b *testing.B) {
	h := newHasher(b, auth.DefaultPasswordParams())
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, enc, "correct horse battery staple"); err != nil || !ok {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

func TestVerificationsCountsDummyRuns(t *testing.T) {
	t.Parallel()
	h, err := auth.NewHasher(auth.PasswordParams{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Verify(ctx, enc, "wrong"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Verify(ctx, "", "anything"); err != nil {
		t.Fatal(err)
	}
	if n := h.Verifications(); n != 2 {
		t.Errorf("Verifications = %d, want 2 (a real and a dummy)", n)
	}
}
