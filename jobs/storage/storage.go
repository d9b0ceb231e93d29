// Package storage keeps objects (uploaded images and their variants) in a
// local directory or in S3-compatible object storage, behind one Store
// interface. Object keys are made here from a public id and a variant name,
// never from a file name or anything else a client sent, so no key can reach
// outside the place its backend stores objects.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// The backends New can open.
const (
	BackendLocal = "local"
	BackendS3    = "s3"
)

// defaultContentType is what an object stored without a type is served as.
const defaultContentType = "application/octet-stream"

// MaxPresignExpiry is the longest a pre-signed URL may live: SigV4 refuses
// longer, and the local backend keeps the same bound.
const MaxPresignExpiry = 7 * 24 * time.Hour

var (
	// ErrNotFound is returned for a key that holds no object.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidKey is returned for a key that was not made by NewKey or
	// ParseKey (the zero Key), or a key part that is not allowed.
	ErrInvalidKey = errors.New("invalid object key")
	// ErrSizeMismatch is returned by Put when the reader does not hold
	// exactly the announced number of bytes; nothing is stored then.
	ErrSizeMismatch = errors.New("object size does not match")
	// ErrURLExpired is returned by Local.Verify for a signed URL past its
	// expiry.
	ErrURLExpired = errors.New("signed URL expired")
	// ErrURLInvalid is returned by Local.Verify for a URL whose signature
	// does not match the request: tampered, or sent with another method,
	// length or content type than it was signed for.
	ErrURLInvalid = errors.New("signed URL invalid")
)

// Store keeps objects under keys. Every method refuses the zero Key with
// ErrInvalidKey.
type Store interface {
	// Put stores exactly size bytes from r under key with the content
	// type, replacing what was there. A reader with fewer or more bytes
	// fails with ErrSizeMismatch and leaves the previous object, if any.
	Put(ctx context.Context, key Key, r io.Reader, size int64, contentType string) error
	// Open returns the object's bytes and its Info; the caller closes the
	// reader. ErrNotFound when there is no object.
	Open(ctx context.Context, key Key) (io.ReadCloser, Info, error)
	// ReadPrefix returns the first n bytes of the object, fewer when it is
	// shorter, without reading the rest (to sniff a type from the header
	// bytes). ErrNotFound when there is no object.
	ReadPrefix(ctx context.Context, key Key, n int) ([]byte, error)
	// Stat returns the object's Info. ErrNotFound when there is no object.
	Stat(ctx context.Context, key Key) (Info, error)
	// Delete removes the object; a key without an object is not an error,
	// so a repeated delete task succeeds.
	Delete(ctx context.Context, key Key) error
	// PresignPut returns a request that uploads one object to key with a
	// plain HTTP client until expiry: exactly size bytes of contentType,
	// sent with the returned headers.
	PresignPut(ctx context.Context, key Key, contentType string, size int64, expiry time.Duration) (Presigned, error)
	// URL returns where a client downloads the object: below the public
	// base URL when one is configured (it never expires), otherwise a URL
	// signed for GET that expires after expiry.
	URL(ctx context.Context, key Key, expiry time.Duration) (string, error)
}

// Info describes a stored object.
type Info struct {
	Size        int64
	ContentType string
	// ETag changes whenever the content does; it is opaque (S3 quotes it,
	// the local backend uses a hex SHA-256 digest).
	ETag string
}

// Presigned is a request a client can send without credentials.
type Presigned struct {
	Method string
	URL    string
	// Header must be sent as given: the signature covers it.
	Header  http.Header
	Expires time.Time
}

// Key names an object. Only NewKey and ParseKey make one, so every Key a
// backend sees has passed their checks.
type Key struct {
	id      string
	variant string
}

const (
	maxIDLen      = 64
	maxVariantLen = 32
)

// NewKey returns the key of a variant ("original", "w384", …) of the image
// with the public id. The id is lower-case letters and digits (as
// db.NewPublicID makes them), the variant lower-case letters, digits, '-'
// and '_': neither can hold a '/', a '.' or anything a path could climb
// with. The stored name is "<first two id characters>/<id>/<variant>", so a
// local directory never holds more than a few thousand entries.
func NewKey(publicID, variant string) (Key, error) {
	if len(publicID) < 2 || len(publicID) > maxIDLen || !allowed(publicID, false) {
		return Key{}, fmt.Errorf("%w: id must be 2 to %d lower-case letters or digits", ErrInvalidKey, maxIDLen)
	}
	if variant == "" || len(variant) > maxVariantLen || !allowed(variant, true) {
		return Key{}, fmt.Errorf("%w: variant must be 1 to %d lower-case letters, digits, '-' or '_'", ErrInvalidKey, maxVariantLen)
	}
	return Key{id: publicID, variant: variant}, nil
}

