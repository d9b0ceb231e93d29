package image_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	stdimage "image"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"testing/iotest"

	"golang.org/x/image/webp" // also registers WebP with image.DecodeConfig

	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/image"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz/")

// fuzzSeeds are the inputs FuzzInspect starts from, by corpus file name:
// one of each accepted layout, each refused type, bombs and broken headers.
func fuzzSeeds(t testing.TB) map[string][]byte {
	jpg := jpegBytes(t, 16, 12)
	seeds := map[string][]byte{
		"png":                 pngBytes(t, 16, 12),
		"png-bomb":            pngHeader(60000, 60000),
		"gif":                 gifBytes(t, 16, 12),
		"jpeg":                jpg,
		"jpeg-exif-ii":        withSegment(jpg, 0xe1, exif(binary.LittleEndian, 6)),
		"jpeg-exif-mm":        withSegment(withSegment(jpg, 0xfe, []byte("comment")), 0xe1, exif(binary.BigEndian, 8)),
		"jpeg-arithmetic":     withSOF(t, jpg, 0xc9),
		"jpeg-scan-first":     []byte("\xff\xd8\xff\xda\x00\x02\xff\xd9"),
		"webp-vp8":            webpVP8(16, 12),
		"webp-vp8l":           webpVP8L(16, 12),
		"webp-vp8x":           webpVP8X(0x010203, 12),
		"webp-bomb":           webpVP8X(1<<24, 1<<24),
		"webp-iccp-first":     riff("ICCP", make([]byte, 16)),
		"heic":                heicHeader,
		"avif":                avifHeader,
		"mp4":                 mp4Header,
		"text":                []byte("hello, this is not an image\n"),
		"empty":               {},
		"truncated-png":       pngBytes(t, 16, 12)[:20],
		"truncated-jpeg-exif": withSegment(jpg, 0xe1, exif(binary.LittleEndian, 6))[:30],
	}
	return seeds
}

// fuzzLimits accepts any size the decoder could handle.
var fuzzLimits = image.Limits{MinWidth: 1, MinHeight: 1}

var imageCodes = map[string]bool{
	domain.EUNSUPPORTEDTYPE: true, domain.ETYPEMISMATCH: true, domain.ETOOMANYPIXELS: true,
	domain.EIMAGETOOSMALL: true, domain.ECORRUPTIMAGE: true,
}

// FuzzInspect feeds Inspect truncated, hostile and random files. Whatever it
// gets, it must not panic, must refuse with an image code, must answer the
// same however the bytes arrive, must accept only sizes within the limits,
// and must accept every header the decoders read (and agree on its size).
func FuzzInspect(f *testing.F) {
	for _, data := range fuzzSeeds(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := image.InspectBytes(data, "", fuzzLimits)
		code := domain.ErrorCode(err)

		slow, slowErr := image.Inspect(iotest.OneByteReader(bytes.NewReader(data)), "", fuzzLimits)
		if slow != h || domain.ErrorCode(slowErr) != code || domain.ErrorMessage(slowErr) != domain.ErrorMessage(err) {
			t.Fatalf("one byte at a time: %+v, %v; all at once: %+v, %v", slow, slowErr, h, err)
		}

		if err != nil {
			if !imageCodes[code] || code == domain.ETYPEMISMATCH {
				t.Fatalf("refused with %q (%v), want an image code", code, err)
			}
			if h != (image.Header{}) {
				t.Fatalf("refused but returned %+v", h)
			}
		} else {
			switch h.Type {
			case image.TypeJPEG, image.TypePNG, image.TypeGIF, image.TypeWebP:
			default:
				t.Fatalf("accepted type %q", h.Type)
			}
			if h.Width <= 0 || h.Height <= 0 || int64(h.Width)*int64(h.Height) > image.DefaultMaxPixels {
				t.Fatalf("accepted %d×%d", h.Width, h.Height)
			}
			if h.Orientation < 1 || h.Orientation > 8 {
				t.Fatalf("orientation %d", h.Orientation)
			}
			if _, err := image.InspectBytes(data, h.Type, fuzzLimits); err != nil {
				t.Fatalf("declared as what it is (%s): %v", h.Type, err)
			}
			other := image.TypePNG
			if h.Type == image.TypePNG {
				other = image.TypeGIF
			}
			if _, err := image.InspectBytes(data, other, fuzzLimits); domain.ErrorCode(err) != domain.ETYPEMISMATCH {
				t.Fatalf("%s declared as %s: %v, want %s", h.Type, other, err, domain.ETYPEMISMATCH)
			}
		}

		cfg, format, derr := stdimage.DecodeConfig(bytes.NewReader(data))
		if derr != nil || cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > image.DefaultMaxPixels {
			return
		}
		if format == "webp" && !webpImageFirst(data) {
			return // x/image/webp skips chunks the WebP spec forbids before the image
		}
		if err != nil {
			t.Fatalf("the %s decoder reads %d×%d; Inspect refuses: %v", format, cfg.Width, cfg.Height, err)
		}
		if h.Width != cfg.Width || h.Height != cfg.Height || h.Type != "image/"+format {
			t.Fatalf("the decoder reads %s %d×%d; Inspect %+v", format, cfg.Width, cfg.Height, h)
		}
	})
}

