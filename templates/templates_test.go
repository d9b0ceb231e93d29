package templates_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moim/moim/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// seoul loads the zone moim shows times in.
func seoul(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatalf("load Asia/Seoul: %v", err)
	}
	return loc
}

func newRenderer(t *testing.T) *templates.Renderer {
	t.Helper()
	r, err := templates.New(seoul(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func render(t *testing.T, r *templates.Renderer, ch templates.Channel, typ string, d templates.Data) templates.Message {
	t.Helper()
	m, err := r.Render(ch, typ, d)
	if err != nil {
		t.Fatalf("Render(%s, %s): %v", ch, typ, err)
	}
	return m
}

// fullData fills every field; 2026-01-02 is a Friday.
func fullData(t *testing.T) templates.Data {
	t.Helper()
	return templates.Data{
		Nickname: "러너",
		Actor:    "밥친구",
		Title:    "한강 5km",
		Category: "RUN",
		Place:    "SEOCHO",
		StartsAt: time.Date(2026, 1, 2, 15, 4, 0, 0, seoul(t)),
		Members:  []string{"러너", "밥친구", "새벽달"},
		Link:     "https://moim.example/rooms/42",
		Amount:   12345,
		Excerpt:  "저도 갈게요!\n물 챙겨 갈게요.",
		Reason:   "비 예보",
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := templates.New(seoul(t)); err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := templates.New(nil); err == nil {
		t.Fatal("New(nil) succeeded, want an error")
	}
}

// TestRenderEveryTypeAndChannel renders each type on each channel with full
// and with empty data and checks the parts a sender relies on.
func TestRenderEveryTypeAndChannel(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	datas := map[string]templates.Data{"full": fullData(t), "empty": {}}
	for dname, d := range datas {
		for _, typ := range templates.Types() {
			for _, ch := range templates.Channels() {
				t.Run(dname+"/"+typ+"/"+string(ch), func(t *testing.T) {
					t.Parallel()
					m := render(t, r, ch, typ, d)
					wantSubject := ch != templates.Slack
					wantHTML := ch == templates.Mail
					if (m.Subject != "") != wantSubject {
						t.Errorf("Subject = %q, want it set: %v", m.Subject, wantSubject)
					}
					if (m.HTML != "") != wantHTML {
						t.Errorf("HTML set = %v, want %v", m.HTML != "", wantHTML)
					}
					if m.Text == "" {
						t.Error("Text is empty")
					}
					if strings.ContainsAny(m.Subject, "\r\n") {
						t.Errorf("Subject %q is not one line", m.Subject)
					}
					for part, s := range map[string]string{"Subject": m.Subject, "HTML": m.HTML, "Text": m.Text} {
						checkArtefacts(t, part, s)
					}
					for part, s := range map[string]string{"Subject": m.Subject, "Text": m.Text} {
						checkSpacing(t, part, s)
					}
				})
			}
		}
	}
}

// checkArtefacts fails on what a template bug leaves in its output.
func checkArtefacts(t *testing.T, part, s string) {
	t.Helper()
	if s != strings.TrimSpace(s) {
		t.Errorf("%s has surrounding whitespace: %q", part, s)
	}
	for _, bad := range []string{"<no value>", "%!", "\n\n\n", "‘’", "“”", "ZgotmplZ", "{{", "}}"} {
		if strings.Contains(s, bad) {
			t.Errorf("%s contains %q:\n%s", part, bad, s)
		}
	}
}

// checkSpacing fails on the spacing an absent optional field can leave in
// plain text.
func checkSpacing(t *testing.T, part, s string) {
	t.Helper()
	for _, bad := range []string{"  ", " .", " ,", " ?", " !", "님님", ": \n"} {
		if strings.Contains(s, bad) {
			t.Errorf("%s contains %q:\n%s", part, bad, s)
		}
	}
	for _, l := range strings.Split(s, "\n") {
		if l != strings.TrimSpace(l) {
			t.Errorf("%s line %q has surrounding spaces", part, l)
		}
		if strings.HasSuffix(l, ":") {
			t.Errorf("%s line %q ends with a label and no value", part, l)
		}
	}
}

func TestEscaping(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	const evil = `<script>alert("x")</script>`
	d := templates.Data{Nickname: evil, Actor: evil, Title: evil, Members: []string{evil}, Excerpt: evil}

	m := render(t, r, templates.Mail, "PARTICIPATION_ON_MY_ROOM", d)
	if strings.Contains(m.HTML, "<script>") {
		t.Errorf("mail HTML has an unescaped <script>:\n%s", m.HTML)
	}
	if !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Errorf("mail HTML lacks the escaped nickname &lt;script&gt;:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, evil+"님, 안녕하세요.") {
		t.Errorf("mail text does not greet %q verbatim:\n%s", evil, m.Text)
	}

	for _, ch := range []templates.Channel{templates.InApp, templates.SMS, templates.Slack} {
		m := render(t, r, ch, "PARTICIPATION_ON_MY_ROOM", d)
		if !strings.Contains(m.Text, evil) {
			t.Errorf("%s text does not show %q verbatim:\n%s", ch, evil, m.Text)
		}
	}
	if m := render(t, r, templates.SMS, "RUN_STARTS_SOON", d); !strings.Contains(m.Text, evil+"님, ") {
		t.Errorf("SMS does not address %q verbatim:\n%s", evil, m.Text)
	}
}

func TestUnsafeLinkIsNotAHref(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	m := render(t, r, templates.Mail, "MATCH_CONFIRMED", templates.Data{Link: "javascript:alert(1)"})
	if strings.Contains(m.HTML, `href="javascript:`) {
		t.Errorf("mail HTML links to a javascript: URL:\n%s", m.HTML)
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	invitation := fullData(t)
	invitation.Title = "시장 자료 조사"
	invitation.Category = "자료조사"
	invitation.Place = ""
	invitation.StartsAt = time.Time{}
	invitation.Members = nil
	invitation.Excerpt = "국내 밀키트 시장 규모와 주요 업체 5곳을 정리해 주세요."
	invitation.Link = "https://moim.example/tasks/7"
	match := fullData(t)
	match.Title = ""
	match.Category = "MEAL"
	match.Members = []string{"러너", "밥친구"}
	match.Link = "https://moim.example/matches/9"
	soon := fullData(t)
	soon.Link = "https://moim.example/r/42/check"

	cases := []struct {
		file string
		ch   templates.Channel
		typ  string
		d    templates.Data
		part func(templates.Message) string
	}{
		{"match_confirmed.mail.html", templates.Mail, "MATCH_CONFIRMED", match, func(m templates.Message) string { return m.HTML }},
		{"match_confirmed.mail.txt", templates.Mail, "MATCH_CONFIRMED", match, withSubject},
		{"task_invitation.mail.html", templates.Mail, "TASK_INVITATION", invitation, func(m templates.Message) string { return m.HTML }},
		{"task_invitation.mail.txt", templates.Mail, "TASK_INVITATION", invitation, withSubject},
		{"run_starts_soon.sms.txt", templates.SMS, "RUN_STARTS_SOON", soon, withSubject},
		{"match_confirmed.slack.txt", templates.Slack, "MATCH_CONFIRMED", match, func(m templates.Message) string { return m.Text }},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			got := tc.part(render(t, r, tc.ch, tc.typ, tc.d)) + "\n"
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the golden file (run with -update if intended)\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

func withSubject(m templates.Message) string { return "Subject: " + m.Subject + "\n\n" + m.Text }

func TestDatesInSeoul(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	cases := []struct {
		name string
		at   time.Time
		want string
	}{
		{"afternoon", time.Date(2026, 1, 2, 6, 4, 0, 0, time.UTC), "1월 2일 (금) 오후 3:04"},
		{"just after midnight", time.Date(2026, 1, 1, 15, 30, 0, 0, time.UTC), "1월 2일 (금) 오전 12:30"},
		{"noon", time.Date(2026, 1, 4, 3, 0, 0, 0, time.UTC), "1월 4일 (일) 오후 12:00"},
		{"morning", time.Date(2026, 12, 31, 0, 5, 0, 0, time.UTC), "12월 31일 (목) 오전 9:05"},
		{"late evening", time.Date(2026, 3, 7, 14, 59, 0, 0, time.UTC), "3월 7일 (토) 오후 11:59"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, r, templates.Mail, "JOIN_ACCEPTED", templates.Data{StartsAt: tc.at})
			if !strings.Contains(m.Text, "일시: "+tc.want+"\n") {
				t.Errorf("mail text lacks %q:\n%s", "일시: "+tc.want, m.Text)
			}
			if !strings.Contains(m.HTML, ">"+tc.want+"<") {
				t.Errorf("mail HTML lacks %q", tc.want)
			}
		})
	}

	t.Run("renderer location decides", func(t *testing.T) {
		t.Parallel()
		utc, err := templates.New(time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 1, 2, 6, 4, 0, 0, time.UTC)
		m := render(t, utc, templates.InApp, "RUN_DDAY", templates.Data{StartsAt: at})
		if want := "오늘 오전 6:04에 러닝이 있어요."; m.Text != want {
			t.Errorf("UTC renderer: Text = %q, want %q", m.Text, want)
		}
	})
}

func TestAmounts(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	cases := []struct {
		amount int64
		want   string
	}{
		{12345, "12,345원이 환급되었어요."},
		{1234567, "1,234,567원이 환급되었어요."},
		{105, "105원이 환급되었어요."},
		{1000, "1,000원이 환급되었어요."},
		{0, "이번에는 환급금이 없어요."},
	}
	for _, tc := range cases {
		m := render(t, r, templates.InApp, "MISSION_CLOSED", templates.Data{Title: "매일 만보", Amount: tc.amount})
		if want := "‘매일 만보’ 미션이 끝났어요. " + tc.want; m.Text != want {
			t.Errorf("Amount %d: Text = %q, want %q", tc.amount, m.Text, want)
		}
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	cases := []struct {
		category, place string
		want            []string
	}{
		{"MEAL", "SEOCHO", []string{"분류: 식사\n", "장소: 서초\n"}},
		{"STUDY", "GAEPO", []string{"분류: 스터디\n", "장소: 개포\n"}},
		{"RUN", "OUT_OF_CLUSTER", []string{"분류: 러닝\n", "장소: 클러스터 외부\n"}},
		{"자료조사", "여의나루역 2번 출구", []string{"분류: 자료조사\n", "장소: 여의나루역 2번 출구\n"}},
	}
	for _, tc := range cases {
		d := templates.Data{Category: tc.category, Place: tc.place, Members: []string{"러너", " ", "밥친구"}}
		m := render(t, r, templates.Mail, "MATCH_CONFIRMED", d)
		for _, w := range append(tc.want, "멤버: 러너, 밥친구\n") {
			if !strings.Contains(m.Text, w) {
				t.Errorf("%s/%s: mail text lacks %q:\n%s", tc.category, tc.place, w, m.Text)
			}
		}
	}
}

// eucKRBytes counts an SMS as SENS does: two bytes for each non-ASCII
// character (EUC-KR Hangul), one for ASCII.
func eucKRBytes(s string) int {
	n := 0
	for _, r := range s {
		if r < utf8.RuneSelf {
			n++
		} else {
			n += 2
		}
	}
	return n
}

// TestSMSLength keeps the common run reminders within one 90-byte SMS when
// the nickname and title are short, and every LMS subject within SENS's 40
// bytes.
func TestSMSLength(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	d := templates.Data{
		Nickname: "달리는곰",
		Title:    "한강 5km",
		StartsAt: time.Date(2026, 1, 2, 19, 30, 0, 0, seoul(t)),
	}
	for _, typ := range []string{"RUN_DDAY", "RUN_STARTS_SOON"} {
		for _, link := range []string{"", "https://moim.app/r/42"} {
			if typ == "RUN_DDAY" && link != "" {
				continue // the D-day SMS shows no link
			}
			d := d
			d.Link = link
			m := render(t, r, templates.SMS, typ, d)
			if n := eucKRBytes(m.Text); n > 90 {
				t.Errorf("%s SMS (link %q) is %d bytes, want <= 90:\n%s", typ, link, n, m.Text)
			}
		}
	}
	full := fullData(t)
	for _, typ := range templates.Types() {
		m := render(t, r, templates.SMS, typ, full)
		if n := eucKRBytes(m.Subject); n > 40 {
			t.Errorf("%s SMS subject %q is %d bytes, want <= 40", typ, m.Subject, n)
		}
	}
}

// isEmoji reports the code points withoutEmoji removes, and so a stricter
// test of the SMS texts than "nothing beyond the BMP".
func isEmoji(r rune) bool {
	return r > 0xFFFF || (r >= 0x2700 && r <= 0x27BF) || (r >= 0xFE00 && r <= 0xFE0F) || r == 0x200D || r == 0x20E3
}

func TestSMSHasNoEmoji(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	d := fullData(t)
	d.Nickname = "러너🏃‍♀️"
	d.Title = "한강 5km ✨"
	d.Actor = "🍚"
	d.Members = []string{"러너🏃", "❤️"}
	d.Excerpt = "좋아요 👍🏻"
	for _, typ := range templates.Types() {
		m := render(t, r, templates.SMS, typ, d)
		for _, s := range []string{m.Subject, m.Text} {
			if i := strings.IndexFunc(s, isEmoji); i >= 0 {
				t.Errorf("%s SMS has an emoji at %d:\n%s", typ, i, s)
			}
			checkArtefacts(t, typ+" SMS", s)
			checkSpacing(t, typ+" SMS", s)
		}
	}
	m := render(t, r, templates.SMS, "RUN_STARTS_SOON", d)
	if !strings.HasPrefix(m.Text, "[moim] 러너님, ") {
		t.Errorf("SMS does not address the nickname without its emoji:\n%s", m.Text)
	}
	// Only SMS strips them: mail and Slack can show emoji.
	if m := render(t, r, templates.Slack, "RUN_STARTS_SOON", d); !strings.Contains(m.Text, "✨") {
		t.Errorf("Slack text lost the title's emoji:\n%s", m.Text)
	}
}

func TestExcerptIsShortenedInApp(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	long := strings.Repeat("가", 100)
	m := render(t, r, templates.InApp, "COMMENT_ON_MY_ROOM", templates.Data{Actor: "밥친구", Excerpt: long})
	want := "밥친구님이 모임에 댓글을 남겼어요. “" + strings.Repeat("가", 40) + "…”"
	if m.Text != want {
		t.Errorf("Text = %q, want %q", m.Text, want)
	}
}

func TestRenderUnknown(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	if _, err := r.Render("fax", "MATCH_CONFIRMED", templates.Data{}); !errors.Is(err, templates.ErrUnknownChannel) {
		t.Errorf("unknown channel: err = %v, want ErrUnknownChannel", err)
	}
	for _, typ := range []string{"NOPE", "", "match_confirmed"} {
		if _, err := r.Render(templates.Mail, typ, templates.Data{}); !errors.Is(err, templates.ErrUnknownType) {
			t.Errorf("type %q: err = %v, want ErrUnknownType", typ, err)
		}
	}
}

func TestTypesIsACopy(t *testing.T) {
	t.Parallel()
	types := templates.Types()
	if len(types) != 25 {
		t.Fatalf("len(Types()) = %d, want 25", len(types))
	}
	sorted := slices.Clone(types)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(types) {
		t.Errorf("Types() has duplicates: %v", types)
	}
	types[0] = "CHANGED"
	if got := templates.Types()[0]; got != "PARTICIPATION_ON_MY_ROOM" {
		t.Errorf("after changing a copy, Types()[0] = %q", got)
	}
	chans := templates.Channels()
	chans[0] = "changed"
	if got := templates.Channels()[0]; got != templates.InApp {
		t.Errorf("after changing a copy, Channels()[0] = %q", got)
	}
}

func TestRenderDoesNotChangeData(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	members := []string{" 러너 ", "❤️"}
	render(t, r, templates.SMS, "MATCH_CONFIRMED", templates.Data{Members: members})
	if members[0] != " 러너 " || members[1] != "❤️" {
		t.Errorf("Render changed the caller's Members: %q", members)
	}
}

func TestRenderConcurrently(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	d := fullData(t)
	want := render(t, r, templates.Mail, "MATCH_CONFIRMED", d)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, typ := range templates.Types() {
				for _, ch := range templates.Channels() {
					if _, err := r.Render(ch, typ, d); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if got, _ := r.Render(templates.Mail, "MATCH_CONFIRMED", d); got != want {
				t.Error("concurrent render differs")
			}
		})
	}
	wg.Wait()
}