// ParseKey reads a key back from its String form (as the local backend's
// signed URLs carry it) with the checks of NewKey.
func ParseKey(s string) (Key, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || len(parts[1]) < 2 || parts[0] != parts[1][:2] {
		return Key{}, fmt.Errorf("%w: not shard/id/variant", ErrInvalidKey)
	}
	return NewKey(parts[1], parts[2])
}

// String returns the key as stored: "ab/abcdef…/variant".
func (k Key) String() string {
	if k.id == "" {
		return ""
	}
	return k.id[:2] + "/" + k.id + "/" + k.variant
}

// PublicID returns the id the key was made with.
func (k Key) PublicID() string { return k.id }

// Variant returns the variant the key was made with.
func (k Key) Variant() string { return k.variant }

// IsZero reports whether k was made by neither NewKey nor ParseKey.
func (k Key) IsZero() bool { return k.id == "" }

func allowed(s string, punct bool) bool {
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case punct && (c == '-' || c == '_'):
		default:
			return false
		}
	}
	return true
}

// checkKey refuses the zero Key.
func checkKey(k Key) error {
	if k.IsZero() {
		return fmt.Errorf("%w: zero key", ErrInvalidKey)
	}
	return nil
}

// checkPut validates Put's arguments and returns the content type to store:
// an object stored without one is served as application/octet-stream.
func checkPut(key Key, size int64, contentType string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if size < 0 {
		return "", errors.New("put: size must not be negative")
	}
	if contentType == "" {
		return defaultContentType, nil
	}
	if _, _, err := mime.ParseMediaType(contentType); err != nil {
		return "", fmt.Errorf("put: content type %q: %w", contentType, err)
	}
	return contentType, nil
}

// checkPresign validates the arguments every backend's PresignPut takes.
func checkPresign(key Key, contentType string, size int64, expiry time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if _, _, err := mime.ParseMediaType(contentType); err != nil {
		return fmt.Errorf("presign put: content type %q: %w", contentType, err)
	}
	if size < 0 {
		return errors.New("presign put: size must not be negative")
	}
	return checkExpiry(expiry)
}

func checkExpiry(expiry time.Duration) error {
	// Signed URLs count expiry in whole seconds.
	if expiry < time.Second || expiry > MaxPresignExpiry {
		return fmt.Errorf("presign: expiry must be between 1s and %v", MaxPresignExpiry)
	}
	return nil
}

// Options selects and configures a backend for New. cmd/* copy the storage
// section of the configuration into it.
type Options struct {
	Backend string // BackendLocal or BackendS3
	Local   LocalOptions
	S3      S3Options
}

// New opens the backend opts names.
func New(ctx context.Context, opts Options) (Store, error) {
	switch opts.Backend {
	case BackendLocal:
		return NewLocal(opts.Local)
	case BackendS3:
		return NewS3(ctx, opts.S3)
	default:
		return nil, fmt.Errorf("storage backend %q: must be %s or %s", opts.Backend, BackendLocal, BackendS3)
	}
}

// publicURL joins a public base URL and an object name.
func publicURL(base, name string) string {
	return strings.TrimSuffix(base, "/") + "/" + name
}

// exactReader yields exactly size bytes of r and fails with ErrSizeMismatch
// on the read that shows r to be shorter or longer. Before it hands out the
// last bytes it looks one byte ahead, and on finding one it hands out none
// of them: an upload of a longer body then ends short of its
// Content-Length and fails, instead of completing with the first size
// bytes.
type exactReader struct {
	ctx  context.Context
	r    io.Reader
	left int64
	size int64
	err  error // the mismatch, kept for callers whose client reports another error
}

func newExactReader(ctx context.Context, r io.Reader, size int64) *exactReader {
	return &exactReader{ctx: ctx, r: r, left: size, size: size}
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if err := e.ctx.Err(); err != nil {
		return 0, err
	}
	if e.left == 0 {
		if err := e.checkEnd(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		if err := e.checkEnd(); err != nil {
			return 0, err
		}
		return n, nil
	case errors.Is(err, io.EOF):
		e.err = fmt.Errorf("%w: %d bytes, want %d", ErrSizeMismatch, e.size-e.left, e.size)
		return n, e.err
	}
	return n, err
}

// checkEnd reports an error unless r has nothing after the size bytes.
func (e *exactReader) checkEnd() error {
	var b [1]byte
	for {
		n, err := e.r.Read(b[:])
		if n > 0 {
			e.err = fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, e.size)
			return e.err
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// mismatch returns the size mismatch the reader met, if any.
func (e *exactReader) mismatch() error { return e.err }
