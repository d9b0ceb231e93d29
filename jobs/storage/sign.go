package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// MinURLKeyLen is the shortest key the local backend signs URLs with:
// HMAC-SHA256 wants at least its 32-byte output.
const MinURLKeyLen = 32

// The query parameters of a signed local URL.
const (
	paramExpires = "expires"
	paramSize    = "size"
	paramType    = "type"
	paramSig     = "sig"
)

// urlSigner signs and checks the local backend's URLs. The signature binds
// the method, the key, the expiry and, for a PUT, the exact content length
// and type, so a URL handed out for one upload cannot be used for another
// object, a bigger body or another type.
type urlSigner struct {
	key []byte
	now func() time.Time
}

// grant is what one signed URL allows.
type grant struct {
	method      string
	key         Key
	size        int64  // PUT only
	contentType string // PUT only
	expires     time.Time
}

// query returns the signed URL's query for g.
func (s urlSigner) query(g grant) url.Values {
	q := url.Values{}
	q.Set(paramExpires, strconv.FormatInt(g.expires.Unix(), 10))
	if g.method == http.MethodPut {
		q.Set(paramSize, strconv.FormatInt(g.size, 10))
		q.Set(paramType, g.contentType)
	}
	q.Set(paramSig, s.sign(g))
	return q
}

func (s urlSigner) sign(g grant) string {
	m := hmac.New(sha256.New, s.key)
	// Newline-separated: only the content type could hold a newline, and
	// it comes last, so two different grants never write the same bytes.
	fmt.Fprintf(m, "moim-storage-v1\n%s\n%s\n%d\n%d\n%s", g.method, g.key, g.expires.Unix(), g.size, g.contentType)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verify checks that r is the request the URL was signed for, for key.
func (s urlSigner) verify(r *http.Request, key Key) error {
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get(paramExpires), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no expiry", ErrURLInvalid)
	}
	g := grant{method: r.Method, key: key, expires: time.Unix(exp, 0)}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		// A signed GET also allows HEAD, as S3's does not; a client
		// checking the size first needs nothing more.
		g.method = http.MethodGet
	case http.MethodPut:
		if g.size, err = strconv.ParseInt(q.Get(paramSize), 10, 64); err != nil || g.size < 0 {
			return fmt.Errorf("%w: no size", ErrURLInvalid)
		}
		g.contentType = q.Get(paramType)
	default:
		return fmt.Errorf("%w: method %s", ErrURLInvalid, r.Method)
	}
	want, err := base64.RawURLEncoding.DecodeString(q.Get(paramSig))
	if err != nil {
		return fmt.Errorf("%w: malformed signature", ErrURLInvalid)
	}
	got, _ := base64.RawURLEncoding.DecodeString(s.sign(g))
	if !hmac.Equal(got, want) {
		return fmt.Errorf("%w: signature does not match", ErrURLInvalid)
	}
	if !s.now().Before(g.expires) {
		return ErrURLExpired
	}
	if g.method == http.MethodPut {
		if r.ContentLength != g.size {
			return fmt.Errorf("%w: content length %d, signed for %d", ErrURLInvalid, r.ContentLength, g.size)
		}
		if ct := r.Header.Get("Content-Type"); ct != g.contentType {
			return fmt.Errorf("%w: content type %q, signed for %q", ErrURLInvalid, ct, g.contentType)
		}
	}
	return nil
}

func newURLSigner(key []byte, now func() time.Time) (urlSigner, error) {
	if len(key) < MinURLKeyLen {
		return urlSigner{}, errors.New("local storage: the URL key must be at least 32 bytes")
	}
	if now == nil {
		now = time.Now
	}
	return urlSigner{key: append([]byte(nil), key...), now: now}, nil
}
