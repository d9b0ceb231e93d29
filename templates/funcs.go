package templates

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// funcMap is what the texts may call. The same functions serve text and
// html templates; html/template escapes what they return.
func funcMap(loc *time.Location) map[string]any {
	return map[string]any{
		"category": categoryLabel,
		"place":    placeLabel,
		"when":     func(t time.Time) string { return formatWhen(t, loc) },
		"clock":    func(t time.Time) string { return formatClock(t, loc) },
		"won":      formatWon,
		"join":     joinNames,
		"q":        quote,
		"trunc":    truncate,
		"rate":     formatRate,
	}
}

// categoryLabel shows a room category or mission type in Korean; anything
// else (a helper request's own category) is shown as given.
func categoryLabel(code string) string {
	switch code {
	case "MEAL":
		return "식사"
	case "STUDY":
		return "스터디"
	case "RUN":
		return "러닝"
	case "LIFE":
		return "생활"
	case "EXERCISE":
		return "운동"
	case "MEETING":
		return "모임"
	case "ETC":
		return "기타"
	}
	return code
}

// placeLabel shows the three place codes in Korean and free text as given.
func placeLabel(code string) string {
	switch code {
	case "SEOCHO":
		return "서초"
	case "GAEPO":
		return "개포"
	case "OUT_OF_CLUSTER":
		return "클러스터 외부"
	}
	return code
}

// koreanWeekdays are indexed by time.Weekday (Sunday first).
const koreanWeekdays = "일월화수목금토"

// formatWhen shows t as "1월 2일 (금) 오후 3:04" in loc; zero shows nothing
// so templates can test it with {{with}}.
func formatWhen(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(loc)
	wd := []rune(koreanWeekdays)[t.Weekday()]
	return fmt.Sprintf("%d월 %d일 (%c) %s", int(t.Month()), t.Day(), wd, formatClock(t, loc))
}

// formatClock shows the time of day as "오후 3:04", the 12-hour clock
// Korean readers expect (midnight is 오전 12:00, noon 오후 12:00).
func formatClock(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(loc)
	half := "오전"
	if t.Hour() >= 12 {
		half = "오후"
	}
	h := t.Hour() % 12
	if h == 0 {
		h = 12
	}
	return fmt.Sprintf("%s %d:%02d", half, h, t.Minute())
}

// formatWon shows n as "12,345원".
func formatWon(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String() + "원"
}

// joinNames joins nicknames with ", ", skipping blank ones.
func joinNames(names []string) string {
	var out []string
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// quote returns "‘s’ " ready to stand before a noun ("‘한강 5km’ 러닝"),
// or nothing for an empty s, so a missing title leaves a sentence that
// still reads ("러닝").
func quote(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return ""
	}
	return "‘" + s + "’ "
}

// truncate puts s on one line and cuts it to at most n runes, ending with
// "…" when cut: comment excerpts must not swamp a one-line notice.
func truncate(n int, s string) string {
	s = oneLine(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n])) + "…"
}

// withoutEmoji drops emoji: every code point beyond the Basic Multilingual
// Plane, the Dingbats block, variation selectors, the keycap mark, and the
// parts of a sequence joined by a zero-width joiner or asking for emoji
// presentation ("♀" in "🏃‍♀️", "☀" in "☀️"). None of it is in EUC-KR as
// an emoji, and SENS rejects what it cannot encode.
func withoutEmoji(s string) string {
	rs := []rune(s)
	out := make([]rune, 0, len(rs))
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == zwj:
			i++ // the joined part goes with the joiner
		case r > 0xFFFF, r >= 0x2700 && r <= 0x27BF, isVariationSelector(r), r == keycap:
		case i+1 < len(rs) && (rs[i+1] == emojiPresentation || rs[i+1] == keycap):
		default:
			out = append(out, r)
		}
	}
	return string(out)
}

const (
	zwj               = '\u200D'
	keycap            = '\u20E3'
	emojiPresentation = '\uFE0F'
)

func isVariationSelector(r rune) bool { return r >= 0xFE00 && r <= 0xFE0F }

// formatRate shows basis points as a percentage: "85%", "85.71%"; nil
// shows nothing.
func formatRate(bp *int) string {
	if bp == nil {
		return ""
	}
	if *bp%100 == 0 {
		return strconv.Itoa(*bp/100) + "%"
	}
	return fmt.Sprintf("%d.%02d%%", *bp/100, *bp%100)
}
