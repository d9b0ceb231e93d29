package domain

import (
	"fmt"
	"time"
)

// ImageStatus is where an uploaded image stands.
type ImageStatus int

// The image states. Stored numbers: only append.
const (
	// ImageUploading: a pre-signed upload was handed out and its object
	// has not been checked yet.
	ImageUploading ImageStatus = iota + 1
	// ImageProcessing: the original is stored and checked; a worker makes
	// the variants. Until then every variant serves the original.
	ImageProcessing
	// ImageReady: every variant is stored.
	ImageReady
	// ImageFailed: the original could not be decoded; FailureReason says
	// why.
	ImageFailed
)

var imageStatusNames = map[ImageStatus]string{
	ImageUploading:  "UPLOADING",
	ImageProcessing: "PROCESSING",
	ImageReady:      "READY",
	ImageFailed:     "FAILED",
}

func (s ImageStatus) String() string {
	if n, ok := imageStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("ImageStatus(%d)", int(s))
}

// Valid reports whether s is one of the states.
func (s ImageStatus) Valid() bool {
	_, ok := imageStatusNames[s]
	return ok
}

// MarshalText writes the wire name.
func (s ImageStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ImagePurpose is what an image is uploaded for; each purpose has its own
// minimum size.
type ImagePurpose int

// The purposes. Stored numbers: only append.
const (
	ImagePurposeRoom ImagePurpose = iota + 1
	ImagePurposeAvatar
	ImagePurposeVerification
)

var imagePurposeNames = map[ImagePurpose]string{
	ImagePurposeRoom:         "room",
	ImagePurposeAvatar:       "avatar",
	ImagePurposeVerification: "verification",
}

func (p ImagePurpose) String() string {
	if n, ok := imagePurposeNames[p]; ok {
		return n
	}
	return fmt.Sprintf("ImagePurpose(%d)", int(p))
}

// MarshalText writes the wire name.
func (p ImagePurpose) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Valid reports whether p is one of the purposes.
func (p ImagePurpose) Valid() bool {
	_, ok := imagePurposeNames[p]
	return ok
}

// ParseImagePurpose returns the purpose with the given wire name; an
// unknown one is an EINVALID error on field "purpose".
func ParseImagePurpose(s string) (ImagePurpose, error) {
	for p, n := range imagePurposeNames {
		if n == s {
			return p, nil
		}
	}
	return 0, FieldErrorf(EINVALID, "purpose", "Unknown image purpose %q; use room, avatar or verification.", s)
}

// The variants a worker makes of every image: widths 384 (lists) and 758
// (detail pages), aspect kept and never upscaled, and a 380×380 centre
// crop (thumbnails). The names are part of object keys and of the API's
// "urls", so they never change.
const (
	ImageVariantW384  = "w384"
	ImageVariantW758  = "w758"
	ImageVariantThumb = "c380"
	// ImageOriginal is the uploaded file as received.
	ImageOriginal = "original"
)

// ImageVariants lists the variants in the order they are shown.
func ImageVariants() []string {
	return []string{ImageVariantW384, ImageVariantW758, ImageVariantThumb}
}

// Image is an uploaded image: its original, the variants made of it, and
// what its header said.
type Image struct {
	ID          string // opaque public id; also the object keys' id
	OwnerID     string // the uploader's public member id
	Purpose     ImagePurpose
	Status      ImageStatus
	ContentType string // sniffed from the bytes
	Width       int    // as shown: after the EXIF orientation
	Height      int
	Bytes       int64 // the original's size
	// Variants names the variants stored so far (ImageVariants once
	// READY).
	Variants      []string
	FailureReason string // FAILED only
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// HasVariant reports whether variant v is stored.
func (i *Image) HasVariant(v string) bool {
	for _, have := range i.Variants {
		if have == v {
			return true
		}
	}
	return false
}

// RoomImagesMax is how many photos a room shows.
const RoomImagesMax = 3

// CheckAttach says whether member (a public id) may attach img as a photo
// of purpose: only their own image, uploaded for that purpose, stored and
// checked (PROCESSING or READY). Errors name field, the request's.
func (i *Image) CheckAttach(member string, purpose ImagePurpose, field string) error {
	switch {
	case i.OwnerID != member:
		return FieldErrorf(EFORBIDDEN, field, "Image %s is not yours; attach only images you uploaded.", i.ID)
	case i.Purpose != purpose:
		return FieldErrorf(EINVALID, field, "Image %s was uploaded for %s, not %s.", i.ID, i.Purpose, purpose)
	case i.Status != ImageProcessing && i.Status != ImageReady:
		return FieldErrorf(EINVALID, field, "Image %s is %s; only an image that is PROCESSING or READY can be attached.", i.ID, i.Status)
	}
	return nil
}
