package image_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/image"
)

// anySize accepts every size up to the default pixel limit.
var anySize = image.Limits{MinWidth: 1, MinHeight: 1}

func TestInspect(t *testing.T) {
	t.Parallel()
	room, err := image.LimitsFor(image.PurposeRoom)
	if err != nil {
		t.Fatal(err)
	}
	jpg := jpegBytes(t, 500, 380)
	tests := []struct {
		name     string
		data     []byte
		declared string
		limits   image.Limits
		want     image.Header
		wantCode string
		// wantMessage is part of the refusal's message.
		wantMessage string
	}{
		{name: "png", data: pngBytes(t, 380, 400), declared: "image/png", limits: room,
			want: image.Header{Type: image.TypePNG, Width: 380, Height: 400, Orientation: 1}},
		{name: "jpeg", data: jpg, declared: "image/jpeg", limits: room,
			want: image.Header{Type: image.TypeJPEG, Width: 500, Height: 380, Orientation: 1}},
		{name: "gif", data: gifBytes(t, 380, 380), declared: "image/gif", limits: room,
			want: image.Header{Type: image.TypeGIF, Width: 380, Height: 380, Orientation: 1}},
		{name: "webp lossy", data: webpVP8(640, 480), declared: "image/webp", limits: room,
			want: image.Header{Type: image.TypeWebP, Width: 640, Height: 480, Orientation: 1}},
		{name: "webp lossless", data: webpVP8L(16384, 381), declared: "image/webp", limits: room,
			want: image.Header{Type: image.TypeWebP, Width: 16384, Height: 381, Orientation: 1}},
		{name: "webp extended", data: webpVP8X(0x010203, 400), declared: "image/webp", limits: room,
			want: image.Header{Type: image.TypeWebP, Width: 0x010203, Height: 400, Orientation: 1}},
		{name: "webp extended largest canvas", data: webpVP8X(1<<24, 1), limits: image.Limits{MaxPixels: 1 << 30},
			want: image.Header{Type: image.TypeWebP, Width: 1 << 24, Height: 1, Orientation: 1}},

		// The declared type.
		{name: "nothing declared", data: jpg, limits: room,
			want: image.Header{Type: image.TypeJPEG, Width: 500, Height: 380, Orientation: 1}},
		{name: "octet-stream declares nothing", data: jpg, declared: "application/octet-stream", limits: room,
			want: image.Header{Type: image.TypeJPEG, Width: 500, Height: 380, Orientation: 1}},
		{name: "image/jpg is jpeg", data: jpg, declared: "image/jpg", limits: room,
			want: image.Header{Type: image.TypeJPEG, Width: 500, Height: 380, Orientation: 1}},
		{name: "declared with parameters and case", data: jpg, declared: " Image/JPEG; q=1", limits: room,
			want: image.Header{Type: image.TypeJPEG, Width: 500, Height: 380, Orientation: 1}},
		{name: "declared png is jpeg", data: jpg, declared: "image/png", limits: room,
			wantCode: domain.ETYPEMISMATCH, wantMessage: "declared as image/png but is image/jpeg"},
		{name: "declared heic is jpeg", data: jpg, declared: "image/heic", limits: room, wantCode: domain.ETYPEMISMATCH},
		{name: "declared nonsense", data: jpg, declared: "jpeg please", limits: room, wantCode: domain.ETYPEMISMATCH},

		// Types refused.
		{name: "text", data: []byte("hello, this is not an image\n"), limits: room,
			wantCode: domain.EUNSUPPORTEDTYPE, wantMessage: "Accepted types: JPEG, PNG, GIF, WebP."},
		{name: "html declared as png", data: []byte("<!doctype html><img src=x>"), declared: "image/png", limits: room,
			wantCode: domain.EUNSUPPORTEDTYPE},
		{name: "heic", data: heicHeader, declared: "image/heic", limits: room,
			wantCode: domain.EUNSUPPORTEDTYPE, wantMessage: "HEIC images are not accepted. Accepted types: JPEG, PNG, GIF, WebP."},
		{name: "avif", data: avifHeader, limits: room,
			wantCode: domain.EUNSUPPORTEDTYPE, wantMessage: "AVIF images are not accepted."},
		{name: "mp4", data: mp4Header, limits: room,
			wantCode: domain.EUNSUPPORTEDTYPE, wantMessage: "The file is not an accepted image."},
		{name: "wav", data: []byte("RIFF\x24\x00\x00\x00WAVEfmt "), limits: room, wantCode: domain.EUNSUPPORTEDTYPE},
		{name: "arithmetic-coded jpeg", data: withSOF(t, jpg, 0xc9), limits: room,
			wantCode: domain.EUNSUPPORTEDTYPE, wantMessage: "baseline and progressive"},
		{name: "lossless jpeg", data: withSOF(t, jpg, 0xc3), limits: room, wantCode: domain.EUNSUPPORTEDTYPE},
		{name: "extended sequential jpeg", data: withSOF(t, jpg, 0xc1), limits: room,
			want: image.Header{Type: image.TypeJPEG, Width: 500, Height: 380, Orientation: 1}},

		// Sizes.
		{name: "bomb", data: pngHeader(60000, 60000), limits: room,
			wantCode: domain.ETOOMANYPIXELS, wantMessage: "60000×60000 pixels; at most 50 million pixels"},
		{name: "zero limits take the default", data: pngHeader(10000, 5001), limits: image.Limits{},
			wantCode: domain.ETOOMANYPIXELS},
		{name: "at the default limit", data: pngHeader(10000, 5000), limits: image.Limits{},
			want: image.Header{Type: image.TypePNG, Width: 10000, Height: 5000, Orientation: 1}},
		{name: "webp bomb", data: webpVP8X(1<<24, 1<<24), limits: room, wantCode: domain.ETOOMANYPIXELS},
		{name: "gif over a small limit", data: gifBytes(t, 401, 400), limits: image.Limits{MaxPixels: 400 * 400},
			wantCode: domain.ETOOMANYPIXELS, wantMessage: "at most 160000 pixels"},
		{name: "too narrow", data: pngBytes(t, 379, 1000), limits: room,
			wantCode: domain.EIMAGETOOSMALL, wantMessage: "379×1000 pixels; at least 380×380"},
		{name: "too low", data: webpVP8L(1000, 379), limits: room, wantCode: domain.EIMAGETOOSMALL},

		// EXIF orientation decides the size as shown.
		{name: "exif rotated, big enough", data: withSegment(jpegBytes(t, 600, 380), 0xe1, exif(binary.BigEndian, 6)), limits: room,
			want: image.Header{Type: image.TypeJPEG, Width: 600, Height: 380, Orientation: 6}},
		{name: "exif rotated turns too small", data: withSegment(jpegBytes(t, 379, 600), 0xe1, exif(binary.LittleEndian, 8)),
			limits: image.Limits{MinWidth: 379, MinHeight: 600}, wantCode: domain.EIMAGETOOSMALL, wantMessage: "600×379 pixels"},
		{name: "exif mirrored keeps the size", data: withSegment(jpegBytes(t, 379, 600), 0xe1, exif(binary.LittleEndian, 2)),
			limits: image.Limits{MinWidth: 379, MinHeight: 600},
			want:   image.Header{Type: image.TypeJPEG, Width: 379, Height: 600, Orientation: 2}},
		{name: "exif orientation out of range", data: withSegment(jpg, 0xe1, exif(binary.BigEndian, 9)), limits: room,
			want: image.Header{Type: image.TypeJPEG, Width: 500, Height: 380, Orientation: 1}},
		{name: "xmp is not exif", data: withSegment(jpg, 0xe1, []byte("http://ns.adobe.com/xap/1.0/\x00<x/>")), limits: room,
			want: image.Header{Type: image.TypeJPEG, Width: 500, Height: 380, Orientation: 1}},

		// Corrupt headers.
		{name: "empty", data: nil, limits: room, wantCode: domain.ECORRUPTIMAGE, wantMessage: "empty"},
		{name: "png without ihdr", data: append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT"), make([]byte, 13)...),
			limits: room, wantCode: domain.ECORRUPTIMAGE},
		{name: "png zero width", data: pngHeader(0, 500), limits: room, wantCode: domain.ECORRUPTIMAGE},
		{name: "png width over 2^31-1", data: pngHeader(1<<31, 500), limits: room, wantCode: domain.ECORRUPTIMAGE},
		{name: "gif zero height", data: []byte("GIF89a\x10\x00\x00\x00\x00\x00\x00;"), limits: room, wantCode: domain.ECORRUPTIMAGE},
		{name: "webp inter frame", data: riff("VP8 ", []byte{0x11, 0x02, 0x00, 0x9d, 0x01, 0x2a, 1, 2, 1, 2}), limits: room,
			wantCode: domain.ECORRUPTIMAGE},
		{name: "webp lossless version 1", data: riff("VP8L", []byte{0x2f, 0xff, 0xff, 0xff, 0x20}), limits: room,
			wantCode: domain.ECORRUPTIMAGE},
		{name: "webp starting with metadata", data: riff("ICCP", make([]byte, 16)), limits: room, wantCode: domain.ECORRUPTIMAGE},
		{name: "jpeg scan before frame", data: []byte("\xff\xd8\xff\xda\x00\x02\xff\xd9"), limits: room,
			wantCode: domain.ECORRUPTIMAGE, wantMessage: "no frame header"},
		{name: "jpeg segment length 1", data: []byte("\xff\xd8\xff\xe0\x00\x01\x00\x00\x00\x00"), limits: room,
			wantCode: domain.ECORRUPTIMAGE},
		{name: "jpeg zero height (DNL)", data: withSOFSize(t, jpg, 0, 500), limits: room, wantCode: domain.ECORRUPTIMAGE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := image.InspectBytes(tt.data, tt.declared, tt.limits)
			if code := domain.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("code = %q (%v), want %q", code, err, tt.wantCode)
			}
			if !strings.Contains(domain.ErrorMessage(err), tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", domain.ErrorMessage(err), tt.wantMessage)
			}
			if got != tt.want {
				t.Errorf("header = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// sofOffset finds the frame header of an encoded JPEG.
func sofOffset(t testing.TB, jpg []byte) int {
	t.Helper()
	i := bytes.Index(jpg, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatal("no SOF0 in the encoded JPEG")
	}
	return i
}

// withSOF changes an encoded JPEG's frame type.
func withSOF(t testing.TB, jpg []byte, marker byte) []byte {
	t.Helper()
	out := bytes.Clone(jpg)
	out[sofOffset(t, out)+1] = marker
	return out
}

// withSOFSize changes the size an encoded JPEG's frame header gives.
func withSOFSize(t testing.TB, jpg []byte, h, w uint16) []byte {
	t.Helper()
	out := bytes.Clone(jpg)
	i := sofOffset(t, out)
	binary.BigEndian.PutUint16(out[i+5:], h)
	binary.BigEndian.PutUint16(out[i+7:], w)
	return out
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// endless is a reader that never ends, like a bomb's compressed pixels.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

func TestInspectReadsOnlyTheHeader(t *testing.T) {
	t.Parallel()
	r := &countingReader{r: io.MultiReader(bytes.NewReader(pngHeader(60000, 60000)), endless{})}
	_, err := image.Inspect(r, "image/png", anySize)
	if code := domain.ErrorCode(err); code != domain.ETOOMANYPIXELS {
		t.Fatalf("code = %q (%v), want %q", code, err, domain.ETOOMANYPIXELS)
	}
	if r.n > 4096 {
		t.Errorf("read %d bytes of a PNG to learn its size, want at most one buffer (4096)", r.n)
	}
}

// app is a JPEG segment payload of n bytes that is not EXIF.
func app(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }

func TestInspectJPEGMetadataBound(t *testing.T) {
	t.Parallel()
	jpg := withSegment(jpegBytes(t, 400, 400), 0xe1, exif(binary.BigEndian, 6))
	// Metadata segments are at most 64 KiB each; stack them before the EXIF.
	within, beyond := jpg, jpg
	for range 3 {
		within = withSegment(within, 0xe2, app(65000))
	}
	for range 4 {
		beyond = withSegment(beyond, 0xed, app(65533))
	}
	if sofOffset(t, within) >= image.MaxHeaderBytes || sofOffset(t, beyond) < image.MaxHeaderBytes {
		t.Fatal("samples do not straddle the bound")
	}

	r := &countingReader{r: bytes.NewReader(within)}
	got, err := image.Inspect(r, "", anySize)
	if err != nil {
		t.Fatalf("frame header within the bound: %v", err)
	}
	if want := (image.Header{Type: image.TypeJPEG, Width: 400, Height: 400, Orientation: 6}); got != want {
		t.Errorf("header = %+v, want %+v", got, want)
	}

	r = &countingReader{r: io.MultiReader(bytes.NewReader(beyond), endless{})}
	_, err = image.Inspect(r, "", anySize)
	if code := domain.ErrorCode(err); code != domain.ECORRUPTIMAGE || !strings.Contains(err.Error(), "first 256 KiB") {
		t.Errorf("frame header beyond the bound: %v, want %s about the first 256 KiB", err, domain.ECORRUPTIMAGE)
	}
	if r.n > image.MaxHeaderBytes {
		t.Errorf("read %d bytes, more than MaxHeaderBytes (%d)", r.n, image.MaxHeaderBytes)
	}
}

// validHeaders are samples with how much of each Inspect needs: a file cut
// anywhere before that is truncated.
func validHeaders(t *testing.T) map[string]struct {
	data []byte
	need int
} {
	jpg := withSegment(withSegment(jpegBytes(t, 400, 400), 0xe1, exif(binary.LittleEndian, 6)), 0xfe, []byte("comment"))
	return map[string]struct {
		data []byte
		need int
	}{
		"png":           {pngBytes(t, 400, 400), 24},
		"gif":           {gifBytes(t, 400, 400), 10},
		"jpeg":          {jpg, sofOffset(t, jpg) + 9},
		"webp lossy":    {webpVP8(400, 400), 30},
		"webp lossless": {webpVP8L(400, 400), 25},
		"webp extended": {webpVP8X(400, 400), 30},
	}
}

func TestInspectTruncated(t *testing.T) {
	t.Parallel()
	for name, s := range validHeaders(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := image.InspectBytes(s.data[:s.need], "", anySize); err != nil {
				t.Fatalf("the first %d bytes: %v", s.need, err)
			}
			for n := range s.need {
				_, err := image.InspectBytes(s.data[:n], "", anySize)
				if code := domain.ErrorCode(err); code != domain.ECORRUPTIMAGE {
					t.Errorf("cut at %d of %d: code = %q (%v), want %q", n, s.need, code, err, domain.ECORRUPTIMAGE)
				}
			}
		})
	}
}

var errDropped = errors.New("connection dropped")

// failing reads some bytes, then fails as an upload cut off does.
type failing struct{ r io.Reader }

func (f failing) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errDropped
	}
	return n, err
}

func TestInspectPassesReadErrorsOn(t *testing.T) {
	t.Parallel()
	jpg := jpegBytes(t, 400, 400)
	for _, n := range []int{0, 10, sofOffset(t, jpg)} {
		_, err := image.Inspect(failing{bytes.NewReader(jpg[:n])}, "", anySize)
		if !errors.Is(err, errDropped) || domain.ErrorCode(err) != domain.EINTERNAL {
			t.Errorf("cut at %d: %v, want the read error, not a refusal", n, err)
		}
	}
}

func TestLimitsFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		purpose  image.Purpose
		min      int
		wantCode string
	}{
		{image.PurposeRoom, 380, ""},
		{image.PurposeVerification, 380, ""},
		{image.PurposeAvatar, 128, ""},
		{"banner", 0, domain.EINVALID},
	}
	for _, tt := range tests {
		lim, err := image.LimitsFor(tt.purpose)
		if code := domain.ErrorCode(err); code != tt.wantCode {
			t.Errorf("%s: code = %q, want %q", tt.purpose, code, tt.wantCode)
		}
		if lim.MinWidth != tt.min || lim.MinHeight != tt.min {
			t.Errorf("%s: minimum %d×%d, want %d×%d", tt.purpose, lim.MinWidth, lim.MinHeight, tt.min, tt.min)
		}
		if err == nil && lim.MaxPixels != image.DefaultMaxPixels {
			t.Errorf("%s: MaxPixels = %d, want %d", tt.purpose, lim.MaxPixels, image.DefaultMaxPixels)
		}
	}
}
