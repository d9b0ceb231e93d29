package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"time"
)

// LocalOptions configures the local directory backend.
type LocalOptions struct {
	// Dir holds the objects; it is created when missing. API and workers
	// must see the same directory.
	Dir string
	// URLKey signs the upload and download URLs the API serves; every API
	// process needs the same one. At least MinURLKeyLen bytes.
	URLKey []byte
	// SignedBaseURL is where the API serves signed URLs: the key and the
	// signature are appended to it ("https://api.example.com/v1/objects").
	SignedBaseURL string
	// PublicBaseURL, when set, is where clients read objects without a
	// signature (a web server over Dir); URL returns it plus the key.
	PublicBaseURL string
	// NowFunc is the clock for signed URLs; time.Now when nil.
	NowFunc func() time.Time
}

// Local keeps objects as files below one directory: each object is a file
// named by its key, with its content type and ETag in a ".meta" file beside
// it. Every file operation goes through an os.Root, so even a key that
// slipped past the key checks could not reach outside the directory.
type Local struct {
	root   *os.Root
	signer urlSigner
	opts   LocalOptions
}

var _ Store = (*Local)(nil)

// localMeta is the content of an object's ".meta" file.
type localMeta struct {
	ContentType string `json:"content_type"`
	ETag        string `json:"etag"`
}

// NewLocal opens (and creates) the directory. Close releases it.
func NewLocal(opts LocalOptions) (*Local, error) {
	if opts.Dir == "" {
		return nil, errors.New("local storage: dir is required")
	}
	if opts.SignedBaseURL == "" {
		return nil, errors.New("local storage: signed base URL is required")
	}
	signer, err := newURLSigner(opts.URLKey, opts.NowFunc)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("local storage: create %s: %w", opts.Dir, err)
	}
	root, err := os.OpenRoot(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("local storage: open %s: %w", opts.Dir, err)
	}
	return &Local{root: root, signer: signer, opts: opts}, nil
}

// Close releases the directory.
func (l *Local) Close() error { return l.root.Close() }

// Put writes the object and its meta file to temporary files and renames
// them into place, so a reader sees the old object or the new one, never a
// part. The meta file is renamed first: in the instant between the two
// renames a reader may see the new type beside the old bytes, never a new
// object without its type.
func (l *Local) Put(ctx context.Context, key Key, r io.Reader, size int64, contentType string) error {
	contentType, err := checkPut(key, size, contentType)
	if err != nil {
		return err
	}
	name := key.String()
	h := sha256.New()
	tmp, err := l.writeTemp(ctx, name, func(w io.Writer) error {
		_, err := io.Copy(io.MultiWriter(w, h), newExactReader(ctx, r, size))
		return err
	})
	if err != nil {
		return fmt.Errorf("local storage: put %s: %w", name, err)
	}
	defer l.root.Remove(tmp) // a no-op once renamed
	meta, _ := json.Marshal(localMeta{ContentType: contentType, ETag: hex.EncodeToString(h.Sum(nil))})
	metaTmp, err := l.writeTemp(ctx, name, func(w io.Writer) error {
		_, err := w.Write(meta)
		return err
	})
	if err != nil {
		return fmt.Errorf("local storage: put %s: %w", name, err)
	}
	defer l.root.Remove(metaTmp)
	if err := l.root.Rename(metaTmp, name+".meta"); err != nil {
		return fmt.Errorf("local storage: put %s: %w", name, err)
	}
	if err := l.root.Rename(tmp, name); err != nil {
		return fmt.Errorf("local storage: put %s: %w", name, err)
	}
	return nil
}

