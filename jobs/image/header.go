// Package image checks and transforms uploaded images: the type sniffed from
// the bytes, dimensions read from the header before any decoding, pixel and
// size limits per purpose.
package image

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/moim/moim/domain"
)

// The accepted types, as media types.
const (
	TypeJPEG = "image/jpeg"
	TypePNG  = "image/png"
	TypeGIF  = "image/gif"
	TypeWebP = "image/webp"
)

// MaxHeaderBytes is the most Inspect reads from its reader. PNG, GIF and WebP
// give their size in the first 30 bytes; a JPEG's frame header comes after
// its metadata segments (EXIF with a thumbnail, ICC profile, XMP), which are
// skipped without being kept. A JPEG whose frame header is further in is
// refused rather than read to the end.
const MaxHeaderBytes = 256 << 10

// sniffLen is what Inspect looks at to tell the type: the longest fixed
// header (WebP's VP8 chunk, 30 bytes) and room for the brands of an ISO media
// file, to name HEIC or AVIF.
const sniffLen = 64

const accepted = "Accepted types: JPEG, PNG, GIF, WebP."

// Header is what an image's header says.
type Header struct {
	// Type is the sniffed media type, one of the Type constants.
	Type string
	// Width and Height are the stored dimensions, before orientation.
	Width, Height int
	// Orientation is the JPEG's EXIF orientation, 1 to 8; 1 when there is
	// none.
	Orientation int
}

// DisplaySize returns the dimensions as shown: EXIF orientations 5 to 8
// rotate by a quarter turn, so width and height swap.
func (h Header) DisplaySize() (width, height int) {
	if h.Orientation >= 5 && h.Orientation <= 8 {
		return h.Height, h.Width
	}
	return h.Width, h.Height
}

// Inspect sniffs the type of the image in r, checks it against the declared
// media type, reads its dimensions from the header and checks them against
// lim. It reads at most MaxHeaderBytes from r and decodes nothing, so the
// caller rewinds (or re-opens) r to store the image.
//
// An empty declared type, or application/octet-stream, declares nothing and
// is not checked; image/jpg is taken as image/jpeg. Refusals are
// *domain.Error with one of the image codes; a failing read is returned as
// is, wrapped.
func Inspect(r io.Reader, declared string, lim Limits) (Header, error) {
	lr := &io.LimitedReader{R: r, N: MaxHeaderBytes}
	hr := &headerReader{br: bufio.NewReaderSize(lr, 4096), lr: lr}
	head, err := hr.br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return Header{}, fmt.Errorf("read image header: %w", err)
	}
	typ, err := sniff(head)
	if err != nil {
		return Header{}, err
	}
	if err := checkDeclared(declared, typ); err != nil {
		return Header{}, err
	}
	var h Header
	switch typ {
	case TypeJPEG:
		h, err = readJPEG(hr)
	case TypePNG:
		h, err = parsePNG(head)
	case TypeGIF:
		h, err = parseGIF(head)
	case TypeWebP:
		h, err = parseWebP(head)
	}
	if err != nil {
		return Header{}, err
	}
	if err := lim.check(h); err != nil {
		return Header{}, err
	}
	return h, nil
}

// InspectBytes is Inspect over the first bytes of a file.
func InspectBytes(header []byte, declared string, lim Limits) (Header, error) {
	return Inspect(bytes.NewReader(header), declared, lim)
}

// signature is a type's magic bytes; '?' in it matches any byte.
type signature struct {
	typ   string
	magic string
}

var signatures = []signature{
	// Only the SOI marker: image/jpeg reads a JPEG whatever follows it.
	{TypeJPEG, "\xff\xd8"},
	{TypePNG, "\x89PNG\r\n\x1a\n"},
	{TypeGIF, "GIF87a"},
	{TypeGIF, "GIF89a"},
	{TypeWebP, "RIFF????WEBP"},
}

func (s signature) match(b []byte) bool {
	if len(b) > len(s.magic) {
		b = b[:len(s.magic)]
	}
	for i, c := range b {
		if s.magic[i] != '?' && s.magic[i] != c {
			return false
		}
	}
	return true
}

