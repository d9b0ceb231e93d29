package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	stdimage "image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"

	"github.com/moim/moim/domain"
)

// The variants made of every image: widths 384 (lists) and 758 (detail
// pages), and a 380×380 centre-cropped thumbnail.
const (
	VariantW384 = "w384"
	VariantW758 = "w758"
	VariantC380 = "c380"
)

// DefaultQuality is the JPEG quality of the variants when Options leaves it
// zero.
const DefaultQuality = 85

// Options tunes Variants.
type Options struct {
	// Quality is the JPEG quality, 1 to 100; zero means DefaultQuality.
	Quality int
	// MaxPixels is checked against the header before decoding; zero means
	// DefaultMaxPixels.
	MaxPixels int64
	// Gate, when set, caps the decodes running at once.
	Gate *Gate

	// decode replaces the decoders in tests.
	decode func(r io.Reader, typ string) (stdimage.Image, error)
}

// Variant is one encoded output of Variants.
type Variant struct {
	Name          string
	ContentType   string
	Width, Height int
	Bytes         []byte
}

// Variants decodes the image in r once, applies its EXIF orientation and
// returns the w384, w758 and c380 variants, in that order. Widths are never
// upscaled: a source narrower than a variant keeps its size, and the crop is
// at most the source's shorter side. Variants are JPEG, or PNG when the
// source has transparency. The same input gives the same bytes.
//
// Refusals of the image itself (unsupported, too many pixels, corrupt or
// truncated, a panicking decoder) are *domain.Error, for which Permanent
// reports true: retrying cannot help. Read failures and ctx's end are
// returned as they are.
//
// Memory: the decoded image (1.5 bytes a pixel for a typical JPEG, 4 for a
// PNG or a WebP with alpha, 1 for a GIF), a box-shrunk copy with a quarter
// of its pixels or fewer, and the resampler's rows over the copy;
// BenchmarkVariants12MP measures the peak.
func Variants(ctx context.Context, r io.Reader, opts Options) ([]Variant, error) {
	src := &sourceReader{r: r}
	var head bytes.Buffer
	h, err := Inspect(io.TeeReader(src, &head), "", Limits{MaxPixels: opts.MaxPixels})
	if err != nil {
		return nil, err
	}
	if opts.Gate != nil {
		if err := opts.Gate.Acquire(ctx); err != nil {
			return nil, err
		}
		defer opts.Gate.Release()
	}
	dec := opts.decode
	if dec == nil {
		dec = decode
	}
	img, err := decodeSafely(dec, io.MultiReader(&head, src), h.Type)
	if src.err != nil {
		return nil, fmt.Errorf("read image: %w", src.err)
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return makeVariants(ctx, img, h.Orientation, opts)
}

// Permanent reports whether err is a refusal of the image itself, which a
// retry cannot change; domain.ErrorMessage(err) is then the reason to store.
func Permanent(err error) bool {
	switch domain.ErrorCode(err) {
	case domain.EUNSUPPORTEDTYPE, domain.ETOOMANYPIXELS, domain.ECORRUPTIMAGE, domain.EIMAGETOOSMALL, domain.ETYPEMISMATCH:
		return true
	}
	return false
}

// sourceReader keeps the first read error of the source, so that a failing
// storage read is told apart from a corrupt image.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}
	return n, err
}

func decode(r io.Reader, typ string) (stdimage.Image, error) {
	switch typ {
	case TypeJPEG:
		return jpeg.Decode(r)
	case TypePNG:
		return png.Decode(r)
	case TypeGIF:
		return gif.Decode(r) // the first frame
	case TypeWebP:
		return webp.Decode(r)
	}
	return nil, domain.Errorf(domain.EUNSUPPORTEDTYPE, "The image type %s cannot be decoded. %s", typ, accepted)
}

// decodeSafely runs dec, turning its failure or panic into a corrupt-image
// error: hostile bytes must fail the image, never the worker.
func decodeSafely(dec func(io.Reader, string) (stdimage.Image, error), r io.Reader, typ string) (img stdimage.Image, err error) {
	defer func() {
		if p := recover(); p != nil {
			img = nil
			err = &domain.Error{Code: domain.ECORRUPTIMAGE, Message: "The image could not be decoded.",
				Err: fmt.Errorf("decoder panic: %v", p)}
		}
	}()
	img, err = dec(r, typ)
	var de *domain.Error
	switch {
	case err == nil:
		return img, nil
	case errors.As(err, &de):
		return nil, err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return nil, &domain.Error{Code: domain.ECORRUPTIMAGE, Message: "The image is truncated.", Err: err}
	default:
		return nil, &domain.Error{Code: domain.ECORRUPTIMAGE, Message: "The image could not be decoded: " + err.Error() + ".", Err: err}
	}
}

