package domain_test

import (
	"testing"

	"github.com/moim/moim/domain"
)

func TestImagePurposeParse(t *testing.T) {
	for _, p := range []domain.ImagePurpose{domain.ImagePurposeRoom, domain.ImagePurposeAvatar, domain.ImagePurposeVerification} {
		got, err := domain.ParseImagePurpose(p.String())
		if err != nil || got != p || !got.Valid() {
			t.Errorf("ParseImagePurpose(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	for _, s := range []string{"", "Room", "banner", "room "} {
		_, err := domain.ParseImagePurpose(s)
		if domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("ParseImagePurpose(%q) = %v, want invalid", s, err)
		}
	}
	if domain.ImagePurpose(0).Valid() || domain.ImagePurpose(4).Valid() {
		t.Error("purposes 0 and 4 are valid, want not")
	}
}

func TestImageStatusText(t *testing.T) {
	for s, want := range map[domain.ImageStatus]string{
		domain.ImageUploading: "UPLOADING", domain.ImageProcessing: "PROCESSING",
		domain.ImageReady: "READY", domain.ImageFailed: "FAILED", 7: "ImageStatus(7)",
	} {
		b, _ := s.MarshalText()
		if string(b) != want || s.String() != want || s.Valid() == (s == 7) {
			t.Errorf("%d: text %q, valid %v; want %q", int(s), b, s.Valid(), want)
		}
	}
}
