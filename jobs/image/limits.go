package image

import (
	"strconv"

	"github.com/moim/moim/domain"
)

// DefaultMaxPixels is the pixel limit when Limits leaves it zero: 50
// megapixels is above any phone camera's photo yet keeps a decoded RGBA image
// near 200 MB, so a tiny file claiming a huge canvas (a decompression bomb)
// is refused before decoding.
const DefaultMaxPixels = 50_000_000

// Limits bounds an upload's dimensions. The minimums apply to the image as
// shown, after its EXIF orientation.
type Limits struct {
	// MaxPixels is the largest width×height accepted; zero means
	// DefaultMaxPixels, so a zero Limits is never unbounded.
	MaxPixels int64
	MinWidth  int
	MinHeight int
}

// Purpose is what an upload is for; each has its own minimum size.
type Purpose string

// The purposes an image is uploaded for.
const (
	PurposeRoom         Purpose = "room"
	PurposeAvatar       Purpose = "avatar"
	PurposeVerification Purpose = "verification"
)

// LimitsFor returns the limits of an upload for p.
//
// Room photos need 380×380, greenmarket's minimum, since every room photo
// gets a 380×380 center-cropped thumbnail. Verification photos get the same
// thumbnail and must stay legible to the team checking them, so they need the
// same. Avatars are only ever shown small; 128×128 covers a 64-pixel avatar
// on a double-density screen while letting an already cropped profile
// picture through.
func LimitsFor(p Purpose) (Limits, error) {
	switch p {
	case PurposeRoom, PurposeVerification:
		return Limits{MaxPixels: DefaultMaxPixels, MinWidth: 380, MinHeight: 380}, nil
	case PurposeAvatar:
		return Limits{MaxPixels: DefaultMaxPixels, MinWidth: 128, MinHeight: 128}, nil
	default:
		return Limits{}, domain.Errorf(domain.EINVALID, "Unknown image purpose %q; use room, avatar or verification.", string(p))
	}
}

// check refuses h when it has too many pixels or is too small for l.
func (l Limits) check(h Header) error {
	maxPixels := l.MaxPixels
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	if int64(h.Width)*int64(h.Height) > maxPixels {
		return domain.Errorf(domain.ETOOMANYPIXELS, "The image is %d×%d pixels; at most %s pixels are accepted.",
			h.Width, h.Height, megapixels(maxPixels))
	}
	w, ht := h.DisplaySize()
	if w < l.MinWidth || ht < l.MinHeight {
		return domain.Errorf(domain.EIMAGETOOSMALL, "The image is %d×%d pixels; at least %d×%d are needed.",
			w, ht, l.MinWidth, l.MinHeight)
	}
	return nil
}

// megapixels writes n pixels for people: "50 million" rather than 50000000.
func megapixels(n int64) string {
	if n%1_000_000 == 0 {
		return strconv.FormatInt(n/1_000_000, 10) + " million"
	}
	return strconv.FormatInt(n, 10)
}
