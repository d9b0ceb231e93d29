package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/jobs/storage"
)

// uploadBody answers POST /v1/uploads.
type uploadBody struct {
	Image  imageBody `json:"image"`
	Upload struct {
		Method    string            `json:"method"`
		URL       string            `json:"url"`
		Headers   map[string]string `json:"headers"`
		ExpiresAt string            `json:"expires_at"`
	} `json:"upload"`
}

// presign asks for an upload and returns the answer.
func (s *testServer) presign(t testing.TB, token, purpose, contentType string, size int) uploadBody {
	t.Helper()
	resp, raw := s.do(t, request{method: http.MethodPost, path: "/v1/uploads", token: token,
		body: fmt.Sprintf(`{"purpose":%q,"content_type":%q,"bytes":%d}`, purpose, contentType, size)})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads: status %d (body %s)", resp.StatusCode, raw)
	}
	var u uploadBody
	if err := json.Unmarshal(raw, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// put sends body to a pre-signed URL with a plain HTTP client, as a client
// would: the given headers, Content-Length from the body unless length is
// set (>= 0).
func (s *testServer) put(t testing.TB, rawURL string, headers map[string]string, body []byte, length int64) (*http.Response, []byte) {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), http.MethodPut, s.url+rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	if length >= 0 {
		r.ContentLength = length
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

func (s *testServer) complete(t testing.TB, token, id string) (*http.Response, []byte) {
	t.Helper()
	return s.do(t, request{method: http.MethodPost, path: "/v1/images/" + id + "/complete", token: token})
}

func TestPresignedUpload(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		clock := &roomClock{now: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
		dir := t.TempDir()
		store := newStore(t, dir, clock.Now)
		s := newServer(t, e, func(d *httpapi.Deps) {
			d.NowFunc = clock.Now
			d.Storage = store
		}, nil)
		s.signup(t, "owner@example.com", "owner")
		owner := s.login(t, "owner@example.com")
		s.signup(t, "other@example.com", "other")
		other := s.login(t, "other@example.com")

		photo := testJPEG(t, 800, 600)
		u := s.presign(t, owner.AccessToken, "room", "image/jpeg", len(photo))
		if u.Image.Status != "UPLOADING" || u.Image.Purpose != "room" || u.Image.ContentType != "image/jpeg" ||
			u.Image.Bytes != int64(len(photo)) || len(u.Image.URLs) != 0 {
			t.Errorf("image = %+v", u.Image)
		}
		if u.Upload.Method != "PUT" || !strings.HasPrefix(u.Upload.URL, "/v1/objects/") ||
			u.Upload.Headers["Content-Type"] != "image/jpeg" || u.Upload.ExpiresAt != "2026-12-07T09:15:00Z" {
			t.Errorf("upload = %+v", u.Upload)
		}
		if n := countImages(t, bdb); n != 1 {
			t.Errorf("%d images, want the one UPLOADING", n)
		}

		// Completing before the PUT, or someone else's upload.
		resp, raw := s.complete(t, owner.AccessToken, u.Image.ID)
		checkError(t, resp, raw, http.StatusConflict, "upload_missing", "")
		resp, raw = s.complete(t, other.AccessToken, u.Image.ID)
		checkError(t, resp, raw, http.StatusForbidden, "forbidden", "")

		// Tampered (another size), the wrong length, the wrong type.
		tampered, _ := url.Parse(u.Upload.URL)
		q := tampered.Query()
		q.Set("size", fmt.Sprint(len(photo)+1))
		tampered.RawQuery = q.Encode()
		resp, raw = s.put(t, tampered.String(), u.Upload.Headers, append(photo, 0), -1)
		checkError(t, resp, raw, http.StatusForbidden, "forbidden", "")
		resp, raw = s.put(t, u.Upload.URL, u.Upload.Headers, photo[:100], -1)
		checkError(t, resp, raw, http.StatusBadRequest, "invalid", "")
		resp, raw = s.put(t, u.Upload.URL, map[string]string{"Content-Type": "image/png"}, photo, -1)
		checkError(t, resp, raw, http.StatusForbidden, "forbidden", "")
		if files := storedFiles(t, dir); len(files) != 0 {
			t.Fatalf("stored %v after refused PUTs", files)
		}

		// The PUT, then a second one to the same URL.
		resp, raw = s.put(t, u.Upload.URL, u.Upload.Headers, photo, -1)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT: status %d (body %s)", resp.StatusCode, raw)
		}
		resp, raw = s.put(t, u.Upload.URL, u.Upload.Headers, photo, -1)
		checkError(t, resp, raw, http.StatusConflict, "already_uploaded", "")

		resp, raw = s.complete(t, other.AccessToken, u.Image.ID)
		checkError(t, resp, raw, http.StatusForbidden, "forbidden", "")
		resp, raw = s.complete(t, owner.AccessToken, u.Image.ID)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("complete: status %d (body %s)", resp.StatusCode, raw)
		}
		var img imageBody
		decodeStrict(t, raw, &img)
		if img.ID != u.Image.ID || img.Status != "PROCESSING" || img.Width != 800 || img.Height != 600 ||
			img.Bytes != int64(len(photo)) || len(img.URLs) != 4 {
			t.Errorf("completed = %+v", img)
		}
		if tasks := imageTasks(t, bdb); len(tasks) != 1 || tasks[0].ImageID != img.ID {
			t.Errorf("image tasks = %+v, want one for %s", tasks, img.ID)
		}
		resp, raw = s.fetch(t, http.MethodGet, img.URLs["original"], nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(raw, photo) {
			t.Errorf("GET original: status %d, %d bytes", resp.StatusCode, len(raw))
		}
		// Completed: neither a second completion nor a PUT changes it.
		resp, raw = s.complete(t, owner.AccessToken, u.Image.ID)
		checkError(t, resp, raw, http.StatusConflict, "already_completed", "")
		resp, raw = s.put(t, u.Upload.URL, u.Upload.Headers, photo, -1)
		checkError(t, resp, raw, http.StatusConflict, "already_uploaded", "")
		if tasks := imageTasks(t, bdb); len(tasks) != 1 {
			t.Errorf("image tasks = %+v, want still one", tasks)
		}

		// An expired URL; completing is allowed for half an hour more.
		avatar := testPNG(t, 200, 200)
		late := s.presign(t, owner.AccessToken, "avatar", "image/png", len(avatar))
		if resp, raw := s.put(t, late.Upload.URL, late.Upload.Headers, avatar, -1); resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT: status %d (body %s)", resp.StatusCode, raw)
		}
		expired := s.presign(t, owner.AccessToken, "avatar", "image/png", len(avatar))
		clock.Advance(15*time.Minute + time.Second)
		resp, raw = s.put(t, expired.Upload.URL, expired.Upload.Headers, avatar, -1)
		checkError(t, resp, raw, http.StatusForbidden, "forbidden", "")
		clock.Advance(30 * time.Minute)
		resp, raw = s.complete(t, owner.AccessToken, late.Image.ID)
		checkError(t, resp, raw, http.StatusConflict, "upload_expired", "")
		clock.Advance(-time.Second)
		if resp, raw := s.complete(t, owner.AccessToken, late.Image.ID); resp.StatusCode != http.StatusAccepted {
			t.Errorf("complete within the grace: status %d (body %s)", resp.StatusCode, raw)
		}
	})
}

func TestPresignedUploadRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s := newServer(t, e, nil, nil)
		s.signup(t, "owner@example.com", "owner")
		owner := s.login(t, "owner@example.com")

		for _, tc := range []struct {
			name, body, code, field string
			status                  int
		}{
			{"unknown purpose", `{"purpose":"banner","content_type":"image/jpeg","bytes":10}`, "invalid", "purpose", 400},
			{"HEIC", `{"purpose":"room","content_type":"image/heic","bytes":10}`, "unsupported_type", "content_type", 415},
			{"no type", `{"purpose":"room","bytes":10}`, "unsupported_type", "content_type", 415},
			{"no bytes", `{"purpose":"room","content_type":"image/png"}`, "invalid", "bytes", 400},
			{"20 MB", `{"purpose":"room","content_type":"image/png","bytes":20971520}`, "too_large", "bytes", 413},
			{"unknown field", `{"purpose":"room","content_type":"image/png","bytes":10,"name":"x"}`, "invalid", "name", 400},
		} {
			resp, raw := s.do(t, request{method: http.MethodPost, path: "/v1/uploads", token: owner.AccessToken, body: tc.body})
			t.Run(tc.name, func(t *testing.T) { checkError(t, resp, raw, tc.status, tc.code, tc.field) })
		}
		resp, raw := s.do(t, request{method: http.MethodPost, path: "/v1/uploads",
			body: `{"purpose":"room","content_type":"image/png","bytes":10}`})
		checkError(t, resp, raw, http.StatusUnauthorized, "unauthorized", "")

		// Uploaded but refused on completion: nothing of it stays.
		text := []byte("just some text, not a photo\n")
		pngImg := testPNG(t, 800, 600)
		for _, tc := range []struct {
			name, declared, code string
			data                 []byte
			status               int
		}{
			{"text file", "image/jpeg", "unsupported_type", text, 415},
			{"PNG declared as JPEG", "image/jpeg", "type_mismatch", pngImg, 400},
			{"100x100 room photo", "image/jpeg", "image_too_small", testJPEG(t, 100, 100), 400},
			{"bomb", "image/png", "too_many_pixels", pngBomb(60000, 60000), 413},
		} {
			u := s.presign(t, owner.AccessToken, "room", tc.declared, len(tc.data))
			if resp, raw := s.put(t, u.Upload.URL, u.Upload.Headers, tc.data, -1); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: PUT status %d (body %s)", tc.name, resp.StatusCode, raw)
			}
			resp, raw := s.complete(t, owner.AccessToken, u.Image.ID)
			t.Run(tc.name, func(t *testing.T) { checkError(t, resp, raw, tc.status, tc.code, "") })
			resp, raw = s.complete(t, owner.AccessToken, u.Image.ID)
			t.Run(tc.name+" again", func(t *testing.T) { checkError(t, resp, raw, http.StatusNotFound, "not_found", "") })
			key, _ := storage.NewKey(u.Image.ID, "original")
			if _, err := e.store.Stat(context.Background(), key); err == nil {
				t.Errorf("%s: the refused object is still stored", tc.name)
			}
		}
		checkNothingStored(t, bdb, e.storeDir)
		// A PUT to the URL of a refused upload finds nothing to upload to.
		u := s.presign(t, owner.AccessToken, "room", "image/jpeg", len(text))
		s.put(t, u.Upload.URL, u.Upload.Headers, text, -1)
		s.complete(t, owner.AccessToken, u.Image.ID)
		resp, raw = s.put(t, u.Upload.URL, u.Upload.Headers, text, -1)
		checkError(t, resp, raw, http.StatusNotFound, "not_found", "")
	})
}
