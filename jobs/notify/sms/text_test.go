package sms_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/jobs/notify/sms"
)

func TestMeasure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    string
		want int
	}{
		{"empty", "", 0},
		{"ASCII", "Run at 7pm", 10},
		{"Hangul", "모임", 4},
		{"mixed", "모임 at 7시", 11},
		{"emoji", "😀", 1},
		{"emoji in text", "좋아요👍!", 8},
		{"newline", "\n", 1},
		{"CRLF", "a\r\nb", 4},
		{"Hanja and symbols", "中…", 4},
		{"decomposed Hangul", "\u1112\u1161\u11ab", 2}, // 한 as jamo
		{"invalid UTF-8", "a\xffb", 3},
		{"Latin accent EUC-KR lacks", "café", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := sms.Measure(tt.s); got != tt.want {
				t.Errorf("Measure(%q) = %d, want %d", tt.s, got, tt.want)
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		subject     string
		text        string
		wantType    notify.SMSType
		wantSubject string
		wantContent string
	}{
		{
			name: "90 ASCII bytes are an SMS", subject: "s", text: strings.Repeat("a", 90),
			wantType: notify.SMSShort, wantContent: strings.Repeat("a", 90),
		},
		{
			name: "91 ASCII bytes are an LMS", subject: "s", text: strings.Repeat("a", 91),
			wantType: notify.SMSLong, wantSubject: "s", wantContent: strings.Repeat("a", 91),
		},
		{
			name: "45 syllables are an SMS", text: strings.Repeat("가", 45),
			wantType: notify.SMSShort, wantContent: strings.Repeat("가", 45),
		},
		{
			name: "emoji counts one byte", text: strings.Repeat("가", 44) + "😀x",
			wantType: notify.SMSShort, wantContent: strings.Repeat("가", 44) + "?x",
		},
		{
			name: "subject cut to 40 bytes at a character", subject: "a" + strings.Repeat("가", 25), text: strings.Repeat("가", 46),
			wantType: notify.SMSLong, wantSubject: "a" + strings.Repeat("가", 19), wantContent: strings.Repeat("가", 46),
		},
		{
			name: "subject emoji replaced", subject: "🎉 축하", text: strings.Repeat("가", 46),
			wantType: notify.SMSLong, wantSubject: "? 축하", wantContent: strings.Repeat("가", 46),
		},
		{
			name: "content cut to 2000 bytes at a character", text: "a" + strings.Repeat("가", 1000),
			wantType: notify.SMSLong, wantContent: "a" + strings.Repeat("가", 999),
		},
		{
			name: "content of exactly 2000 bytes is kept", text: strings.Repeat("가", 1000),
			wantType: notify.SMSLong, wantContent: strings.Repeat("가", 1000),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			typ, subject, content := sms.Prepare(tt.subject, tt.text)
			if typ != tt.wantType || subject != tt.wantSubject || content != tt.wantContent {
				t.Errorf("Prepare = %d, %q, %q (%d bytes); want %d, %q, %q",
					typ, subject, content, sms.Measure(content), tt.wantType, tt.wantSubject, tt.wantContent)
			}
			if !utf8.ValidString(subject) || !utf8.ValidString(content) {
				t.Errorf("Prepare returned invalid UTF-8")
			}
		})
	}
}
