package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/image"
	"github.com/moim/moim/jobs/storage"
)

// Image upload defaults, used when Deps leaves them zero.
const (
	// DefaultImageMaxBytes is ErunJrun's 15 MB per photo.
	DefaultImageMaxBytes int64 = 15 << 20
	// DefaultImageURLExpiry is how long a signed download URL in an image's
	// answer works.
	DefaultImageURLExpiry = time.Hour
	// DefaultImageUploadExpiry is how long a pre-signed upload URL works.
	DefaultImageUploadExpiry = jobs.DefaultUploadExpiry
)

// multipartSlack is what an upload's body may hold beyond the file: the
// boundaries, part headers and the purpose field.
const multipartSlack = 64 << 10

// maxUploadParts bounds the parts of one upload: a file and a purpose are
// all there is, so a body of thousands of tiny parts is refused early.
const maxUploadParts = 4

// objectCacheControl lets clients keep an object for a year: an object
// never changes under its key (a variant rewritten by a retried task has
// the same bytes).
const objectCacheControl = "private, max-age=31536000, immutable"

// ImageParams configure the image routes; zero fields take the defaults.
type ImageParams struct {
	// MaxBytes is the largest original accepted; DefaultImageMaxBytes
	// when 0.
	MaxBytes int64
	// MaxPixels is the largest width×height accepted;
	// image.DefaultMaxPixels when 0.
	MaxPixels int64
	// URLExpiry is how long a signed download URL works;
	// DefaultImageURLExpiry when 0.
	URLExpiry time.Duration
	// UploadExpiry is how long a pre-signed upload URL works;
	// DefaultImageUploadExpiry when 0.
	UploadExpiry time.Duration
}

// urlVerifier is a store whose signed URLs the API serves itself (the
// local directory backend).
type urlVerifier interface {
	Verify(r *http.Request, keyPath string) (storage.Key, error)
}

// registerImageRoutes mounts uploads and, for a store whose signed URLs
// point at the API, the object downloads. Without a store there are no
// image routes.
func (s *server) registerImageRoutes(r chi.Router) {
	if s.store == nil {
		return
	}
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.With(raiseBodyLimit(s.images.MaxBytes+multipartSlack)).Post("/v1/images", s.handleImageUpload)
		r.Get("/v1/images/{id}", s.handleImageGet)
		r.Post("/v1/uploads", s.handleUploadCreate)
		r.Post("/v1/images/{id}/complete", s.handleUploadComplete)
	})
	if v, ok := s.store.(urlVerifier); ok {
		serve := s.serveObject(v)
		r.Get("/v1/objects/*", serve)
		r.Head("/v1/objects/*", serve)
		// The signature binds a size of at most MaxBytes.
		r.With(raiseBodyLimit(s.images.MaxBytes)).Put("/v1/objects/*", s.receiveObject(v))
	}
}

// imageResponse is an image as clients see it. urls maps "original" and
// every variant to where it is downloaded; a variant not made yet maps to
// the original, so a client can show the image while it is PROCESSING.
type imageResponse struct {
	ID            string             `json:"id"`
	Purpose       string             `json:"purpose"`
	Status        domain.ImageStatus `json:"status"`
	ContentType   string             `json:"content_type"`
	Width         int                `json:"width"`
	Height        int                `json:"height"`
	Bytes         int64              `json:"bytes"`
	URLs          map[string]string  `json:"urls"`
	FailureReason *string            `json:"failure_reason"`
	CreatedAt     time.Time          `json:"created_at"`
}

// newImageResponse signs the image's URLs.
func (s *server) newImageResponse(ctx context.Context, img *domain.Image) (imageResponse, error) {
	resp := imageResponse{
		ID: img.ID, Purpose: img.Purpose.String(), Status: img.Status, ContentType: img.ContentType,
		Width: img.Width, Height: img.Height, Bytes: img.Bytes, URLs: map[string]string{},
		FailureReason: nullable(img.FailureReason), CreatedAt: img.CreatedAt.UTC(),
	}
	var err error
	if resp.URLs, err = s.imageURLs(ctx, img); err != nil {
		return imageResponse{}, err
	}
	return resp, nil
}

// imageURLs signs the URLs of img's original and variants; it is empty
// for an image with nothing checked to show (an upload not completed, or
// one that could not be decoded) and without a store.
func (s *server) imageURLs(ctx context.Context, img *domain.Image) (map[string]string, error) {
	urls := map[string]string{}
	if s.store == nil || (img.Status != domain.ImageProcessing && img.Status != domain.ImageReady) {
		return urls, nil
	}
	original, err := s.objectURL(ctx, img.ID, domain.ImageOriginal)
	if err != nil {
		return nil, err
	}
	urls[domain.ImageOriginal] = original
	for _, v := range domain.ImageVariants() {
		urls[v] = original
		if img.HasVariant(v) {
			if urls[v], err = s.objectURL(ctx, img.ID, v); err != nil {
				return nil, err
			}
		}
	}
	return urls, nil
}

