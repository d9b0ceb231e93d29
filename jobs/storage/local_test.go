package storage_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/storage"
)

const signedBase = "https://api.example.com/v1/objects"

func newLocalAt(t *testing.T, dir string, clk *jobstest.Clock) *storage.Local {
	t.Helper()
	l, err := storage.NewLocal(storage.LocalOptions{Dir: dir, URLKey: urlKey, SignedBaseURL: signedBase, NowFunc: clk.Now})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// request builds the request a client sends to a signed URL.
func request(t *testing.T, method, rawURL, contentType string, body string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, rawURL, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

// keyPath is what the API passes to Verify: the path after the base.
func keyPath(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/v1/objects/")
}

// withQuery returns rawURL with one query parameter replaced.
func withQuery(t *testing.T, rawURL, name, value string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestLocalVerifyPut(t *testing.T) {
	t.Parallel()
	clk := jobstest.NewClock(epoch)
	l := newLocalAt(t, t.TempDir(), clk)
	k := key(t, "abcdef", "original")
	p, err := l.PresignPut(t.Context(), k, "image/jpeg", 5, 15*time.Minute)
	if err != nil {
		t.Fatalf("PresignPut: %v", err)
	}
	if !strings.HasPrefix(p.URL, signedBase+"/ab/abcdef/original?") {
		t.Errorf("URL = %s, want it below %s", p.URL, signedBase)
	}
	other := key(t, "ghijkl", "original")
	otherURL := strings.Replace(p.URL, "ab/abcdef/original", other.String(), 1)

	tests := []struct {
		name    string
		method  string
		url     string
		ct      string
		body    string
		advance time.Duration
		want    error
	}{
		{"as signed", http.MethodPut, p.URL, "image/jpeg", "12345", 0, nil},
		{"just before expiry", http.MethodPut, p.URL, "image/jpeg", "12345", 15*time.Minute - time.Second, nil},
		{"at expiry", http.MethodPut, p.URL, "image/jpeg", "12345", 15 * time.Minute, storage.ErrURLExpired},
		{"longer body", http.MethodPut, p.URL, "image/jpeg", "123456", 0, storage.ErrURLInvalid},
		{"shorter body", http.MethodPut, p.URL, "image/jpeg", "1234", 0, storage.ErrURLInvalid},
		{"other type", http.MethodPut, p.URL, "image/png", "12345", 0, storage.ErrURLInvalid},
		{"no type", http.MethodPut, p.URL, "", "12345", 0, storage.ErrURLInvalid},
		{"size raised", http.MethodPut, withQuery(t, p.URL, "size", "6"), "image/jpeg", "123456", 0, storage.ErrURLInvalid},
		{"type changed", http.MethodPut, withQuery(t, p.URL, "type", "image/png"), "image/png", "12345", 0, storage.ErrURLInvalid},
		{"expiry extended", http.MethodPut, withQuery(t, p.URL, "expires", "4102444800"), "image/jpeg", "12345", 0, storage.ErrURLInvalid},
		{"other signature", http.MethodPut, withQuery(t, p.URL, "sig", strings.Repeat("A", 43)), "image/jpeg", "12345", 0, storage.ErrURLInvalid},
		{"no signature", http.MethodPut, withQuery(t, p.URL, "sig", ""), "image/jpeg", "12345", 0, storage.ErrURLInvalid},
		{"bad signature", http.MethodPut, withQuery(t, p.URL, "sig", "!!"), "image/jpeg", "12345", 0, storage.ErrURLInvalid},
		{"no expiry", http.MethodPut, withQuery(t, p.URL, "expires", ""), "image/jpeg", "12345", 0, storage.ErrURLInvalid},
		{"other key", http.MethodPut, otherURL, "image/jpeg", "12345", 0, storage.ErrURLInvalid},
		{"GET with a PUT URL", http.MethodGet, p.URL, "", "", 0, storage.ErrURLInvalid},
		{"POST", http.MethodPost, p.URL, "image/jpeg", "12345", 0, storage.ErrURLInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Each case has its own clock at the signing time plus advance.
			c := jobstest.NewClock(epoch)
			c.Advance(tt.advance)
			v := newLocalAt(t, t.TempDir(), c)
			got, err := v.Verify(request(t, tt.method, tt.url, tt.ct, tt.body), keyPath(t, tt.url))
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err == nil && got != k {
				t.Errorf("Verify key = %v, want %v", got, k)
			}
		})
	}
}

func TestLocalVerifyGet(t *testing.T) {
	t.Parallel()
	clk := jobstest.NewClock(epoch)
	l := newLocalAt(t, t.TempDir(), clk)
	k := key(t, "abcdef", "w758")
	u, err := l.URL(t.Context(), k, time.Minute)
	if err != nil {
		t.Fatalf("URL: %v", err)
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		if got, err := l.Verify(request(t, m, u, "", ""), keyPath(t, u)); err != nil || got != k {
			t.Errorf("Verify %s = %v, %v; want the key", m, got, err)
		}
	}
	if _, err := l.Verify(request(t, http.MethodPut, u, "image/png", ""), keyPath(t, u)); !errors.Is(err, storage.ErrURLInvalid) {
		t.Errorf("Verify PUT with a GET URL = %v, want ErrURLInvalid", err)
	}
	if _, err := l.Verify(request(t, http.MethodGet, u, "", ""), "../../etc/passwd"); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Verify of a climbing path = %v, want ErrInvalidKey", err)
	}
	// Another deployment's key signs other URLs.
	stranger, err := storage.NewLocal(storage.LocalOptions{Dir: t.TempDir(), URLKey: []byte(strings.Repeat("z", 32)),
		SignedBaseURL: signedBase, NowFunc: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.Verify(request(t, http.MethodGet, u, "", ""), keyPath(t, u)); !errors.Is(err, storage.ErrURLInvalid) {
		t.Errorf("Verify under another key = %v, want ErrURLInvalid", err)
	}
	clk.Advance(time.Minute)
	if _, err := l.Verify(request(t, http.MethodGet, u, "", ""), keyPath(t, u)); !errors.Is(err, storage.ErrURLExpired) {
		t.Errorf("Verify at expiry = %v, want ErrURLExpired", err)
	}
}

func TestLocalPresignRefuses(t *testing.T) {
	t.Parallel()
	l := newLocalAt(t, t.TempDir(), jobstest.NewClock(epoch))
	k := key(t, "abcdef", "original")
	for _, tt := range []struct {
		name   string
		ct     string
		size   int64
		expiry time.Duration
	}{
		{"no type", "", 1, time.Minute},
		{"newline in type", "image/png\nx: y", 1, time.Minute},
		{"negative size", "image/png", -1, time.Minute},
		{"no expiry", "image/png", 1, 0},
		{"below a second", "image/png", 1, 999 * time.Millisecond},
		{"beyond seven days", "image/png", 1, storage.MaxPresignExpiry + time.Second},
	} {
		if _, err := l.PresignPut(t.Context(), k, tt.ct, tt.size, tt.expiry); err == nil {
			t.Errorf("PresignPut with %s: no error", tt.name)
		}
	}
}

func TestNewLocalRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, opts := range map[string]storage.LocalOptions{
		"no dir":           {URLKey: urlKey, SignedBaseURL: signedBase},
		"short key":        {Dir: dir, URLKey: urlKey[:31], SignedBaseURL: signedBase},
		"no base URL":      {Dir: dir, URLKey: urlKey},
		"dir below a file": {Dir: filepath.Join(dir, "f", "x"), URLKey: urlKey, SignedBaseURL: signedBase},
	} {
		if name == "dir below a file" {
			if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if l, err := storage.NewLocal(opts); err == nil {
			_ = l.Close()
			t.Errorf("NewLocal with %s: no error", name)
		}
	}
}

// The key checks keep keys inside the directory; the os.Root below them
// holds even where the directory itself has a link out.
func TestLocalStaysInsideDir(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir, outside := filepath.Join(base, "objects"), filepath.Join(base, "outside")
	for _, d := range []string{dir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "ab")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(dir, "cd")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := newLocalAt(t, dir, jobstest.NewClock(epoch))
	ctx := t.Context()
	for _, id := range []string{"abcdef", "cdefgh"} {
		k := key(t, id, "original")
		if err := l.Put(ctx, k, strings.NewReader("x"), 1, "image/png"); err == nil {
			t.Errorf("Put %s through a link out of the directory: no error", k)
		}
		if _, err := l.Stat(ctx, k); err == nil {
			t.Errorf("Stat %s through a link out of the directory: no error", k)
		}
	}
	entries, err := os.ReadDir(outside)
	if err != nil || len(entries) != 1 {
		t.Errorf("outside holds %d entries (%v), want only its own file", len(entries), err)
	}
}

func TestLocalFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := newLocalAt(t, dir, jobstest.NewClock(epoch))
	ctx := t.Context()
	k := key(t, "abcdef", "original")

	// Refused and cancelled puts leave no temporary file behind.
	if err := l.Put(ctx, k, strings.NewReader("abc"), 4, "image/png"); !errors.Is(err, storage.ErrSizeMismatch) {
		t.Errorf("short Put = %v, want ErrSizeMismatch", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Put(cancelled, k, strings.NewReader("abcd"), 4, "image/png"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put = %v, want context.Canceled", err)
	}
	put(t, l, k, "abcd", "image/png")
	var names []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return err
	})
	if strings.Join(names, " ") != "ab/abcdef/original ab/abcdef/original.meta" {
		t.Errorf("files = %v, want the object and its meta file only", names)
	}

	// A file put there by hand is served as bytes of no known type.
	hand := key(t, "abcdef", "byhand")
	if err := os.WriteFile(filepath.Join(dir, "ab", "abcdef", "byhand"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := l.Stat(ctx, hand)
	if err != nil || info.Size != 2 || info.ContentType != "application/octet-stream" || info.ETag == "" {
		t.Errorf("Stat of a file without meta = %+v, %v", info, err)
	}

	// Deleting the last variant removes the image's directory.
	for _, v := range []storage.Key{k, hand} {
		if err := l.Delete(ctx, v); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ab", "abcdef")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the image's directory is still there: %v", err)
	}
}

func TestLocalPublicURL(t *testing.T) {
	t.Parallel()
	l, err := storage.NewLocal(storage.LocalOptions{Dir: t.TempDir(), URLKey: urlKey, SignedBaseURL: signedBase,
		PublicBaseURL: "https://cdn.example.com/img/"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, err := l.URL(t.Context(), key(t, "abcdef", "thumb"), 0)
	if err != nil || u != "https://cdn.example.com/img/ab/abcdef/thumb" {
		t.Errorf("URL = %q, %v; want the public one", u, err)
	}
}
