package httpapi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	stdimage "image"
	"image/jpeg"
	"image/png"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/storage"
)

// imageBody is an image as the API answers it.
type imageBody struct {
	ID            string            `json:"id"`
	Purpose       string            `json:"purpose"`
	Status        string            `json:"status"`
	ContentType   string            `json:"content_type"`
	Width         int               `json:"width"`
	Height        int               `json:"height"`
	Bytes         int64             `json:"bytes"`
	URLs          map[string]string `json:"urls"`
	FailureReason *string           `json:"failure_reason"`
	CreatedAt     string            `json:"created_at"`
}

func testJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, stdimage.NewGray(stdimage.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, stdimage.NewGray(stdimage.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngBomb is a PNG cut after its IHDR chunk claiming w×h pixels.
func pngBomb(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
	b = binary.BigEndian.AppendUint32(b, w)
	b = binary.BigEndian.AppendUint32(b, h)
	return append(b, 8, 0, 0, 0, 0, 0, 0, 0, 0)
}

// heic is the start of an HEIC file.
var heic = []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic\x00\x00\x00\x00meta")

// part is one part of a multipart upload; a part with a filename is a
// file.
type part struct {
	name, filename, contentType string
	data                        []byte
}

func filePart(data []byte, contentType string) part {
	return part{name: "file", filename: "photo.jpg", contentType: contentType, data: data}
}

func purposePart(p string) part { return part{name: "purpose", data: []byte(p)} }

// multipartBody encodes parts and returns the body and its Content-Type.
func multipartBody(t testing.TB, parts ...part) (string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disp := fmt.Sprintf(`form-data; name=%q`, p.name)
		if p.filename != "" {
			disp += fmt.Sprintf(`; filename=%q`, p.filename)
		}
		h.Set("Content-Disposition", disp)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(p.data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String(), mw.FormDataContentType()
}

func (s *testServer) upload(t testing.TB, token string, parts ...part) (*http.Response, []byte) {
	t.Helper()
	body, ct := multipartBody(t, parts...)
	return s.do(t, request{method: http.MethodPost, path: "/v1/images", token: token, body: body, contentType: ct})
}

// storedFiles lists the files below dir.
func storedFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// imageTasks returns the payloads of the image:variants tasks in the outbox.
func imageTasks(t testing.TB, bdb *bun.DB) []jobs.ImageVariantsPayload {
	t.Helper()
	return imagePayloads(t, bdb, jobs.TypeImageVariants)
}

// imagePayloads returns the payloads of the outbox's tasks of type typ.
func imagePayloads(t testing.TB, bdb *bun.DB, typ string) []jobs.ImageVariantsPayload {
	t.Helper()
	var payloads [][]byte
	if err := bdb.NewSelect().Table("outbox").Column("payload").Where("type = ?", typ).
		Scan(context.Background(), &payloads); err != nil {
		t.Fatal(err)
	}
	out := make([]jobs.ImageVariantsPayload, len(payloads))
	for i, p := range payloads {
		if err := json.Unmarshal(p, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func countImages(t testing.TB, bdb *bun.DB) int {
	t.Helper()
	n, err := bdb.NewSelect().Table("images").Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// checkNothingStored asserts no image row, object or variants task is
// kept.
func checkNothingStored(t *testing.T, bdb *bun.DB, storeDir string) {
	t.Helper()
	if n := countImages(t, bdb); n != 0 {
		t.Errorf("%d images stored, want none", n)
	}
	if files := storedFiles(t, storeDir); len(files) != 0 {
		t.Errorf("stored files %v, want none", files)
	}
	if tasks := imageTasks(t, bdb); len(tasks) != 0 {
		t.Errorf("image tasks %+v, want none", tasks)
	}
}

// fetch GETs a URL the API handed out.
func (s *testServer) fetch(t testing.TB, method, rawURL string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	return s.do(t, request{method: method, path: rawURL, header: header})
}

func TestImageUpload(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		clock := &roomClock{now: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
		store := newStore(t, t.TempDir(), clock.Now)
		s := newServer(t, e, func(d *httpapi.Deps) {
			d.NowFunc = clock.Now
			d.Storage = store
			d.Images = httpapi.ImageParams{URLExpiry: 10 * time.Minute}
		}, nil)
		s.signup(t, "owner@example.com", "owner")
		owner := s.login(t, "owner@example.com")
		s.signup(t, "other@example.com", "other")
		other := s.login(t, "other@example.com")

		photo := testJPEG(t, 800, 600)
		if len(photo) <= testBodyLimit {
			t.Fatalf("the photo is %d bytes; it must be over the %d-byte body limit of other routes", len(photo), testBodyLimit)
		}
		// The purpose may come after the file.
		resp, raw := s.upload(t, owner.AccessToken, filePart(photo, "image/jpeg"), purposePart("room"))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("upload: status = %d, want 202 (body %s)", resp.StatusCode, raw)
		}
		var img imageBody
		decodeStrict(t, raw, &img)
		if loc := resp.Header.Get("Location"); loc != "/v1/images/"+img.ID {
			t.Errorf("Location = %q", loc)
		}
		if img.Status != "PROCESSING" || img.Purpose != "room" || img.ContentType != "image/jpeg" ||
			img.Width != 800 || img.Height != 600 || img.Bytes != int64(len(photo)) || img.FailureReason != nil ||
			img.CreatedAt != "2026-12-07T09:00:00Z" {
			t.Errorf("upload answered %+v", img)
		}
		// Every variant serves the original until it is made.
		original := img.URLs["original"]
		if !strings.HasPrefix(original, "/v1/objects/") || len(img.URLs) != 4 {
			t.Fatalf("urls = %v, want original and three variants", img.URLs)
		}
		for _, v := range domain.ImageVariants() {
			if img.URLs[v] != original {
				t.Errorf("urls[%s] = %q, want the original %q", v, img.URLs[v], original)
			}
		}
		if tasks := imageTasks(t, bdb); len(tasks) != 1 || tasks[0].ImageID != img.ID {
			t.Errorf("image tasks = %+v, want one for %s", tasks, img.ID)
		}
		key, _ := storage.NewKey(img.ID, "original")
		if info, err := store.Stat(context.Background(), key); err != nil || info.Size != int64(len(photo)) || info.ContentType != "image/jpeg" {
			t.Errorf("stored original: %+v, %v", info, err)
		}

		// Any member may read it.
		var got imageBody
		s.getOK(t, "/v1/images/"+img.ID, other.AccessToken, &got)
		if got.ID != img.ID || got.URLs["original"] != original || got.Status != "PROCESSING" {
			t.Errorf("GET = %+v, want %+v", got, img)
		}
		resp, raw = s.do(t, request{method: http.MethodGet, path: "/v1/images/" + db.NewPublicID(), token: other.AccessToken})
		checkError(t, resp, raw, http.StatusNotFound, "not_found", "")
		resp, raw = s.do(t, request{method: http.MethodGet, path: "/v1/images/" + img.ID})
		checkError(t, resp, raw, http.StatusUnauthorized, "unauthorized", "")

		// The object: its type, never sniffed, cached for good, revalidated
		// by ETag.
		resp, raw = s.fetch(t, http.MethodGet, original, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(raw, photo) {
			t.Fatalf("GET original: status %d, %d bytes", resp.StatusCode, len(raw))
		}
		etag := resp.Header.Get("ETag")
		for k, want := range map[string]string{
			"Content-Type": "image/jpeg", "X-Content-Type-Options": "nosniff",
			"Cache-Control": "private, max-age=31536000, immutable",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
			t.Errorf("ETag = %q, want a quoted digest", etag)
		}
		resp, raw = s.fetch(t, http.MethodGet, original, map[string]string{"If-None-Match": etag})
		if resp.StatusCode != http.StatusNotModified || len(raw) != 0 {
			t.Errorf("GET If-None-Match: status %d, %d bytes; want 304 and nothing", resp.StatusCode, len(raw))
		}
		resp, raw = s.fetch(t, http.MethodHead, original, nil)
		if resp.StatusCode != http.StatusOK || len(raw) != 0 || resp.ContentLength != int64(len(photo)) {
			t.Errorf("HEAD: status %d, length %d, %d bytes", resp.StatusCode, resp.ContentLength, len(raw))
		}

		// Tampered, for another key, or expired: refused.
		u, _ := url.Parse(original)
		q := u.Query()
		q.Set("expires", fmt.Sprint(clock.Now().Add(time.Hour).Unix()))
		resp, raw = s.fetch(t, http.MethodGet, u.Path+"?"+q.Encode(), nil)
		checkError(t, resp, raw, http.StatusForbidden, "forbidden", "")
		resp, raw = s.fetch(t, http.MethodGet, strings.Replace(original, "/original?", "/w384?", 1), nil)
		checkError(t, resp, raw, http.StatusForbidden, "forbidden", "")
		resp, raw = s.fetch(t, http.MethodGet, "/v1/objects/../../etc/passwd", nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET a path outside the store: status %d (body %s)", resp.StatusCode, raw)
		}
		resp, raw = s.fetch(t, http.MethodGet, "/v1/objects/ab/cd/original?expires=1&sig=x", nil)
		checkError(t, resp, raw, http.StatusNotFound, "not_found", "")
		clock.Advance(11 * time.Minute)
		resp, raw = s.fetch(t, http.MethodGet, original, nil)
		checkError(t, resp, raw, http.StatusForbidden, "forbidden", "")

		// A variant once made gets its own URL; the others still serve the
		// original.
		if _, err := bdb.NewUpdate().Table("images").Set("variants = ?", `["w384"]`).
			Where("public_id = ?", img.ID).Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.getOK(t, "/v1/images/"+img.ID, other.AccessToken, &got)
		if !strings.Contains(got.URLs["w384"], "/w384?") || !strings.Contains(got.URLs["w758"], "/original?") {
			t.Errorf("urls = %v, want w384 its own and w758 the original", got.URLs)
		}
		if resp, raw := s.fetch(t, http.MethodGet, got.URLs["original"], nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET a fresh original URL: status %d (body %s)", resp.StatusCode, raw)
		}
		// The variant is not stored here: a signed URL to nothing.
		resp, raw = s.fetch(t, http.MethodGet, got.URLs["w384"], nil)
		checkError(t, resp, raw, http.StatusNotFound, "not_found", "")

		// Other purposes, PNG, a type left undeclared.
		for _, tc := range []struct {
			purpose, declared string
			data              []byte
		}{
			{"avatar", "image/png", testPNG(t, 128, 128)},
			{"verification", "", testJPEG(t, 400, 400)},
			{"room", "application/octet-stream", testPNG(t, 380, 500)},
		} {
			resp, raw := s.upload(t, owner.AccessToken, purposePart(tc.purpose), filePart(tc.data, tc.declared))
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("upload %s %q: status %d (body %s)", tc.purpose, tc.declared, resp.StatusCode, raw)
			}
		}
		if n := countImages(t, bdb); n != 4 {
			t.Errorf("%d images stored, want 4", n)
		}
	})
}

func TestImageUploadRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s := newServer(t, e, nil, nil)
		s.signup(t, "owner@example.com", "owner")
		owner := s.login(t, "owner@example.com")

		jpg := testJPEG(t, 800, 600)
		pngImg := testPNG(t, 800, 600)
		huge := append(append([]byte{}, jpg...), make([]byte, 20<<20)...)
		tests := []struct {
			name       string
			parts      []part
			wantStatus int
			wantCode   string
			wantField  string
		}{
			{"empty file", []part{purposePart("room"), filePart(nil, "image/jpeg")}, 400, "invalid", "file"},
			{"two files", []part{purposePart("room"), filePart(jpg, "image/jpeg"), filePart(jpg, "image/jpeg")}, 400, "invalid", "file"},
			{"no file", []part{purposePart("room")}, 400, "invalid", "file"},
			{"no purpose", []part{filePart(jpg, "image/jpeg")}, 400, "invalid", "purpose"},
			{"empty purpose", []part{purposePart(""), filePart(jpg, "image/jpeg")}, 400, "invalid", "purpose"},
			{"unknown purpose", []part{purposePart("banner"), filePart(jpg, "image/jpeg")}, 400, "invalid", "purpose"},
			{"two purposes", []part{purposePart("room"), purposePart("avatar"), filePart(jpg, "image/jpeg")}, 400, "invalid", "purpose"},
			{"unknown part", []part{purposePart("room"), {name: "caption", data: []byte("hi")}, filePart(jpg, "image/jpeg")}, 400, "invalid", ""},
			{"text renamed .jpg", []part{purposePart("room"), filePart([]byte("just some text, not a photo\n"), "image/jpeg")}, 415, "unsupported_type", ""},
			{"PNG declared as JPEG", []part{purposePart("room"), filePart(pngImg, "image/jpeg")}, 400, "type_mismatch", ""},
			{"20 MB", []part{purposePart("room"), filePart(huge, "image/jpeg")}, 413, "too_large", "file"},
			{"60000x60000 bomb", []part{purposePart("room"), filePart(pngBomb(60000, 60000), "image/png")}, 413, "too_many_pixels", ""},
			{"100x100 room photo", []part{purposePart("room"), filePart(testJPEG(t, 100, 100), "image/jpeg")}, 400, "image_too_small", ""},
			{"HEIC", []part{purposePart("room"), filePart(heic, "image/heic")}, 415, "unsupported_type", ""},
			{"truncated JPEG", []part{purposePart("room"), filePart(jpg[:40], "image/jpeg")}, 400, "corrupt_image", ""},
		}
		for _, tt := range tests {
			resp, raw := s.upload(t, owner.AccessToken, tt.parts...)
			t.Run(tt.name, func(t *testing.T) {
				checkError(t, resp, raw, tt.wantStatus, tt.wantCode, tt.wantField)
			})
		}

		// Not multipart, or no token.
		resp, raw := s.do(t, request{method: http.MethodPost, path: "/v1/images", token: owner.AccessToken, body: `{"purpose":"room"}`})
		checkError(t, resp, raw, http.StatusUnsupportedMediaType, "unsupported_media_type", "")
		resp, raw = s.do(t, request{method: http.MethodPost, path: "/v1/images", token: owner.AccessToken,
			body: "--x\r\nbroken", contentType: "multipart/form-data; boundary=x"})
		checkError(t, resp, raw, http.StatusBadRequest, "invalid", "")
		body, ct := multipartBody(t, purposePart("room"), filePart(jpg, "image/jpeg"))
		resp, raw = s.do(t, request{method: http.MethodPost, path: "/v1/images", body: body, contentType: ct})
		checkError(t, resp, raw, http.StatusUnauthorized, "unauthorized", "")

		// Every other route keeps the small body limit.
		resp, raw = s.do(t, request{method: http.MethodPost, path: "/v1/auth/signup",
			body: signupBody("big@example.com", strings.Repeat("n", 2*testBodyLimit))})
		checkError(t, resp, raw, http.StatusRequestEntityTooLarge, "too_large", "")

		// Nothing of it was kept.
		checkNothingStored(t, bdb, e.storeDir)
	})
}

// TestImageUploadUnrecorded: when the row cannot be written (the owner is
// gone), the object stored before it is deleted again.
func TestImageUploadUnrecorded(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s := newServer(t, e, nil, nil)
		m := s.signup(t, "gone@example.com", "gone")
		tok := s.login(t, "gone@example.com")
		if err := (db.Members{}).Delete(context.Background(), bdb, m.ID, clocktest.Now()); err != nil {
			t.Fatal(err)
		}
		resp, raw := s.upload(t, tok.AccessToken, purposePart("room"), filePart(testJPEG(t, 400, 400), "image/jpeg"))
		checkError(t, resp, raw, http.StatusUnauthorized, "token_revoked", "")
		if files := storedFiles(t, e.storeDir); len(files) != 0 {
			t.Errorf("stored files %v, want none", files)
		}
		if n := countImages(t, bdb); n != 0 {
			t.Errorf("%d images stored, want none", n)
		}
	})
}