// sniff tells the type from the first bytes. A file that stops inside an
// accepted type's signature is corrupt (truncated), not of another type.
func sniff(head []byte) (string, error) {
	if len(head) == 0 {
		return "", corrupt("The file is empty.")
	}
	for _, s := range signatures {
		if s.match(head) {
			if len(head) < len(s.magic) {
				return "", truncated()
			}
			return s.typ, nil
		}
	}
	if name := isoMediaType(head); name != "" {
		return "", domain.Errorf(domain.EUNSUPPORTEDTYPE, "%s images are not accepted. %s", name, accepted)
	}
	return "", domain.Errorf(domain.EUNSUPPORTEDTYPE, "The file is not an accepted image. %s", accepted)
}

// isoMediaType names HEIC and AVIF files (ISO base media files whose ftyp
// box lists their brand), so the refusal can say what was sent: phones save
// photos as HEIC by default.
func isoMediaType(head []byte) string {
	if len(head) < 12 || string(head[4:8]) != "ftyp" {
		return ""
	}
	end := min(int(binary.BigEndian.Uint32(head)), len(head))
	var brands []string
	for i := 8; i+4 <= end; i += 4 {
		if i != 12 { // bytes 12-15 are the minor version, not a brand
			brands = append(brands, string(head[i:i+4]))
		}
	}
	name := ""
	for _, b := range brands {
		switch b {
		case "avif", "avis":
			return "AVIF"
		case "heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs":
			name = "HEIC"
		case "mif1", "msf1":
			if name == "" {
				name = "HEIF"
			}
		}
	}
	return name
}

// checkDeclared refuses a declared media type that disagrees with the bytes.
func checkDeclared(declared, sniffed string) error {
	declared = strings.TrimSpace(declared)
	if declared == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil {
		return domain.Errorf(domain.ETYPEMISMATCH, "The declared type %q is not a media type; the file is %s.", declared, sniffed)
	}
	switch mt {
	case "application/octet-stream":
		// What clients send when they do not know; it claims nothing.
		return nil
	case "image/jpg":
		// Named after the file extension by some clients; it can only mean JPEG.
		mt = TypeJPEG
	}
	if mt != sniffed {
		return domain.Errorf(domain.ETYPEMISMATCH, "The file was declared as %s but is %s.", mt, sniffed)
	}
	return nil
}

func corrupt(msg string) error { return domain.Errorf(domain.ECORRUPTIMAGE, "%s", msg) }

func truncated() error { return corrupt("The image is truncated: its header ends early.") }

// checkDims refuses dimensions no decoder makes an image of.
func checkDims(h Header, format string) (Header, error) {
	if h.Width <= 0 || h.Height <= 0 {
		return Header{}, corrupt(fmt.Sprintf("The %s header gives no width or height.", format))
	}
	return h, nil
}

// parsePNG reads the IHDR chunk, which the PNG spec puts first.
func parsePNG(b []byte) (Header, error) {
	if len(b) < 24 {
		return Header{}, truncated()
	}
	if binary.BigEndian.Uint32(b[8:]) != 13 || string(b[12:16]) != "IHDR" {
		return Header{}, corrupt("The PNG does not start with its header chunk.")
	}
	w, h := binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])
	if w > 1<<31-1 || h > 1<<31-1 { // the PNG spec's bound
		return Header{}, corrupt("The PNG header gives an impossible size.")
	}
	return checkDims(Header{Type: TypePNG, Width: int(w), Height: int(h), Orientation: 1}, "PNG")
}

// parseGIF reads the logical screen descriptor.
func parseGIF(b []byte) (Header, error) {
	if len(b) < 10 {
		return Header{}, truncated()
	}
	w, h := binary.LittleEndian.Uint16(b[6:]), binary.LittleEndian.Uint16(b[8:])
	return checkDims(Header{Type: TypeGIF, Width: int(w), Height: int(h), Orientation: 1}, "GIF")
}