// makeVariants resizes img, stored with EXIF orientation o, into the
// variants. Scaling happens in stored orientation and only the small outputs
// are turned, so the full-size image is never copied.
func makeVariants(ctx context.Context, img stdimage.Image, o int, opts Options) ([]Variant, error) {
	quality := opts.Quality
	if quality <= 0 || quality > 100 {
		quality = DefaultQuality
	}
	opaque := isOpaque(img)
	sw, sh := img.Bounds().Dx(), img.Bounds().Dy()
	swap := o >= 5 && o <= 8
	dw, dh := sw, sh
	if swap {
		dw, dh = sh, sw
	}
	type plan struct {
		name   string
		w, h   int  // stored orientation
		square bool // centre crop
	}
	var plans []plan
	for _, v := range []struct {
		name  string
		width int
	}{{VariantW384, 384}, {VariantW758, 758}} {
		w, h := fitWidth(dw, dh, v.width)
		if swap {
			w, h = h, w
		}
		plans = append(plans, plan{name: v.name, w: w, h: h})
	}
	side := min(380, sw, sh)
	plans = append(plans, plan{name: VariantC380, w: side, h: side, square: true})

	// A large image is box-shrunk first by a whole factor that leaves the
	// smallest ratio at least prescaleMargin, so the kernel reads a fraction
	// of the pixels yet every variant is still resampled from more than it
	// needs.
	work := img
	ratio := min(float64(sw)/float64(plans[1].w), float64(sh)/float64(plans[1].h), float64(min(sw, sh))/float64(side))
	if k := int(ratio / prescaleMargin); k >= 2 {
		switch src := img.(type) {
		case *stdimage.YCbCr:
			work = shrinkYCbCr(src, k)
		case stdimage.RGBA64Image:
			work = shrinkRGBA64(src, k)
		}
	}
	wb := work.Bounds()

	out := make([]Variant, 0, len(plans))
	for _, p := range plans {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r := wb
		if p.square {
			s := min(wb.Dx(), wb.Dy())
			r = stdimage.Rect(0, 0, s, s).Add(wb.Min).Add(stdimage.Pt((wb.Dx()-s)/2, (wb.Dy()-s)/2))
		}
		dst := orient(scale(work, r, p.w, p.h), o)
		v := Variant{Name: p.name, Width: dst.Rect.Dx(), Height: dst.Rect.Dy()}
		var buf bytes.Buffer
		var err error
		if opaque {
			v.ContentType = TypeJPEG
			err = jpeg.Encode(&buf, dst, &jpeg.Options{Quality: quality})
		} else {
			v.ContentType = TypePNG
			err = png.Encode(&buf, dst)
		}
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", p.name, err)
		}
		v.Bytes = buf.Bytes()
		out = append(out, v)
	}
	return out, nil
}

// prescaleMargin is how many source pixels per output pixel the box
// pre-shrink leaves for the Catmull-Rom kernel at least. Measured on a 12 MP
// photo (BenchmarkVariants12MP), 1.3 lets a 4000-pixel JPEG shrink by 4:
// twice as fast and half the memory of a shrink by 2, and as close to
// vipsthumbnail (SSIM 0.992), which shrinks on load much the same way.
const prescaleMargin = 1.3

// fitWidth returns w×h scaled to width target, never up.
func fitWidth(w, h, target int) (int, int) {
	if w <= target {
		return w, h
	}
	return target, max(1, (h*target+w/2)/w)
}

// isOpaque reports whether img has no pixel with alpha below 255; an image
// type that cannot tell is taken to have transparency, which PNG keeps.
func isOpaque(img stdimage.Image) bool {
	o, ok := img.(interface{ Opaque() bool })
	return ok && o.Opaque()
}

