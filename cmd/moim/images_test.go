package main

import (
	"bytes"
	"image"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAllInOneImageUpload: the all-in-one process opens the configured
// local store, takes an upload into it and serves the original at the
// signed URL it answers with, relative to the API.
func TestAllInOneImageUpload(t *testing.T) {
	t.Parallel()
	objects := filepath.Join(t.TempDir(), "objects")
	banner, _ := startMoim(t, map[string]string{
		"MOIM_DATABASE_URL":      "sqlite:" + filepath.Join(t.TempDir(), "moim.db"),
		"MOIM_HTTP_ADDR":         "127.0.0.1:0",
		"MOIM_LOG_LEVEL":         "error",
		"MOIM_STORAGE_LOCAL_DIR": objects,
	})
	base := banner["API"]
	resp := doJSON(t, http.MethodPost, base+"/v1/auth/signup", "",
		`{"email":"mina@example.com","password":"correct horse battery","nickname":"mina"}`)
	resp.Body.Close()
	token := login(t, base, "mina@example.com", "correct horse battery")

	var photo bytes.Buffer
	if err := jpeg.Encode(&photo, image.NewGray(image.Rect(0, 0, 400, 400)), nil); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("purpose", "room")
	fw, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Disposition": {`form-data; name="file"; filename="photo.jpg"`},
		"Content-Type":        {"image/jpeg"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(photo.Bytes())
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/images", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upload: status = %d (body %s)", resp.StatusCode, b)
	}
	var img struct {
		ID     string            `json:"id"`
		Status string            `json:"status"`
		URLs   map[string]string `json:"urls"`
	}
	decodeBody(t, resp, &img)
	if img.Status != "PROCESSING" {
		t.Errorf("status = %q, want PROCESSING", img.Status)
	}
	if _, err := os.Stat(filepath.Join(objects, img.ID[:2], img.ID, "original")); err != nil {
		t.Errorf("the original is not in the configured directory: %v", err)
	}
	resp = doJSON(t, http.MethodGet, base+img.URLs["original"], "", "")
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" || !bytes.Equal(got, photo.Bytes()) {
		t.Errorf("GET %s: status %d, type %q, %d bytes; want the original", img.URLs["original"], resp.StatusCode,
			resp.Header.Get("Content-Type"), len(got))
	}

	// The worker in the same process makes the variants.
	deadline := time.Now().Add(30 * time.Second)
	for img.Status != "READY" {
		if time.Now().After(deadline) || img.Status == "FAILED" {
			t.Fatalf("image still %s; want READY", img.Status)
		}
		time.Sleep(50 * time.Millisecond)
		decodeBody(t, doJSON(t, http.MethodGet, base+"/v1/images/"+img.ID, token, ""), &img)
	}
	resp = doJSON(t, http.MethodGet, base+img.URLs["w384"], "", "")
	cfg, err := jpeg.DecodeConfig(resp.Body)
	resp.Body.Close()
	if err != nil || cfg.Width != 384 || cfg.Height != 384 {
		t.Errorf("w384 once READY: %dx%d (%v), want 384x384", cfg.Width, cfg.Height, err)
	}
}
