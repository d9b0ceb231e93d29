package image_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	stdimage "image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"

	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/image"
)

func variants(t *testing.T, data []byte, opts image.Options) []image.Variant {
	t.Helper()
	vs, err := image.Variants(context.Background(), bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || vs[0].Name != image.VariantW384 || vs[1].Name != image.VariantW758 || vs[2].Name != image.VariantC380 {
		t.Fatalf("variants %v, want w384, w758, c380", names(vs))
	}
	return vs
}

func names(vs []image.Variant) []string {
	var n []string
	for _, v := range vs {
		n = append(n, v.Name)
	}
	return n
}

// decoded decodes v, checking that its bytes match its type and size.
func decoded(t *testing.T, v image.Variant) stdimage.Image {
	t.Helper()
	img, format, err := stdimage.Decode(bytes.NewReader(v.Bytes))
	if err != nil {
		t.Fatalf("%s: %v", v.Name, err)
	}
	if "image/"+format != v.ContentType {
		t.Errorf("%s: bytes are %s, content type %s", v.Name, format, v.ContentType)
	}
	if b := img.Bounds(); b.Dx() != v.Width || b.Dy() != v.Height {
		t.Errorf("%s: bytes are %v, variant says %d×%d", v.Name, b.Size(), v.Width, v.Height)
	}
	return img
}

func encodeJPEG(t testing.TB, img stdimage.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodePNG(t testing.TB, img stdimage.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestVariantsSizes(t *testing.T) {
	t.Parallel()
	type size struct{ w, h int }
	tests := []struct {
		name string
		data []byte
		want [3]size
	}{
		{"landscape", jpegBytes(t, 1000, 800), [3]size{{384, 307}, {758, 606}, {380, 380}}},
		{"portrait", jpegBytes(t, 800, 1000), [3]size{{384, 480}, {758, 948}, {380, 380}}},
		{"box-shrunk first", markedImage(t, 3040, 1600), [3]size{{384, 202}, {758, 399}, {380, 380}}},
		{"narrower than both widths", jpegBytes(t, 300, 500), [3]size{{300, 500}, {300, 500}, {300, 300}}},
		{"between the widths", pngBytes(t, 500, 390), [3]size{{384, 300}, {500, 390}, {380, 380}}},
		{"gif", gifBytes(t, 600, 400), [3]size{{384, 256}, {600, 400}, {380, 380}}},
		{"one pixel", pngBytes(t, 1, 1), [3]size{{1, 1}, {1, 1}, {1, 1}}},
		{"strip", pngBytes(t, 2000, 3), [3]size{{384, 1}, {758, 1}, {3, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for i, v := range variants(t, tt.data, image.Options{}) {
				decoded(t, v)
				if got := (size{v.Width, v.Height}); got != tt.want[i] {
					t.Errorf("%s is %v, want %v", v.Name, got, tt.want[i])
				}
				if v.ContentType != image.TypeJPEG {
					t.Errorf("%s is %s, want JPEG for an opaque source", v.Name, v.ContentType)
				}
			}
		})
	}
}

func TestVariantsOfWebP(t *testing.T) {
	t.Parallel()
	for file, want := range map[string]struct {
		typ      string
		w384     [2]int
		c380side int
	}{
		"blue-purple-pink.lossy.webp":       {image.TypeJPEG, [2]int{150, 100}, 100},
		"yellow_rose.lossy-with-alpha.webp": {image.TypePNG, [2]int{384, 289}, 301},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", "webp", file))
		if err != nil {
			t.Fatal(err)
		}
		vs := variants(t, data, image.Options{})
		for _, v := range vs {
			if decoded(t, v); v.ContentType != want.typ {
				t.Errorf("%s: %s is %s, want %s", file, v.Name, v.ContentType, want.typ)
			}
		}
		if got := [2]int{vs[0].Width, vs[0].Height}; got != want.w384 {
			t.Errorf("%s: w384 is %v, want %v", file, got, want.w384)
		}
		if vs[2].Width != want.c380side || vs[2].Height != want.c380side {
			t.Errorf("%s: c380 is %d×%d, want %d square", file, vs[2].Width, vs[2].Height, want.c380side)
		}
	}
}

// markedImage is a w×h JPEG, grey with a red block at the stored top-left
// corner and a green one at the top-right. Its planes are filled a row at a
// time, which keeps large ones quick under the race detector.
func markedImage(t testing.TB, w, h int) []byte {
	t.Helper()
	img := stdimage.NewYCbCr(stdimage.Rect(0, 0, w, h), stdimage.YCbCrSubsampleRatio420)
	ycc := func(r, g, b uint8) [3]byte { y, cb, cr := color.RGBToYCbCr(r, g, b); return [3]byte{y, cb, cr} }
	grey, red, green := ycc(128, 128, 128), ycc(255, 0, 0), ycc(0, 255, 0)
	row := func(line []byte, c int, marked bool) {
		fill := func(from, to int, v [3]byte) { copy(line[from:to], bytes.Repeat([]byte{v[c]}, to-from)) }
		fill(0, len(line), grey)
		if marked {
			fill(0, len(line)/4, red)
			fill(len(line)-len(line)/4, len(line), green)
		}
	}
	for y := range h {
		row(img.Y[y*img.YStride:][:w], 0, y < h/4)
	}
	cw, ch := (w+1)/2, (h+1)/2
	for y := range ch {
		row(img.Cb[y*img.CStride:][:cw], 1, 2*y < h/4)
		row(img.Cr[y*img.CStride:][:cw], 2, 2*y < h/4)
	}
	return encodeJPEG(t, img)
}

type corner int

const (
	topLeft corner = iota
	topRight
	bottomRight
	bottomLeft
)

// colourNear returns img's colour a little inside corner c.
func colourNear(img stdimage.Image, c corner) color.RGBA {
	b := img.Bounds()
	dx, dy := b.Dx()/16, b.Dy()/16
	x, y := b.Min.X+dx, b.Min.Y+dy
	if c == topRight || c == bottomRight {
		x = b.Max.X - 1 - dx
	}
	if c == bottomRight || c == bottomLeft {
		y = b.Max.Y - 1 - dy
	}
	r, g, bl, _ := img.At(x, y).RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}
}

func TestVariantsApplyEXIFOrientation(t *testing.T) {
	t.Parallel()
	// Where the stored top-left (red) and top-right (green) corners are
	// shown, per EXIF orientation.
	want := map[uint16][2]corner{
		1: {topLeft, topRight},
		2: {topRight, topLeft},
		3: {bottomRight, bottomLeft},
		4: {bottomLeft, bottomRight},
		5: {topLeft, bottomLeft},
		6: {topRight, bottomRight},
		7: {bottomRight, topRight},
		8: {bottomLeft, topLeft},
	}
	// 3040×1600 is box-shrunk first, 500×300 scaled for both widths and
	// 300×180 copied.
	for _, size := range [][2]int{{3040, 1600}, {500, 300}, {300, 180}} {
		jpg := markedImage(t, size[0], size[1])
		for o, corners := range want {
			if size[0] > 1000 && o != 6 {
				continue // the large one is slow under the race detector
			}
			data := withSegment(jpg, 0xe1, exif(binary.BigEndian, o))
			for _, v := range variants(t, data, image.Options{})[:2] {
				img := decoded(t, v)
				if wide := v.Width > v.Height; wide != (o < 5) {
					t.Errorf("%d×%d orientation %d: %s is %d×%d", size[0], size[1], o, v.Name, v.Width, v.Height)
				}
				if c := colourNear(img, corners[0]); c.R < 200 || c.G > 60 {
					t.Errorf("%d×%d orientation %d: %s corner %d is %v, want red", size[0], size[1], o, v.Name, corners[0], c)
				}
				if c := colourNear(img, corners[1]); c.G < 200 || c.R > 60 {
					t.Errorf("%d×%d orientation %d: %s corner %d is %v, want green", size[0], size[1], o, v.Name, corners[1], c)
				}
			}
		}
	}
}

func TestVariantsKeepTransparency(t *testing.T) {
	t.Parallel()
	pal := stdimage.NewPaletted(stdimage.Rect(0, 0, 500, 400), color.Palette{color.Transparent, color.White})
	pal.Pix[0] = 1
	var g bytes.Buffer
	if err := gif.Encode(&g, pal, nil); err != nil {
		t.Fatal(err)
	}
	for _, v := range variants(t, g.Bytes(), image.Options{}) {
		if decoded(t, v); v.ContentType != image.TypePNG {
			t.Errorf("gif: %s is %s, want PNG", v.Name, v.ContentType)
		}
	}
	// 2000×1000 is box-shrunk first, 800×600 is not.
	for _, size := range [][2]int{{800, 600}, {2000, 1000}} {
		for _, v := range variants(t, encodePNG(t, translucent(size[0], size[1])), image.Options{}) {
			img := decoded(t, v)
			if v.ContentType != image.TypePNG {
				t.Errorf("%v: %s is %s, want PNG", size, v.Name, v.ContentType)
			}
			b := img.Bounds()
			if c := color.NRGBAModel.Convert(img.At(b.Min.X+1, b.Min.Y+1)).(color.NRGBA); v.Name != image.VariantC380 && c.A != 0 {
				t.Errorf("%v: %s top left is %v, want transparent", size, v.Name, c)
			}
			c := color.NRGBAModel.Convert(img.At(b.Dx()/2, b.Dy()*3/4)).(color.NRGBA)
			if far(c.R, 200) || far(c.G, 100) || far(c.B, 50) || far(c.A, 128) {
				t.Errorf("%v: %s lower middle is %v, want {200 100 50 128}", size, v.Name, c)
			}
		}
	}
	// Alpha that is all opaque is no transparency.
	opaque := stdimage.NewNRGBA(stdimage.Rect(0, 0, 400, 400))
	for i := range opaque.Pix {
		opaque.Pix[i] = 255
	}
	for _, v := range variants(t, encodePNG(t, opaque), image.Options{}) {
		if v.ContentType != image.TypeJPEG {
			t.Errorf("opaque png: %s is %s, want JPEG", v.Name, v.ContentType)
		}
	}
}

// translucent is a w×h image whose top quarter is transparent and the rest
// half-transparent orange.
func translucent(w, h int) *stdimage.NRGBA {
	img := stdimage.NewNRGBA(stdimage.Rect(0, 0, w, h))
	px := bytes.Repeat([]byte{200, 100, 50, 128}, w*(h-h/4))
	copy(img.Pix[img.Stride*(h/4):], px)
	return img
}

// far reports whether v is more than 3 from want.
func far(v, want uint8) bool { return int(v) < int(want)-3 || int(v) > int(want)+3 }

func TestVariantsDeterministic(t *testing.T) {
	t.Parallel()
	src := photo(640, 480)
	a := variants(t, src, image.Options{})
	b := variants(t, src, image.Options{})
	for i := range a {
		if !bytes.Equal(a[i].Bytes, b[i].Bytes) {
			t.Errorf("%s differs between two runs", a[i].Name)
		}
	}
	low := variants(t, src, image.Options{Quality: 40})
	if len(low[1].Bytes) >= len(a[1].Bytes) {
		t.Errorf("quality 40 gives %d bytes, the default %d", len(low[1].Bytes), len(a[1].Bytes))
	}
}

func TestVariantsRefuseBrokenImages(t *testing.T) {
	t.Parallel()
	jpg := markedImage(t, 800, 600)
	pngData := pngBytes(t, 400, 400)
	tests := []struct {
		name string
		data []byte
		code string
	}{
		{"jpeg cut in half", jpg[:len(jpg)/2], domain.ECORRUPTIMAGE},
		{"jpeg cut after its header", jpg[:sofOffset(t, jpg)+40], domain.ECORRUPTIMAGE},
		{"png cut", pngData[:len(pngData)-30], domain.ECORRUPTIMAGE},
		{"png with garbage data", append(pngHeader(400, 400), bytes.Repeat([]byte{0xa5}, 4096)...), domain.ECORRUPTIMAGE},
		{"gif cut", gifBytes(t, 400, 400)[:40], domain.ECORRUPTIMAGE},
		{"text", []byte(strings.Repeat("not an image ", 10)), domain.EUNSUPPORTEDTYPE},
		{"bomb", pngHeader(100_000, 100_000), domain.ETOOMANYPIXELS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := image.Variants(context.Background(), bytes.NewReader(tt.data), image.Options{})
			if code := domain.ErrorCode(err); code != tt.code || !image.Permanent(err) {
				t.Fatalf("got %v (%s), want a permanent %s", err, code, tt.code)
			}
			if domain.ErrorMessage(err) == "" {
				t.Error("no reason to store")
			}
		})
	}
}

func TestVariantsReadErrorIsTransient(t *testing.T) {
	t.Parallel()
	jpg := markedImage(t, 800, 600)
	for _, n := range []int{10, len(jpg) / 2} {
		_, err := image.Variants(context.Background(), failing{bytes.NewReader(jpg[:n])}, image.Options{})
		if !errors.Is(err, errDropped) || image.Permanent(err) {
			t.Errorf("cut at %d: %v, want the read error, not a refusal", n, err)
		}
	}
}

func TestVariantsDecoderPanicFailsTheImage(t *testing.T) {
	t.Parallel()
	opts := image.WithDecoder(image.Options{}, func(io.Reader, string) (stdimage.Image, error) {
		var m map[string]int
		m["x"]++ // a nil map write panics
		return nil, nil
	})
	_, err := image.Variants(context.Background(), bytes.NewReader(jpegBytes(t, 400, 400)), opts)
	if domain.ErrorCode(err) != domain.ECORRUPTIMAGE || !image.Permanent(err) || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("got %v, want a permanent corrupt image naming the panic", err)
	}
}

func TestGateCapsConcurrentDecodes(t *testing.T) {
	t.Parallel()
	const size, uploads = 2, 12
	gate := image.NewGate(size)
	var active, peak atomic.Int32
	entered := make(chan struct{}, uploads)
	release := make(chan struct{})
	opts := image.WithDecoder(image.Options{Gate: gate}, func(r io.Reader, typ string) (stdimage.Image, error) {
		n := active.Add(1)
		defer active.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		entered <- struct{}{}
		<-release
		return png.Decode(r)
	})
	data := pngBytes(t, 400, 400)
	var wg sync.WaitGroup
	errs := make(chan error, uploads)
	for range uploads {
		wg.Go(func() {
			_, err := image.Variants(context.Background(), bytes.NewReader(data), opts)
			errs <- err
		})
	}
	// The gate lets size decodes in at once, then each ending lets another in.
	for range size {
		<-entered
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if p := peak.Load(); p > size {
		t.Errorf("%d decodes ran at once, gate allows %d", p, size)
	}
}

func TestGateWaitRespectsContext(t *testing.T) {
	t.Parallel()
	gate := image.NewGate(1)
	if err := gate.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := image.Variants(ctx, bytes.NewReader(pngBytes(t, 400, 400)), image.Options{Gate: gate})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || image.Permanent(err) {
		t.Errorf("got %v, want context.Canceled, not a refusal", err)
	}
	gate.Release()
	if err := gate.Acquire(context.Background()); err != nil {
		t.Errorf("the slot is not free after a cancelled wait: %v", err)
	}
}