// parseWebP reads the first chunk, which is the image itself for simple
// files (VP8 lossy, VP8L lossless) or the extended header (VP8X) with the
// canvas size.
func parseWebP(b []byte) (Header, error) {
	if len(b) < 20 {
		return Header{}, truncated()
	}
	fourcc, d := string(b[12:16]), b[20:]
	h := Header{Type: TypeWebP, Orientation: 1}
	switch fourcc {
	case "VP8 ":
		// A 3-byte frame tag (bit 0 clear on a key frame), the start code,
		// then 14-bit width and height, each with 2 bits of scaling above.
		if len(d) < 10 {
			return Header{}, truncated()
		}
		if d[0]&1 != 0 || string(d[3:6]) != "\x9d\x01\x2a" {
			return Header{}, corrupt("The WebP image does not start with a key frame.")
		}
		h.Width = int(binary.LittleEndian.Uint16(d[6:]) & 0x3fff)
		h.Height = int(binary.LittleEndian.Uint16(d[8:]) & 0x3fff)
	case "VP8L":
		// A signature byte, then 14 bits of width-1, 14 of height-1, an
		// alpha bit and a 3-bit version that must be 0.
		if len(d) < 5 {
			return Header{}, truncated()
		}
		bits := binary.LittleEndian.Uint32(d[1:])
		if d[0] != 0x2f || bits>>29 != 0 {
			return Header{}, corrupt("The lossless WebP header is invalid.")
		}
		h.Width = int(bits&0x3fff) + 1
		h.Height = int(bits>>14&0x3fff) + 1
	case "VP8X":
		// Flags and 3 reserved bytes, then the canvas width-1 and height-1
		// as 24-bit little-endian numbers.
		if len(d) < 10 {
			return Header{}, truncated()
		}
		h.Width = int(uint32(d[4])|uint32(d[5])<<8|uint32(d[6])<<16) + 1
		h.Height = int(uint32(d[7])|uint32(d[8])<<8|uint32(d[9])<<16) + 1
	default:
		return Header{}, corrupt("The WebP file does not start with an image chunk.")
	}
	return checkDims(h, "WebP")
}

// headerReader reads a JPEG's segments within MaxHeaderBytes.
type headerReader struct {
	br *bufio.Reader
	lr *io.LimitedReader
}

// fail tells a truncated file from one whose header is beyond the bound, and
// passes other read errors (a dropped connection, a body over its limit) on.
func (r *headerReader) fail(err error) error {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("read image header: %w", err)
	}
	if r.lr.N == 0 {
		return corrupt(fmt.Sprintf("The JPEG's size is not within its first %d KiB: its metadata is too large.", MaxHeaderBytes>>10))
	}
	return truncated()
}

func (r *headerReader) byte() (byte, error) {
	c, err := r.br.ReadByte()
	if err != nil {
		return 0, r.fail(err)
	}
	return c, nil
}

func (r *headerReader) full(b []byte) error {
	if _, err := io.ReadFull(r.br, b); err != nil {
		return r.fail(err)
	}
	return nil
}

func (r *headerReader) skip(n int) error {
	if _, err := r.br.Discard(n); err != nil {
		return r.fail(err)
	}
	return nil
}

// isExif tells whether the n-byte APP1 segment ahead is EXIF, so other APP1
// segments (XMP) are skipped rather than read. A short read is left for the
// caller's skip to report.
func (r *headerReader) isExif(n int) bool {
	id, err := r.br.Peek(len(exifID))
	return err == nil && n >= len(exifID) && string(id) == exifID
}

const exifID = "Exif\x00\x00"

// JPEG markers (ITU T.81 table B.1).
const (
	markerSOF0  = 0xc0 // baseline
	markerSOF1  = 0xc1 // extended sequential, Huffman
	markerSOF2  = 0xc2 // progressive, Huffman
	markerDHT   = 0xc4
	markerJPG   = 0xc8
	markerDAC   = 0xcc
	markerSOF15 = 0xcf
	markerRST0  = 0xd0
	markerRST7  = 0xd7
	markerEOI   = 0xd9
	markerSOS   = 0xda
	markerAPP1  = 0xe1
)

