package templates

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// embeddedCopy returns the embedded tree as a MapFS a test can break.
func embeddedCopy(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		m[p] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestNewRefusesBrokenTexts proves a broken text stops New, which is what
// makes the process fail at start instead of at the first send.
func TestNewRefusesBrokenTexts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		mutate  func(m fstest.MapFS)
		wantErr string
	}{
		{"intact", func(fstest.MapFS) {}, ""},
		{"missing text file", func(m fstest.MapFS) { delete(m, "text/run_dday.tmpl") }, "RUN_DDAY"},
		{"missing html file", func(m fstest.MapFS) { delete(m, "html/task_done.html") }, "TASK_DONE"},
		{"missing channel block", func(m fstest.MapFS) {
			f := m["text/mission_started.tmpl"]
			f.Data = []byte(strings.Replace(string(f.Data), `{{define "sms"}}`, `{{define "sms.unused"}}`, 1))
		}, `"sms"`},
		{"missing html content", func(m fstest.MapFS) {
			m["html/room_updated.html"] = &fstest.MapFile{Data: []byte(`{{define "body"}}x{{end}}`)}
		}, `"content"`},
		{"parse error", func(m fstest.MapFS) {
			f := m["text/task_matched.tmpl"]
			f.Data = append(f.Data, []byte(`{{define "x"}}{{if}}{{end}}`)...)
		}, "TASK_MATCHED"},
		{"unknown field", func(m fstest.MapFS) {
			f := m["text/run_ended.tmpl"]
			f.Data = []byte(strings.Replace(string(f.Data), "{{q .Title}}", "{{q .Titel}}", 1))
		}, "Titel"},
		{"unknown field in html", func(m fstest.MapFS) {
			m["html/no_match_found.html"] = &fstest.MapFile{Data: []byte(`{{define "content"}}{{.Nick}}{{end}}`)}
		}, "Nick"},
		{"stray file", func(m fstest.MapFS) {
			m["text/match_confimed.tmpl"] = &fstest.MapFile{Data: []byte(`{{define "sms"}}x{{end}}`)}
		}, "match_confimed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := embeddedCopy(t)
			tc.mutate(m)
			_, err := newFromFS(m, time.UTC)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("newFromFS: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatal("newFromFS succeeded, want an error")
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestWithoutEmoji(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"러너", "러너"},
		{"러너🏃‍♀️", "러너"},
		{"맑음☀️", "맑음"},
		{"좋아요👍🏻!", "좋아요!"},
		{"1️⃣등", "등"},
		{"❤ 하트", " 하트"},
		{"★☆♥ 기호", "★☆♥ 기호"}, // in EUC-KR, so kept
		{"🇰🇷 한국", " 한국"},
	}
	for _, tc := range cases {
		if got := withoutEmoji(tc.in); got != tc.want {
			t.Errorf("withoutEmoji(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTidy(t *testing.T) {
	t.Parallel()
	in := "\n\n  \na  \n\n\n\nb\t\n \n"
	if got, want := tidy(in), "a\n\nb"; got != want {
		t.Errorf("tidy(%q) = %q, want %q", in, got, want)
	}
}
