package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/storage"
)

// epoch is the tests' clock: nothing here reads the machine's time.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// bundle is one backend under test.
type bundle struct {
	store storage.Store
	// advance moves the clock the backend judges signed URLs by; nil when
	// the peer does not check expiry.
	advance func(time.Duration)
	// checksSignatures says whether the peer refuses a request that does
	// not match its signature.
	checksSignatures bool
}

// backends makes a fresh store of each kind per call.
var backends = []struct {
	name string
	new  func(t *testing.T) bundle
}{
	{"local", newLocal},
	{"s3", newS3},
}

// urlKey is a fixed key for local signed URLs.
var urlKey = []byte("0123456789abcdef0123456789abcdef")

// newLocal serves the local backend's signed URLs the way the API will:
// Verify, then Put or Open.
func newLocal(t *testing.T) bundle {
	t.Helper()
	clk := jobstest.NewClock(epoch)
	var local *storage.Local
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := local.Verify(r, strings.TrimPrefix(r.URL.Path, "/objects/"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		switch r.Method {
		case http.MethodPut:
			if err := local.Put(r.Context(), key, r.Body, r.ContentLength, r.Header.Get("Content-Type")); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
			}
		case http.MethodGet:
			body, info, err := local.Open(r.Context(), key)
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			defer body.Close()
			w.Header().Set("Content-Type", info.ContentType)
			_, _ = io.Copy(w, body)
		}
	}))
	t.Cleanup(srv.Close)
	l, err := storage.NewLocal(storage.LocalOptions{
		Dir:           t.TempDir() + "/objects",
		URLKey:        urlKey,
		SignedBaseURL: srv.URL + "/objects",
		NowFunc:       clk.Now,
	})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	local = l
	return bundle{store: l, advance: clk.Advance, checksSignatures: true}
}

// newS3 starts an S3 protocol peer and a bucket on it.
func newS3(t *testing.T) bundle {
	t.Helper()
	s, _ := startS3(t, storage.S3Options{})
	return bundle{store: s, checksSignatures: true}
}

// startS3 starts an S3 protocol peer with the bucket "moim" and returns a
// store on it, with opts' non-empty fields over the test defaults, and
// the peer's backend to look at what it holds.
func startS3(t *testing.T, opts storage.S3Options) (*storage.S3, *s3mem.Backend) {
	t.Helper()
	backend := s3mem.New(s3mem.WithTimeSource(gofakes3.FixedTimeSource(epoch)))
	if err := backend.CreateBucket("moim"); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	// No skew limit: the SDK signs with the machine's time, which the
	// peer's fixed clock must not judge.
	faker := gofakes3.New(backend, gofakes3.WithTimeSource(gofakes3.FixedTimeSource(epoch)), gofakes3.WithTimeSkewLimit(0))
	srv := httptest.NewServer(checkPresigned(faker.Server()))
	t.Cleanup(srv.Close)
	defaults := storage.S3Options{
		Bucket:    "moim",
		Endpoint:  srv.URL,
		Region:    "us-east-1",
		PathStyle: true,
		AccessKey: s3Creds.AccessKeyID,
		SecretKey: s3Creds.SecretAccessKey,
		Prefix:    "env/test",
	}
	if opts.Bucket != "" {
		defaults.Bucket = opts.Bucket
	}
	if opts.Prefix != "" {
		defaults.Prefix = opts.Prefix
	}
	defaults.PublicBaseURL = opts.PublicBaseURL
	s, err := storage.NewS3(t.Context(), defaults)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s, backend
}

// s3Creds are the credentials the S3 tests sign with.
var s3Creds = aws.Credentials{AccessKeyID: "test-access", SecretAccessKey: "test-secret"}