// attachedImageResponse is an image as rooms and members show it.
type attachedImageResponse struct {
	ID     string             `json:"id"`
	Status domain.ImageStatus `json:"status"`
	URLs   map[string]string  `json:"urls"`
}

func (s *server) newAttachedImageResponse(ctx context.Context, img *domain.Image) (attachedImageResponse, error) {
	urls, err := s.imageURLs(ctx, img)
	return attachedImageResponse{ID: img.ID, Status: img.Status, URLs: urls}, err
}

// attachableImage reads image id for member me to attach as a photo of
// purpose; errors name field.
func attachableImage(ctx context.Context, idb bun.IDB, id, me string, purpose domain.ImagePurpose, field string) (*domain.Image, error) {
	img, err := (db.Images{}).FindByID(ctx, idb, id)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, domain.FieldErrorf(domain.ENOTFOUND, field, "Image %s not found.", id)
	}
	if err != nil {
		return nil, err
	}
	return img, img.CheckAttach(me, purpose, field)
}

func (s *server) objectURL(ctx context.Context, id, variant string) (string, error) {
	key, err := storage.NewKey(id, variant)
	if err != nil {
		return "", err
	}
	return s.store.URL(ctx, key, s.images.URLExpiry)
}

// handleImageGet answers any member: room photos are shown to everyone
// who can see the room, and an image id is unguessable.
func (s *server) handleImageGet(w http.ResponseWriter, r *http.Request) {
	img, err := (db.Images{}).FindByID(r.Context(), s.db, chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.newImageResponse(r.Context(), img)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// upload is a checked upload spooled to a temporary file.
type upload struct {
	file     *os.File
	size     int64
	declared string // the file part's Content-Type
	purpose  domain.ImagePurpose
	header   image.Header
}

func (u *upload) close() {
	if u.file != nil {
		_ = u.file.Close()
		_ = os.Remove(u.file.Name())
	}
}

// handleImageUpload takes one image as multipart/form-data (a "file" part
// and a "purpose" field), checks it from its header bytes, stores the
// original and records the image as PROCESSING with its variants task in
// one transaction. A refused upload stores nothing.
func (s *server) handleImageUpload(w http.ResponseWriter, r *http.Request) {
	u, err := s.readUpload(r)
	defer u.close()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC()
	width, height := u.header.DisplaySize()
	img := domain.Image{
		ID: db.NewPublicID(), OwnerID: mustClaims(r).MemberID, Purpose: u.purpose, Status: domain.ImageProcessing,
		ContentType: u.header.Type, Width: width, Height: height, Bytes: u.size,
		CreatedAt: now, UpdatedAt: now,
	}
	key, err := storage.NewKey(img.ID, domain.ImageOriginal)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := u.file.Seek(0, io.SeekStart); err != nil {
		s.writeError(w, r, fmt.Errorf("rewind upload: %w", err))
		return
	}
	if err := s.store.Put(r.Context(), key, u.file, u.size, img.ContentType); err != nil {
		s.writeError(w, r, fmt.Errorf("store image %s: %w", img.ID, err))
		return
	}
	err = s.recordWithVariants(r.Context(), img.ID, func(ctx context.Context, tx bun.Tx) error {
		return (db.Images{}).Create(ctx, tx, &img)
	})
	if err != nil {
		// No row names the object: remove it, even when the request
		// is gone.
		if derr := s.store.Delete(context.WithoutCancel(r.Context()), key); derr != nil {
			s.logger.ErrorContext(r.Context(), "delete unrecorded image", slog.String("key", key.String()), slog.Any("err", derr))
		}
		s.writeOwnerError(w, r, err)
		return
	}
	resp, err := s.newImageResponse(r.Context(), &img)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/images/"+img.ID)
	s.writeJSON(w, r, http.StatusAccepted, resp)
}

// writeOwnerError answers a failure to record an image: an owner that is
// not found was deleted after the token was issued.
func (s *server) writeOwnerError(w http.ResponseWriter, r *http.Request, err error) {
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		err = domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	s.writeAuthError(w, r, err)
}

// recordWithVariants runs record (which writes the image's row as
// PROCESSING) and enqueues the image's variants task through the outbox in
// one transaction, so a recorded original always gets its variants.
func (s *server) recordWithVariants(ctx context.Context, id string, record func(ctx context.Context, tx bun.Tx) error) error {
	return s.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := record(ctx, tx); err != nil {
			return err
		}
		task, err := jobs.NewImageVariantsTask(id)
		if err != nil {
			return err
		}
		return jobs.Enqueue(ctx, tx, task)
	})
}

// imageLimits returns the dimension limits of an upload for purpose.
func (s *server) imageLimits(purpose domain.ImagePurpose) (image.Limits, error) {
	lim, err := image.LimitsFor(image.Purpose(purpose.String()))
	if err != nil {
		return image.Limits{}, err
	}
	lim.MaxPixels = s.images.MaxPixels
	return lim, nil
}

