package image_test

import (
	"bytes"
	"encoding/binary"
	stdimage "image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

// Sample images for the tests: real encoder output for JPEG, PNG and GIF,
// hand-made first chunks for WebP (the standard library has no encoder).

func pngBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, stdimage.NewGray(stdimage.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, stdimage.NewGray(stdimage.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gifBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, stdimage.NewPaletted(stdimage.Rect(0, 0, w, h), color.Palette{color.Black}), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeader is a PNG cut after its IHDR chunk: all a decompression bomb needs
// to claim its size.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
	b = binary.BigEndian.AppendUint32(b, w)
	b = binary.BigEndian.AppendUint32(b, h)
	return append(b, 8, 0, 0, 0, 0, 0, 0, 0, 0) // 8-bit gray, then a CRC
}

// withSegment inserts a JPEG segment right after the SOI marker.
func withSegment(jpg []byte, marker byte, payload []byte) []byte {
	seg := []byte{0xff, marker}
	seg = binary.BigEndian.AppendUint16(seg, uint16(len(payload)+2))
	seg = append(seg, payload...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// exif is an APP1 payload whose IFD0 holds an orientation tag after another
// tag, in the given byte order.
func exif(bo byteOrder, orientation uint16) []byte {
	b := []byte("Exif\x00\x00")
	if bo == byteOrder(binary.LittleEndian) {
		b = append(b, "II"...)
	} else {
		b = append(b, "MM"...)
	}
	b = bo.AppendUint16(b, 42)
	b = bo.AppendUint32(b, 8) // IFD0 right after the TIFF header
	b = bo.AppendUint16(b, 2)
	// ImageDescription (ASCII), then Orientation (SHORT, count 1).
	b = bo.AppendUint16(b, 0x010e)
	b = bo.AppendUint16(b, 2)
	b = bo.AppendUint32(b, 4)
	b = append(b, "abc\x00"...)
	b = bo.AppendUint16(b, 0x0112)
	b = bo.AppendUint16(b, 3)
	b = bo.AppendUint32(b, 1)
	b = bo.AppendUint16(b, orientation)
	b = bo.AppendUint16(b, 0)
	return bo.AppendUint32(b, 0) // no next IFD
}

// riff wraps one chunk in a WebP RIFF container.
func riff(fourcc string, data []byte) []byte {
	chunk := append([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	chunk = append(chunk, data...)
	b := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(chunk)))...)
	b = append(b, "WEBP"...)
	return append(b, chunk...)
}

// webpVP8 is a lossy WebP's key frame header: frame tag, start code, 14-bit
// width and height (scale bits left 0).
func webpVP8(w, h uint16) []byte {
	d := []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}
	d = binary.LittleEndian.AppendUint16(d, w)
	d = binary.LittleEndian.AppendUint16(d, h)
	return riff("VP8 ", d)
}

// webpVP8L is a lossless WebP's header: signature, then 14 bits each of
// width-1 and height-1, the alpha bit and a zero version.
func webpVP8L(w, h uint32) []byte {
	bits := (w - 1) | (h-1)<<14
	return riff("VP8L", binary.LittleEndian.AppendUint32([]byte{0x2f}, bits))
}

// webpVP8X is an extended WebP's header: flags, 3 reserved bytes, then the
// canvas width-1 and height-1 as 24-bit numbers.
func webpVP8X(w, h uint32) []byte {
	d := []byte{0, 0, 0, 0}
	d = append(d, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	d = append(d, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	return riff("VP8X", d)
}

// ISO media headers as phones write them.
var (
	heicHeader = []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic\x00\x00\x00\x00meta")
	avifHeader = []byte("\x00\x00\x00\x20ftypavif\x00\x00\x00\x00avifmif1miafMA1B\x00\x00\x00\x00meta")
	mp4Header  = []byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2\x00\x00\x00\x08free")
)