// FuzzVariants feeds the decode path the same kinds of files. Whatever it
// gets, it must not panic; a refusal must be permanent (the bytes cannot
// fail to read), and an accepted file gives the three variants, each
// decodable as its own type and no larger than its target.
func FuzzVariants(f *testing.F) {
	for _, data := range fuzzSeeds(f) {
		f.Add(data)
	}
	// A small pixel limit keeps each run's memory small; Inspect enforces it
	// before decoding, so larger inputs are refused, not decoded.
	opts := image.Options{MaxPixels: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := image.Variants(context.Background(), bytes.NewReader(data), opts)
		if err != nil {
			if !image.Permanent(err) {
				t.Fatalf("refused with a transient error: %v", err)
			}
			return
		}
		if len(out) != 3 {
			t.Fatalf("%d variants, want 3", len(out))
		}
		limit := map[string][2]int{image.VariantW384: {384, 0}, image.VariantW758: {758, 0}, image.VariantC380: {380, 380}}
		for _, v := range out {
			cfg, format, err := stdimage.DecodeConfig(bytes.NewReader(v.Bytes))
			if err != nil || "image/"+format != v.ContentType || cfg.Width != v.Width || cfg.Height != v.Height {
				t.Fatalf("variant %s: %s %d×%d (%v); says %s %d×%d", v.Name, format, cfg.Width, cfg.Height, err, v.ContentType, v.Width, v.Height)
			}
			l, ok := limit[v.Name]
			if !ok || v.Width <= 0 || v.Height <= 0 || v.Width > l[0] || (l[1] > 0 && v.Height > l[1]) {
				t.Fatalf("variant %s is %d×%d", v.Name, v.Width, v.Height)
			}
		}
	})
}

func webpImageFirst(data []byte) bool {
	if len(data) < 16 {
		return false
	}
	switch string(data[12:16]) {
	case "VP8 ", "VP8L", "VP8X":
		return true
	}
	return false
}

// TestFuzzSeedCorpus keeps fuzzSeeds in testdata/fuzz/FuzzInspect and
// FuzzVariants,
// so plain `go test` (and CI) runs the committed corpus; -update rewrites it.
// Crashers the fuzzer finds are committed there under their own names.
func TestFuzzSeedCorpus(t *testing.T) {
	for _, target := range []string{"FuzzInspect", "FuzzVariants"} {
		checkSeedCorpus(t, filepath.Join("testdata", "fuzz", target))
	}
}

func checkSeedCorpus(t *testing.T, dir string) {
	seeds := fuzzSeeds(t)
	names := make([]string, 0, len(seeds))
	for name := range seeds {
		names = append(names, name)
	}
	sort.Strings(names)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seeds[name])
		path := filepath.Join(dir, "seed-"+name)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		// Only presence is checked: encoder output may change with Go, and
		// the seeds need only be valid, not current.
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s is missing; run go test -run TestFuzzSeedCorpus -update ./jobs/image/", path)
		}
	}
}

// TestWebPSamplesDecode checks the hand-made WebP headers against
// x/image/webp, so the tests' idea of the layout is not only Inspect's.
func TestWebPSamplesDecode(t *testing.T) {
	t.Parallel()
	for name, data := range map[string][]byte{
		"vp8":          webpVP8(640, 480),
		"vp8l":         webpVP8L(16384, 381),
		"vp8x":         webpVP8X(0x010203, 400),
		"vp8x largest": webpVP8X(1<<24, 1),
	} {
		cfg, err := webp.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		h, err := image.InspectBytes(data, image.TypeWebP, image.Limits{MaxPixels: 1 << 30})
		if err != nil || h.Width != cfg.Width || h.Height != cfg.Height {
			t.Errorf("%s: decoder reads %d×%d; Inspect %+v, %v", name, cfg.Width, cfg.Height, h, err)
		}
	}
}