// readJPEG walks the segments up to the frame header (SOFn), skipping each
// by its length and reading only the EXIF segment, for the orientation. It
// accepts what image/jpeg does (stray bytes between segments, fill bytes),
// so a file the decoder reads is never refused here.
func readJPEG(r *headerReader) (Header, error) {
	h := Header{Type: TypeJPEG, Orientation: 1}
	if err := r.skip(2); err != nil { // SOI, already sniffed
		return Header{}, err
	}
	var buf [5]byte
	for {
		c, err := r.byte()
		if err != nil {
			return Header{}, err
		}
		if c != 0xff {
			continue // stray data, ignored as libjpeg and image/jpeg do
		}
		m, err := r.byte()
		if err != nil {
			return Header{}, err
		}
		for m == 0xff {
			if m, err = r.byte(); err != nil {
				return Header{}, err
			}
		}
		switch {
		case m == 0: // a stuffed zero: stray data too
			continue
		case m >= markerRST0 && m <= markerRST7: // no length
			continue
		case m == markerEOI || m == markerSOS:
			return Header{}, corrupt("The JPEG has no frame header before its image data.")
		}
		if err := r.full(buf[:2]); err != nil {
			return Header{}, err
		}
		n := int(binary.BigEndian.Uint16(buf[:])) - 2
		if n < 0 {
			return Header{}, corrupt("The JPEG has a segment with an invalid length.")
		}
		switch {
		case m >= markerSOF0 && m <= markerSOF15 && m != markerDHT && m != markerJPG && m != markerDAC:
			if m > markerSOF2 {
				// Lossless, hierarchical and arithmetic-coded JPEGs: few
				// programs write them and the decoder cannot make variants.
				return Header{}, domain.Errorf(domain.EUNSUPPORTEDTYPE,
					"Only baseline and progressive JPEGs are accepted. %s", accepted)
			}
			if n < len(buf) {
				return Header{}, corrupt("The JPEG frame header is too short.")
			}
			// Precision, then height and width.
			if err := r.full(buf[:]); err != nil {
				return Header{}, err
			}
			h.Height = int(binary.BigEndian.Uint16(buf[1:]))
			h.Width = int(binary.BigEndian.Uint16(buf[3:]))
			return checkDims(h, "JPEG")
		case m < markerSOF0:
			return Header{}, corrupt("The JPEG has an unknown marker.")
		case m == markerAPP1 && h.Orientation == 1 && r.isExif(n):
			seg := make([]byte, n) // at most 64 KiB, the segment length's bound
			if err := r.full(seg); err != nil {
				return Header{}, err
			}
			if o := exifOrientation(seg); o != 0 {
				h.Orientation = o
			}
		default:
			if err := r.skip(n); err != nil {
				return Header{}, err
			}
		}
	}
}

// exifOrientation returns the orientation tag of IFD0 in an APP1 segment, or
// 0 when the segment is not EXIF or has no valid orientation.
func exifOrientation(seg []byte) int {
	t, ok := bytes.CutPrefix(seg, []byte(exifID))
	if !ok || len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	off := uint64(bo.Uint32(t[4:]))
	if off+2 > uint64(len(t)) {
		return 0
	}
	count := int(bo.Uint16(t[off:]))
	entries := t[off+2:]
	for i := 0; i < count && len(entries) >= 12; i++ {
		e := entries[:12]
		entries = entries[12:]
		const tagOrientation, typeShort = 0x0112, 3
		if bo.Uint16(e) != tagOrientation {
			continue
		}
		if bo.Uint16(e[2:]) != typeShort || bo.Uint32(e[4:]) != 1 {
			return 0
		}
		if o := int(bo.Uint16(e[8:])); o >= 1 && o <= 8 {
			return o
		}
		return 0
	}
	return 0
}
