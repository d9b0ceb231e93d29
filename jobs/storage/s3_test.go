package storage_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moim/moim/jobs/storage"
)

func TestS3Prefix(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"env/test", "env/test/"} {
		s, backend := startS3(t, storage.S3Options{Prefix: prefix})
		k := key(t, "abcdef", "original")
		put(t, s, k, "bytes", "image/png")
		obj, err := backend.HeadObject("moim", "env/test/ab/abcdef/original")
		if err != nil || obj.Size != 5 {
			t.Errorf("prefix %q: object at env/test/ab/abcdef/original = %+v, %v", prefix, obj, err)
		}
	}
}

// The pre-signed PUT covers the length and type, so S3 refuses any other
// body (the conformance cases send one to a peer that checks).
func TestS3PresignPutSignsLengthAndType(t *testing.T) {
	t.Parallel()
	s, _ := startS3(t, storage.S3Options{})
	p, err := s.PresignPut(t.Context(), key(t, "abcdef", "original"), "image/png", 1234, 10*time.Minute)
	if err != nil {
		t.Fatalf("PresignPut: %v", err)
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	signed := strings.Split(u.Query().Get("X-Amz-SignedHeaders"), ";")
	for _, h := range []string{"content-length", "content-type", "host"} {
		if !slices.Contains(signed, h) {
			t.Errorf("X-Amz-SignedHeaders = %v, want %s among them", signed, h)
		}
	}
	if got := u.Query().Get("X-Amz-Expires"); got != "600" {
		t.Errorf("X-Amz-Expires = %s, want 600", got)
	}
	if u.Path != "/moim/env/test/ab/abcdef/original" {
		t.Errorf("path = %s, want the prefixed key in the bucket", u.Path)
	}
	if p.Header.Get("Host") != "" || p.Header.Get("Content-Length") != "" {
		t.Errorf("Header = %v: the HTTP client sets Host and Content-Length itself", p.Header)
	}
	if date, err := time.Parse("20060102T150405Z", u.Query().Get("X-Amz-Date")); err != nil || !p.Expires.Equal(date.Add(10*time.Minute)) {
		t.Errorf("Expires = %v, want X-Amz-Date %s plus 10m", p.Expires, u.Query().Get("X-Amz-Date"))
	}
}

func TestS3PublicURL(t *testing.T) {
	t.Parallel()
	s, _ := startS3(t, storage.S3Options{PublicBaseURL: "https://cdn.example.com"})
	u, err := s.URL(t.Context(), key(t, "abcdef", "w384"), 0)
	if err != nil || u != "https://cdn.example.com/env/test/ab/abcdef/w384" {
		t.Errorf("URL = %q, %v; want the public one", u, err)
	}
}

// A bucket that is not there is a configuration error, not a missing
// object.
func TestS3MissingBucket(t *testing.T) {
	t.Parallel()
	s, _ := startS3(t, storage.S3Options{Bucket: "absent"})
	k := key(t, "abcdef", "original")
	if _, _, err := s.Open(t.Context(), k); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open in a missing bucket = %v, want an error other than ErrNotFound", err)
	}
	if err := s.Put(t.Context(), k, strings.NewReader("x"), 1, "image/png"); err == nil {
		t.Error("Put into a missing bucket: no error")
	}
}

func TestNewS3Refuses(t *testing.T) {
	t.Parallel()
	ok := storage.S3Options{Bucket: "b", Region: "r", AccessKey: "a", SecretKey: "s"}
	for name, change := range map[string]func(*storage.S3Options){
		"no bucket":         func(o *storage.S3Options) { o.Bucket = "" },
		"no region":         func(o *storage.S3Options) { o.Region = "" },
		"access key alone":  func(o *storage.S3Options) { o.SecretKey = "" },
		"secret key alone":  func(o *storage.S3Options) { o.AccessKey = "" },
		"climbing prefix":   func(o *storage.S3Options) { o.Prefix = "a/../b" },
		"absolute prefix":   func(o *storage.S3Options) { o.Prefix = "/a" },
		"empty segment":     func(o *storage.S3Options) { o.Prefix = "a//b" },
		"odd prefix":        func(o *storage.S3Options) { o.Prefix = "a b" },
		"backslash prefix":  func(o *storage.S3Options) { o.Prefix = `a\b` },
		"only a dot prefix": func(o *storage.S3Options) { o.Prefix = "." },
	} {
		opts := ok
		change(&opts)
		if _, err := storage.NewS3(t.Context(), opts); err == nil {
			t.Errorf("NewS3 with %s: no error", name)
		}
	}
	if _, err := storage.NewS3(t.Context(), ok); err != nil {
		t.Errorf("NewS3 with complete options: %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	local, err := storage.New(t.Context(), storage.Options{Backend: storage.BackendLocal,
		Local: storage.LocalOptions{Dir: t.TempDir(), URLKey: urlKey, SignedBaseURL: signedBase}})
	if l, ok := local.(*storage.Local); err != nil || !ok {
		t.Errorf("New(local) = %T, %v; want *Local", local, err)
	} else {
		_ = l.Close()
	}
	s3, err := storage.New(t.Context(), storage.Options{Backend: storage.BackendS3,
		S3: storage.S3Options{Bucket: "b", Region: "r", AccessKey: "a", SecretKey: "s"}})
	if _, ok := s3.(*storage.S3); err != nil || !ok {
		t.Errorf("New(s3) = %T, %v; want *S3", s3, err)
	}
	if _, err := storage.New(t.Context(), storage.Options{Backend: "ftp"}); err == nil {
		t.Error("New(ftp): no error")
	}
}
