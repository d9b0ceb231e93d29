package sms

import (
	"unicode/utf8"

	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/unicode/norm"

	"github.com/moim/moim/jobs/notify"
)

// The limits Korean carriers put on a message, in EUC-KR bytes.
const (
	MaxShortBytes   = 90   // SMS
	MaxLongBytes    = 2000 // LMS content
	MaxSubjectBytes = 40   // LMS subject
)

// replacement stands in for a character EUC-KR cannot carry: the carrier
// would reject the whole message over one emoji, so it goes out with a '?'.
const replacement = '?'

// Measure returns the EUC-KR byte length of s after replacing what EUC-KR
// cannot encode, which is what Prepare would send: ASCII counts 1, Hangul
// and other Korean characters 2, anything replaced 1.
func Measure(s string) int {
	_, n := encode(s, -1)
	return n
}

// Prepare replaces characters EUC-KR cannot carry (emoji, etc.) with '?'
// and decides the type: text of at most 90 bytes goes as an SMS with no
// subject; longer text goes as an LMS whose content is cut to 2,000 bytes
// and whose subject is cut to 40 bytes, both at a character boundary. It
// returns the type, subject and content to send.
func Prepare(subject, text string) (notify.SMSType, string, string) {
	content, n := encode(text, -1)
	if n <= MaxShortBytes {
		return notify.SMSShort, "", content
	}
	if n > MaxLongBytes {
		content, _ = encode(text, MaxLongBytes)
	}
	subject, _ = encode(subject, MaxSubjectBytes)
	return notify.SMSLong, subject, content
}

// encode returns s with every character EUC-KR cannot carry replaced by
// '?', cut after the last whole character that fits in limit bytes (not
// cut if limit < 0), and the EUC-KR length of the result.
//
// s is composed to NFC first: Hangul typed on some systems arrives as
// separate jamo, which EUC-KR cannot carry but whose composed syllables it
// can.
func encode(s string, limit int) (string, int) {
	s = norm.NFC.String(s)
	enc := korean.EUCKR.NewEncoder()
	out := make([]byte, 0, len(s))
	var buf [8]byte
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		char, width := s[i:i+size], 1
		i += size
		switch {
		case r < utf8.RuneSelf:
		case r == utf8.RuneError && size == 1:
			char = string(replacement)
		default:
			enc.Reset()
			m, _, err := enc.Transform(buf[:], []byte(char), true)
			if err != nil {
				char = string(replacement)
			} else {
				width = m
			}
		}
		if limit >= 0 && n+width > limit {
			break
		}
		out = append(out, char...)
		n += width
	}
	return string(out), n
}
