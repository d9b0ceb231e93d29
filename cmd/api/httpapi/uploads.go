package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
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

// uploadTypes are the media types a pre-signed upload may declare: the
// object is stored with the declared type, so it must be one the API
// accepts and serves.
var uploadTypes = []string{image.TypeJPEG, image.TypePNG, image.TypeGIF, image.TypeWebP}

// uploadRequest is the body of POST /v1/uploads.
type uploadRequest struct {
	Purpose     string `json:"purpose"`
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
}

// uploadResponse answers POST /v1/uploads: the image in UPLOADING and the
// request that uploads its original.
type uploadResponse struct {
	Image  imageResponse `json:"image"`
	Upload presignedPut  `json:"upload"`
}

type presignedPut struct {
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// checkUploadRequest validates the request and returns the purpose and the
// declared type, normalised.
func (s *server) checkUploadRequest(req uploadRequest) (domain.ImagePurpose, string, error) {
	purpose, err := domain.ParseImagePurpose(req.Purpose)
	if err != nil {
		return 0, "", err
	}
	mt, _, err := mime.ParseMediaType(req.ContentType)
	mt = strings.ToLower(mt)
	if mt == "image/jpg" {
		mt = image.TypeJPEG
	}
	if err != nil || !slices.Contains(uploadTypes, mt) {
		return 0, "", domain.FieldErrorf(domain.EUNSUPPORTEDTYPE, "content_type",
			"content_type must be one of %s.", strings.Join(uploadTypes, ", "))
	}
	switch {
	case req.Bytes < 1:
		return 0, "", domain.FieldErrorf(domain.EINVALID, "bytes", "bytes must be the file's size, at least 1.")
	case req.Bytes > s.images.MaxBytes:
		return 0, "", domain.FieldErrorf(domain.ETOOLARGE, "bytes", "The file must not exceed %d bytes.", s.images.MaxBytes)
	}
	return purpose, mt, nil
}

// handleUploadCreate hands out a pre-signed PUT URL for one original and
// records the image as UPLOADING with its declared type and size. Nothing
// is checked beyond the declaration until the upload is completed.
func (s *server) handleUploadCreate(w http.ResponseWriter, r *http.Request) {
	var req uploadRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	purpose, contentType, err := s.checkUploadRequest(req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC()
	img := domain.Image{
		ID: db.NewPublicID(), OwnerID: mustClaims(r).MemberID, Purpose: purpose, Status: domain.ImageUploading,
		ContentType: contentType, Bytes: req.Bytes, CreatedAt: now, UpdatedAt: now,
	}
	key, err := storage.NewKey(img.ID, domain.ImageOriginal)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	put, err := s.store.PresignPut(r.Context(), key, contentType, req.Bytes, s.images.UploadExpiry)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := (db.Images{}).Create(r.Context(), s.db, &img); err != nil {
		s.writeOwnerError(w, r, err)
		return
	}
	resp, err := s.newImageResponse(r.Context(), &img)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	headers := map[string]string{}
	for k := range put.Header {
		headers[k] = put.Header.Get(k)
	}
	w.Header().Set("Location", "/v1/images/"+img.ID)
	s.writeJSON(w, r, http.StatusCreated, uploadResponse{Image: resp, Upload: presignedPut{
		Method: put.Method, URL: put.URL, Headers: headers, ExpiresAt: put.Expires.UTC(),
	}})
}

// receiveObject stores the body of a PUT to a URL the local store signed.
// A URL works once: when the image is no longer UPLOADING, or its original
// is stored already, the PUT is refused with 409 already_uploaded, so a
// checked original is never replaced behind the check's back.
func (s *server) receiveObject(v urlVerifier) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The signature binds the size, so a body of another length would
		// fail it; answer that as the client's framing mistake it is.
		if size := r.URL.Query().Get("size"); size != "" && strconv.FormatInt(r.ContentLength, 10) != size {
			s.writeError(w, r, domain.Errorf(domain.EINVALID, "Send exactly %s bytes with a Content-Length, as the upload was signed for.", size))
			return
		}
		key, err := s.verifyObjectURL(v, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		img, err := (db.Images{}).FindByID(r.Context(), s.db, key.PublicID())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if img.Status != domain.ImageUploading || key.Variant() != domain.ImageOriginal {
			s.writeError(w, r, errAlreadyUploaded())
			return
		}
		switch _, err := s.store.Stat(r.Context(), key); {
		case err == nil:
			s.writeError(w, r, errAlreadyUploaded())
			return
		case !errors.Is(err, storage.ErrNotFound):
			s.writeError(w, r, err)
			return
		}
		body := &readErrBody{r: r.Body}
		err = s.store.Put(r.Context(), key, body, r.ContentLength, r.Header.Get("Content-Type"))
		switch {
		case errors.Is(err, storage.ErrSizeMismatch) || body.err != nil:
			s.writeError(w, r, &domain.Error{Code: domain.EINVALID,
				Message: fmt.Sprintf("The body must be exactly %d bytes.", r.ContentLength), Err: err})
		case err != nil:
			s.writeError(w, r, err)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}
}

func errAlreadyUploaded() error {
	return domain.Errorf(domain.EALREADYUPLOADED, "This upload URL was used already; ask for a new upload.")
}

// readErrBody remembers a failure to read the request body, which is the
// client's (a body ending before its Content-Length), not the store's.
type readErrBody struct {
	r   io.Reader
	err error
}

func (b *readErrBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}

// verifyObjectURL checks a request to a URL the local store signed.
func (s *server) verifyObjectURL(v urlVerifier, r *http.Request) (storage.Key, error) {
	key, err := v.Verify(r, chi.URLParam(r, "*"))
	switch {
	case errors.Is(err, storage.ErrURLExpired):
		return key, domain.Errorf(domain.EFORBIDDEN, "The link has expired; ask for a new one.")
	case errors.Is(err, storage.ErrURLInvalid):
		return key, domain.Errorf(domain.EFORBIDDEN, "The link is not valid.")
	case err != nil:
		return key, domain.Errorf(domain.ENOTFOUND, "Object not found.")
	}
	return key, nil
}

// handleUploadComplete checks the uploaded original of the caller's
// UPLOADING image from its header bytes, as POST /v1/images checks a
// file, and moves the image on to PROCESSING with its variants task. A
// refused file is deleted with its row: nothing of it stays. Only the
// owner completes an upload; anyone else is refused with 403, since any
// member may read the image itself.
func (s *server) handleUploadComplete(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	img, err := (db.Images{}).FindByID(ctx, s.db, chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if img.OwnerID != mustClaims(r).MemberID {
		s.writeError(w, r, domain.Errorf(domain.EFORBIDDEN, "Only the uploader can complete an upload."))
		return
	}
	if img.Status != domain.ImageUploading {
		s.writeError(w, r, domain.Errorf(domain.EALREADYCOMPLETED, "This upload was completed already."))
		return
	}
	if s.now().After(img.CreatedAt.Add(s.images.UploadExpiry + jobs.UploadCompleteGrace)) {
		// Left alone: the upload-cleanup tick deletes it.
		s.writeError(w, r, domain.Errorf(domain.EUPLOADEXPIRED, "This upload has expired; ask for a new one."))
		return
	}
	key, err := storage.NewKey(img.ID, domain.ImageOriginal)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	header, size, err := s.checkUploaded(ctx, img, key)
	var refusal *domain.Error
	if errors.As(err, &refusal) && refusal.Code != domain.EUPLOADMISSING {
		s.discardUpload(ctx, img.ID, key)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	width, height := header.DisplaySize()
	now := s.now().UTC()
	moved := false
	err = s.recordWithVariants(ctx, img.ID, func(ctx context.Context, tx bun.Tx) error {
		var err error
		moved, err = (db.Images{}).StartProcessing(ctx, tx, img.ID, header.Type, width, height, size, now)
		if err == nil && !moved {
			// A concurrent completion won; roll back so no second task
			// is enqueued.
			err = domain.Errorf(domain.EALREADYCOMPLETED, "This upload was completed already.")
		}
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	img.Status, img.ContentType, img.Width, img.Height, img.Bytes = domain.ImageProcessing, header.Type, width, height, size
	img.UpdatedAt = now
	resp, err := s.newImageResponse(ctx, img)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusAccepted, resp)
}

// checkUploaded checks the stored original of img: there, within the size
// limit, and an accepted image of the declared type and the purpose's
// dimensions. A refusal is a *domain.Error; any other error is the
// store's. EUPLOADMISSING leaves the upload as it is, so the client can
// still PUT.
func (s *server) checkUploaded(ctx context.Context, img *domain.Image, key storage.Key) (image.Header, int64, error) {
	info, err := s.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return image.Header{}, 0, domain.Errorf(domain.EUPLOADMISSING, "Nothing was uploaded yet; PUT the file to the upload URL first.")
	}
	if err != nil {
		return image.Header{}, 0, err
	}
	if info.Size > s.images.MaxBytes {
		return image.Header{}, 0, domain.Errorf(domain.ETOOLARGE, "The file must not exceed %d bytes.", s.images.MaxBytes)
	}
	if info.Size == 0 {
		return image.Header{}, 0, domain.Errorf(domain.EINVALID, "The file is empty.")
	}
	lim, err := s.imageLimits(img.Purpose)
	if err != nil {
		return image.Header{}, 0, err
	}
	prefix, err := s.store.ReadPrefix(ctx, key, image.MaxHeaderBytes)
	if errors.Is(err, storage.ErrNotFound) {
		return image.Header{}, 0, domain.Errorf(domain.EUPLOADMISSING, "Nothing was uploaded yet; PUT the file to the upload URL first.")
	}
	if err != nil {
		return image.Header{}, 0, err
	}
	h, err := image.InspectBytes(prefix, img.ContentType, lim)
	if err != nil && domain.ErrorCode(err) == domain.EINTERNAL {
		return image.Header{}, 0, err
	}
	return h, info.Size, err
}

// internal marks a failure that is not the client's, so the caller keeps
// the upload for a retry.
func internal(err error) error {
	return &domain.Error{Code: domain.EINTERNAL, Message: "Internal error.", Err: err}
}

// discardUpload deletes a refused upload's object, then its row, even when
// the request is gone; what fails is left to the upload-cleanup tick.
func (s *server) discardUpload(ctx context.Context, id string, key storage.Key) {
	ctx = context.WithoutCancel(ctx)
	if err := s.store.Delete(ctx, key); err != nil {
		s.logger.ErrorContext(ctx, "delete refused upload", slog.String("key", key.String()), slog.Any("err", err))
		return
	}
	if _, err := (db.Images{}).DeleteUploading(ctx, s.db, id); err != nil {
		s.logger.ErrorContext(ctx, "delete refused upload", slog.String("image", id), slog.Any("err", err))
	}
}