// writeTemp writes a new temporary file beside name and returns its name.
// Its name starts with a dot and holds a second one, which no key can.
func (l *Local) writeTemp(ctx context.Context, name string, write func(io.Writer) error) (string, error) {
	dir := path.Dir(name)
	tmp := dir + "/." + path.Base(name) + ".tmp-" + rand.Text()
	var f *os.File
	var err error
	// A concurrent Delete may remove the directory between MkdirAll and
	// OpenFile; making it again is enough.
	for range 3 {
		if err = l.root.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		f, err = l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return "", err
	}
	err = write(f)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = l.root.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// Open returns the object's file.
func (l *Local) Open(ctx context.Context, key Key) (io.ReadCloser, Info, error) {
	f, err := l.open(key)
	if err != nil {
		return nil, Info{}, err
	}
	info, err := l.info(f, key)
	if err != nil {
		_ = f.Close()
		return nil, Info{}, err
	}
	return f, info, nil
}

// ReadPrefix reads the first n bytes of the object.
func (l *Local) ReadPrefix(ctx context.Context, key Key, n int) ([]byte, error) {
	f, err := l.open(key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readPrefix(f, n, key)
}

// Stat returns the object's size, type and ETag.
func (l *Local) Stat(ctx context.Context, key Key) (Info, error) {
	f, err := l.open(key)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	return l.info(f, key)
}

// Delete removes the object, its meta file and, when that leaves it
// empty, the object's directory.
func (l *Local) Delete(ctx context.Context, key Key) error {
	if err := checkKey(key); err != nil {
		return err
	}
	name := key.String()
	for _, n := range []string{name, name + ".meta"} {
		if err := l.root.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("local storage: delete %s: %w", name, err)
		}
	}
	// Fails while other variants are there, as it should.
	_ = l.root.Remove(path.Dir(name))
	return nil
}

// PresignPut returns a URL below SignedBaseURL that the API checks with
// Verify before it stores the body with Put.
func (l *Local) PresignPut(ctx context.Context, key Key, contentType string, size int64, expiry time.Duration) (Presigned, error) {
	if err := checkPresign(key, contentType, size, expiry); err != nil {
		return Presigned{}, err
	}
	g := grant{method: http.MethodPut, key: key, size: size, contentType: contentType, expires: l.expires(expiry)}
	return Presigned{
		Method:  http.MethodPut,
		URL:     l.signedURL(g),
		Header:  http.Header{"Content-Type": {contentType}},
		Expires: g.expires,
	}, nil
}

// URL returns the public URL, or one signed for GET that the API checks
// with Verify before it serves the file.
func (l *Local) URL(ctx context.Context, key Key, expiry time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if l.opts.PublicBaseURL != "" {
		return publicURL(l.opts.PublicBaseURL, key.String()), nil
	}
	if err := checkExpiry(expiry); err != nil {
		return "", err
	}
	return l.signedURL(grant{method: http.MethodGet, key: key, expires: l.expires(expiry)}), nil
}

// Verify checks a request to a signed URL: keyPath is the part of its path
// after SignedBaseURL's. It returns the key the URL was signed for, or
// ErrURLExpired, ErrURLInvalid (tampered, or another method, length or type
// than signed) or ErrInvalidKey. A GET URL also allows HEAD. The caller
// still stores a PUT body with Put and its size, which refuses a body
// longer or shorter than the Content-Length checked here.
func (l *Local) Verify(r *http.Request, keyPath string) (Key, error) {
	key, err := ParseKey(keyPath)
	if err != nil {
		return Key{}, err
	}
	if err := l.signer.verify(r, key); err != nil {
		return Key{}, err
	}
	return key, nil
}

func (l *Local) signedURL(g grant) string {
	return publicURL(l.opts.SignedBaseURL, g.key.String()) + "?" + l.signer.query(g).Encode()
}

// expires rounds up to the second the URL carries.
func (l *Local) expires(expiry time.Duration) time.Time {
	return l.signer.now().Add(expiry + time.Second - 1).Truncate(time.Second)
}

func (l *Local) open(key Key) (*os.File, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := l.root.Open(key.String())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("local storage: open %s: %w", key, err)
	}
	return f, nil
}

func (l *Local) info(f *os.File, key Key) (Info, error) {
	fi, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("local storage: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: %s is not a file", ErrNotFound, key)
	}
	info := Info{Size: fi.Size(), ContentType: defaultContentType}
	b, err := l.root.ReadFile(key.String() + ".meta")
	var meta localMeta
	switch {
	case err == nil && json.Unmarshal(b, &meta) == nil:
		info.ContentType, info.ETag = meta.ContentType, meta.ETag
	case err == nil || errors.Is(err, fs.ErrNotExist):
		// A file put there by hand: its time and size stand in for a
		// digest.
		info.ETag = fmt.Sprintf("%x-%x", fi.ModTime().UnixNano(), fi.Size())
	default:
		return Info{}, fmt.Errorf("local storage: stat %s: %w", key, err)
	}
	return info, nil
}

// readPrefix reads up to n bytes from r.
func readPrefix(r io.Reader, n int, key Key) ([]byte, error) {
	if n < 0 {
		return nil, errors.New("read prefix: n must not be negative")
	}
	buf := make([]byte, n)
	got, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("read prefix of %s: %w", key, err)
	}
	return buf[:got], nil
}