// checkPresigned refuses a pre-signed request whose signature does not
// cover what was sent, as S3 does (gofakes3 checks no signature): it signs
// the request it got again, with the time and headers the URL names, and
// compares. Requests signed in headers (the SDK's own calls) pass.
func checkPresigned(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		sig := q.Get("X-Amz-Signature")
		if sig == "" {
			next.ServeHTTP(w, r)
			return
		}
		date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
		if err != nil {
			http.Error(w, "bad X-Amz-Date", http.StatusForbidden)
			return
		}
		signed := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
		for _, name := range []string{"X-Amz-Signature", "X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Date", "X-Amz-Algorithm"} {
			q.Del(name)
		}
		again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.EscapedPath()+"?"+q.Encode(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		for _, h := range signed {
			switch h {
			case "host":
			case "content-length":
				again.ContentLength = r.ContentLength
			default:
				again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
			}
		}
		u, _, err := v4.NewSigner().PresignHTTP(r.Context(), s3Creds, again, "UNSIGNED-PAYLOAD", "s3", "us-east-1", date)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if want, _ := url.Parse(u); want == nil || want.Query().Get("X-Amz-Signature") != sig {
			http.Error(w, "SignatureDoesNotMatch", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func key(t *testing.T, id, variant string) storage.Key {
	t.Helper()
	k, err := storage.NewKey(id, variant)
	if err != nil {
		t.Fatalf("NewKey(%q, %q): %v", id, variant, err)
	}
	return k
}

func put(t *testing.T, s storage.Store, k storage.Key, body, contentType string) {
	t.Helper()
	if err := s.Put(t.Context(), k, strings.NewReader(body), int64(len(body)), contentType); err != nil {
		t.Fatalf("Put %s: %v", k, err)
	}
}

// read returns the object's bytes and info through Open.
func read(t *testing.T, s storage.Store, k storage.Key) (string, storage.Info) {
	t.Helper()
	rc, info, err := s.Open(t.Context(), k)
	if err != nil {
		t.Fatalf("Open %s: %v", k, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", k, err)
	}
	return string(b), info
}

// send sends a request with a plain HTTP client, as a browser or app would.
func send(t *testing.T, method, url string, header http.Header, body []byte) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for name, values := range header {
		req.Header[name] = values
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestConformance runs the same cases against every backend.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, be.new(t))
				})
			}
		})
	}
}