// scale resamples the part r of src to w×h.
func scale(src stdimage.Image, r stdimage.Rectangle, w, h int) *stdimage.RGBA {
	dst := stdimage.NewRGBA(stdimage.Rect(0, 0, w, h))
	if r.Dx() == w && r.Dy() == h {
		draw.Draw(dst, dst.Rect, src, r.Min, draw.Src)
	} else {
		draw.CatmullRom.Scale(dst, dst.Rect, src, r, draw.Src, nil)
	}
	return dst
}

// shrinkYCbCr averages k×k blocks of src into a 4:4:4 image; averaging
// Y'CbCr is averaging the gamma-encoded RGB it stands for, since the
// conversion is affine. A remainder of fewer than k pixels at the right and
// bottom edges is dropped.
func shrinkYCbCr(src *stdimage.YCbCr, k int) *stdimage.YCbCr {
	b := src.Rect
	w, h := b.Dx()/k, b.Dy()/k
	dst := stdimage.NewYCbCr(stdimage.Rect(0, 0, w, h), stdimage.YCbCrSubsampleRatio444)
	// COffset is a row part plus a column part; taking them from tables
	// keeps its switch out of the inner loop.
	base := src.COffset(b.Min.X, b.Min.Y)
	ccol := make([]int, w*k)
	for x := range ccol {
		ccol[x] = src.COffset(b.Min.X+x, b.Min.Y) - base
	}
	n := k * k
	for y := range h {
		for x := range w {
			var ys, cbs, crs int
			for dy := range k {
				sy := b.Min.Y + y*k + dy
				yrow := src.Y[src.YOffset(b.Min.X+x*k, sy):][:k]
				crow := src.COffset(b.Min.X, sy)
				for dx, v := range yrow {
					ys += int(v)
					ci := crow + ccol[x*k+dx]
					cbs += int(src.Cb[ci])
					crs += int(src.Cr[ci])
				}
			}
			i := y*dst.YStride + x
			dst.Y[i] = uint8((ys + n/2) / n)
			dst.Cb[i] = uint8((cbs + n/2) / n)
			dst.Cr[i] = uint8((crs + n/2) / n)
		}
	}
	return dst
}

// shrinkRGBA64 averages k×k blocks of src's premultiplied colours, so that
// transparent pixels lend no colour to their neighbours. RGBA64At converts
// every image type without allocating.
func shrinkRGBA64(src stdimage.RGBA64Image, k int) *stdimage.RGBA {
	b := src.Bounds()
	w, h := b.Dx()/k, b.Dy()/k
	dst := stdimage.NewRGBA(stdimage.Rect(0, 0, w, h))
	n := uint32(k * k)
	for y := range h {
		for x := range w {
			var r, g, bl, a uint32
			for dy := range k {
				for dx := range k {
					c := src.RGBA64At(b.Min.X+x*k+dx, b.Min.Y+y*k+dy)
					r += uint32(c.R)
					g += uint32(c.G)
					bl += uint32(c.B)
					a += uint32(c.A)
				}
			}
			i := y*dst.Stride + 4*x
			dst.Pix[i] = uint8((r/n + 128) / 257)
			dst.Pix[i+1] = uint8((g/n + 128) / 257)
			dst.Pix[i+2] = uint8((bl/n + 128) / 257)
			dst.Pix[i+3] = uint8((a/n + 128) / 257)
		}
	}
	return dst
}

// orient turns src, stored with EXIF orientation o, the way it is shown.
func orient(src *stdimage.RGBA, o int) *stdimage.RGBA {
	if o < 2 || o > 8 {
		return src
	}
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := stdimage.NewRGBA(stdimage.Rect(0, 0, dw, dh))
	for y := range dh {
		for x := range dw {
			var sx, sy int
			switch o {
			case 2: // mirrored
				sx, sy = w-1-x, y
			case 3: // turned half
				sx, sy = w-1-x, h-1-y
			case 4: // flipped
				sx, sy = x, h-1-y
			case 5: // transposed
				sx, sy = y, x
			case 6: // needs a quarter turn clockwise
				sx, sy = y, h-1-x
			case 7: // transversed
				sx, sy = w-1-y, h-1-x
			case 8: // needs a quarter turn anticlockwise
				sx, sy = w-1-y, x
			}
			copy(dst.Pix[y*dst.Stride+4*x:][:4], src.Pix[sy*src.Stride+4*sx:])
		}
	}
	return dst
}