// readUpload reads the multipart body: the file goes to a temporary file
// (never more than the size limit), the purpose is checked, then the
// file's header bytes. The caller closes the upload, which it gets even
// with an error.
func (s *server) readUpload(r *http.Request) (*upload, error) {
	u := &upload{}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return u, domain.Errorf(codeUnsupportedMediaType, "Content-Type must be multipart/form-data with a file part \"file\" and a field \"purpose\".")
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var purpose string
	havePurpose, files := false, 0
	for parts := 0; ; parts++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return u, s.multipartError(err)
		}
		if parts == maxUploadParts {
			return u, domain.Errorf(domain.EINVALID, "Send one file part \"file\" and one field \"purpose\", nothing else.")
		}
		switch part.FormName() {
		case "file":
			if files++; files > 1 {
				return u, domain.FieldErrorf(domain.EINVALID, "file", "Send exactly one file.")
			}
			if err := s.spool(u, part); err != nil {
				return u, err
			}
			u.declared = part.Header.Get("Content-Type")
		case "purpose":
			if havePurpose {
				return u, domain.FieldErrorf(domain.EINVALID, "purpose", "Send one purpose.")
			}
			b, err := io.ReadAll(io.LimitReader(part, 64))
			if err != nil {
				return u, s.multipartError(err)
			}
			purpose, havePurpose = string(b), true
		default:
			return u, domain.Errorf(domain.EINVALID, "Unknown part %q; send a file part \"file\" and a field \"purpose\".", part.FormName())
		}
	}
	if files == 0 {
		return u, domain.FieldErrorf(domain.EINVALID, "file", "A file part \"file\" is required.")
	}
	if !havePurpose {
		return u, domain.FieldErrorf(domain.EINVALID, "purpose", "Field \"purpose\" is required: room, avatar or verification.")
	}
	if u.purpose, err = domain.ParseImagePurpose(purpose); err != nil {
		return u, err
	}
	if u.size == 0 {
		return u, domain.FieldErrorf(domain.EINVALID, "file", "The file is empty.")
	}
	lim, err := s.imageLimits(u.purpose)
	if err != nil {
		return u, err
	}
	if _, err := u.file.Seek(0, io.SeekStart); err != nil {
		return u, fmt.Errorf("rewind upload: %w", err)
	}
	u.header, err = image.Inspect(u.file, u.declared, lim)
	return u, err
}

// spool copies the file part to a new temporary file, refusing one larger
// than the limit.
func (s *server) spool(u *upload, part *multipart.Part) error {
	f, err := os.CreateTemp("", "moim-upload-*")
	if err != nil {
		return fmt.Errorf("spool upload: %w", err)
	}
	u.file = f
	n, err := io.Copy(f, io.LimitReader(part, s.images.MaxBytes+1))
	var pathErr *os.PathError
	switch {
	case errors.As(err, &pathErr): // the disk, not the client
		return fmt.Errorf("spool upload: %w", err)
	case err != nil:
		return s.multipartError(err)
	case n > s.images.MaxBytes:
		return domain.FieldErrorf(domain.ETOOLARGE, "file", "The file must not exceed %d bytes.", s.images.MaxBytes)
	}
	u.size = n
	return nil
}

// multipartError turns a failure to read the body into a client error: a
// body over the limit, or one that is not valid multipart.
func (s *server) multipartError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &domain.Error{Code: domain.ETOOLARGE, Field: "file",
			Message: fmt.Sprintf("The file must not exceed %d bytes.", s.images.MaxBytes), Err: err}
	}
	return &domain.Error{Code: domain.EINVALID, Message: "The body is not valid multipart/form-data.", Err: err}
}

// serveObject serves a file of the local store at a URL it signed: the
// stored type, never sniffed by the browser, cacheable for good, with an
// ETag for revalidation.
func (s *server) serveObject(v urlVerifier) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, err := s.verifyObjectURL(v, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		body, info, err := s.store.Open(r.Context(), key)
		if errors.Is(err, storage.ErrNotFound) {
			err = domain.Errorf(domain.ENOTFOUND, "Object not found.")
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer body.Close()
		h := w.Header()
		h.Set("Content-Type", info.ContentType)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", objectCacheControl)
		if info.ETag != "" {
			h.Set("ETag", quoteETag(info.ETag))
		}
		rs, ok := body.(io.ReadSeeker)
		if !ok {
			s.writeError(w, r, fmt.Errorf("serve object %s: %T cannot seek", key, body))
			return
		}
		// Answers If-None-Match with 304, HEAD and ranges.
		http.ServeContent(w, r, "", time.Time{}, rs)
	}
}

// quoteETag makes a strong entity tag of a store's ETag, which S3 quotes
// and the local backend does not.
func quoteETag(etag string) string {
	if strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`) {
		return etag
	}
	return `"` + etag + `"`
}