var conformance = []struct {
	name string
	run  func(t *testing.T, b bundle)
}{
	{"put open stat", func(t *testing.T, b bundle) {
		k := key(t, "abcdef", "original")
		put(t, b.store, k, "\x89PNG\r\n\x1a\nrest", "image/png")
		body, info := read(t, b.store, k)
		if body != "\x89PNG\r\n\x1a\nrest" {
			t.Errorf("Open body = %q", body)
		}
		st, err := b.store.Stat(t.Context(), k)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if st.Size != 12 || st.ContentType != "image/png" || st.ETag == "" {
			t.Errorf("Stat = %+v, want size 12, image/png and an ETag", st)
		}
		if info != st {
			t.Errorf("Open info = %+v, Stat = %+v; want the same", info, st)
		}
	}},
	{"read prefix", func(t *testing.T, b bundle) {
		k := key(t, "abcdef", "original")
		put(t, b.store, k, "0123456789", "image/jpeg")
		for _, tt := range []struct {
			n    int
			want string
		}{{4, "0123"}, {10, "0123456789"}, {512, "0123456789"}, {0, ""}} {
			got, err := b.store.ReadPrefix(t.Context(), k, tt.n)
			if err != nil || string(got) != tt.want {
				t.Errorf("ReadPrefix(%d) = %q, %v; want %q", tt.n, got, err, tt.want)
			}
		}
		empty := key(t, "abcdef", "empty")
		put(t, b.store, empty, "", "image/jpeg")
		if got, err := b.store.ReadPrefix(t.Context(), empty, 16); err != nil || len(got) != 0 {
			t.Errorf("ReadPrefix of an empty object = %q, %v; want nothing", got, err)
		}
	}},
	{"missing", func(t *testing.T, b bundle) {
		k := key(t, "nothere", "original")
		if _, err := b.store.Stat(t.Context(), k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat = %v, want ErrNotFound", err)
		}
		if _, _, err := b.store.Open(t.Context(), k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open = %v, want ErrNotFound", err)
		}
		if _, err := b.store.ReadPrefix(t.Context(), k, 8); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReadPrefix = %v, want ErrNotFound", err)
		}
		if err := b.store.Delete(t.Context(), k); err != nil {
			t.Errorf("Delete of a missing key = %v, want nil", err)
		}
	}},
	{"overwrite", func(t *testing.T, b bundle) {
		k := key(t, "abcdef", "w384")
		put(t, b.store, k, "first version", "image/png")
		before, _ := b.store.Stat(t.Context(), k)
		put(t, b.store, k, "second", "image/webp")
		body, info := read(t, b.store, k)
		if body != "second" || info.Size != 6 || info.ContentType != "image/webp" {
			t.Errorf("after overwrite: %q %+v", body, info)
		}
		if info.ETag == before.ETag {
			t.Errorf("ETag %q did not change with the content", info.ETag)
		}
	}},
	{"delete", func(t *testing.T, b bundle) {
		k := key(t, "abcdef", "original")
		other := key(t, "abcdef", "thumb")
		put(t, b.store, k, "x", "image/png")
		put(t, b.store, other, "y", "image/png")
		for range 2 {
			if err := b.store.Delete(t.Context(), k); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
		if _, err := b.store.Stat(t.Context(), k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat after Delete = %v, want ErrNotFound", err)
		}
		if body, _ := read(t, b.store, other); body != "y" {
			t.Errorf("the other variant holds %q after Delete, want y", body)
		}
	}},
	{"size mismatch", func(t *testing.T, b bundle) {
		k := key(t, "abcdef", "original")
		put(t, b.store, k, "kept", "image/png")
		for _, tt := range []struct {
			body string
			size int64
		}{{"abc", 4}, {"abcde", 4}, {"a", 0}, {"", 1}} {
			err := b.store.Put(t.Context(), k, strings.NewReader(tt.body), tt.size, "image/gif")
			if !errors.Is(err, storage.ErrSizeMismatch) {
				t.Errorf("Put of %d bytes announced as %d = %v, want ErrSizeMismatch", len(tt.body), tt.size, err)
			}
		}
		if body, info := read(t, b.store, k); body != "kept" || info.ContentType != "image/png" {
			t.Errorf("after refused puts: %q %+v; want the previous object", body, info)
		}
	}},
	{"zero key", func(t *testing.T, b bundle) {
		var k storage.Key
		ctx := t.Context()
		for name, err := range map[string]error{
			"Put":     b.store.Put(ctx, k, strings.NewReader("x"), 1, "image/png"),
			"Stat":    second(b.store.Stat(ctx, k)),
			"Open":    third(b.store.Open(ctx, k)),
			"Delete":  b.store.Delete(ctx, k),
			"Read":    second(b.store.ReadPrefix(ctx, k, 1)),
			"Put URL": second(b.store.PresignPut(ctx, k, "image/png", 1, time.Minute)),
			"URL":     second(b.store.URL(ctx, k, time.Minute)),
		} {
			if !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("%s with the zero key = %v, want ErrInvalidKey", name, err)
			}
		}
	}},
	{"bad put", func(t *testing.T, b bundle) {
		k := key(t, "abcdef", "original")
		if err := b.store.Put(t.Context(), k, strings.NewReader("x"), 1, "image/png\r\nX-Evil: 1"); err == nil {
			t.Error("Put with a header in the content type: no error")
		}
		if err := b.store.Put(t.Context(), k, strings.NewReader("x"), -1, "image/png"); err == nil {
			t.Error("Put with a negative size: no error")
		}
		if _, err := b.store.Stat(t.Context(), k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat after refused puts = %v, want ErrNotFound", err)
		}
	}},
	{"presigned put", func(t *testing.T, b bundle) {
		k := key(t, "abcdef", "original")
		body := []byte("GIF89a-pixels")
		p, err := b.store.PresignPut(t.Context(), k, "image/gif", int64(len(body)), 10*time.Minute)
		if err != nil {
			t.Fatalf("PresignPut: %v", err)
		}
		if p.Method != http.MethodPut || p.Header.Get("Content-Type") != "image/gif" {
			t.Errorf("Presigned = %s with %v, want PUT with the content type", p.Method, p.Header)
		}
		if status, msg, _ := send(t, p.Method, p.URL, p.Header, body); status != http.StatusOK {
			t.Fatalf("PUT to the signed URL = %d %s, want 200", status, msg)
		}
		got, info := read(t, b.store, k)
		if got != string(body) || info.Size != int64(len(body)) || info.ContentType != "image/gif" {
			t.Errorf("after the signed PUT: %q %+v", got, info)
		}
	}},
	{"presigned put refused", func(t *testing.T, b bundle) {
		if !b.checksSignatures {
			t.Skip("the peer does not check signatures")
		}
		k := key(t, "abcdef", "original")
		p, err := b.store.PresignPut(t.Context(), k, "image/gif", 6, 10*time.Minute)
		if err != nil {
			t.Fatalf("PresignPut: %v", err)
		}
		for _, tt := range []struct {
			name string
			ct   string
			body string
		}{
			{"longer body", "image/gif", "GIF89a!"},
			{"shorter body", "image/gif", "GIF8"},
			{"other type", "image/png", "GIF89a"},
		} {
			if status, _, _ := send(t, p.Method, p.URL, http.Header{"Content-Type": {tt.ct}}, []byte(tt.body)); status != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", tt.name, status)
			}
		}
		if _, err := b.store.Stat(t.Context(), k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat after refused PUTs = %v, want ErrNotFound", err)
		}
	}},
	{"presigned put expired", func(t *testing.T, b bundle) {
		if b.advance == nil {
			t.Skip("the peer does not check expiry")
		}
		k := key(t, "abcdef", "original")
		p, err := b.store.PresignPut(t.Context(), k, "image/gif", 6, 10*time.Minute)
		if err != nil {
			t.Fatalf("PresignPut: %v", err)
		}
		if want := epoch.Add(10 * time.Minute); !p.Expires.Equal(want) {
			t.Errorf("Expires = %v, want %v", p.Expires, want)
		}
		b.advance(10 * time.Minute)
		if status, _, _ := send(t, p.Method, p.URL, p.Header, []byte("GIF89a")); status != http.StatusForbidden {
			t.Errorf("PUT at expiry = %d, want 403", status)
		}
		if _, err := b.store.Stat(t.Context(), k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat after an expired PUT = %v, want ErrNotFound", err)
		}
	}},
	{"download URL", func(t *testing.T, b bundle) {
		k := key(t, "abcdef", "thumb")
		put(t, b.store, k, "RIFF....WEBP", "image/webp")
		u, err := b.store.URL(t.Context(), k, 5*time.Minute)
		if err != nil {
			t.Fatalf("URL: %v", err)
		}
		status, body, h := send(t, http.MethodGet, u, nil, nil)
		if status != http.StatusOK || body != "RIFF....WEBP" || h.Get("Content-Type") != "image/webp" {
			t.Errorf("GET %s = %d %q %s", u, status, body, h.Get("Content-Type"))
		}
		if b.advance != nil {
			b.advance(5 * time.Minute)
			if status, _, _ := send(t, http.MethodGet, u, nil, nil); status != http.StatusForbidden {
				t.Errorf("GET at expiry = %d, want 403", status)
			}
		}
	}},
	{"concurrent puts", func(t *testing.T, b bundle) {
		k := key(t, "abcdef", "original")
		var wg sync.WaitGroup
		bodies := map[string]bool{}
		for i := range 8 {
			body := fmt.Sprintf("version %d %s", i, strings.Repeat("x", i*1000))
			bodies[body] = true
			wg.Go(func() {
				if err := b.store.Put(context.WithoutCancel(t.Context()), k, strings.NewReader(body), int64(len(body)), "image/png"); err != nil {
					t.Errorf("Put: %v", err)
				}
			})
			// Other variants of the same image come and go meanwhile.
			v := key(t, "abcdef", fmt.Sprintf("v%d", i))
			wg.Go(func() {
				if err := b.store.Put(t.Context(), v, strings.NewReader("v"), 1, "image/png"); err != nil {
					t.Errorf("Put %s: %v", v, err)
				}
				if err := b.store.Delete(t.Context(), v); err != nil {
					t.Errorf("Delete %s: %v", v, err)
				}
			})
		}
		wg.Wait()
		if body, info := read(t, b.store, k); !bodies[body] || info.Size != int64(len(body)) {
			t.Errorf("after concurrent puts: %d bytes, size %d; want one whole version", len(body), info.Size)
		}
	}},
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }
