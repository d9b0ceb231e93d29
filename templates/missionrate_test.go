package templates_test

import (
	"strings"
	"testing"

	"github.com/moim/moim/templates"
)

// TestMissionClosedRate: the close shows the member's rate, 0 % included,
// beside the amount, in-app and by mail; without a rate it shows none.
func TestMissionClosedRate(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	for _, c := range []struct {
		bp     *int
		amount int64
		want   []string
	}{
		{ptr(10_000), 10_500, []string{"100%", "10,500원"}},
		{ptr(8571), 800, []string{"85.71%", "800원"}},
		{ptr(0), 0, []string{"0%", "환급금이 없어요"}},
	} {
		d := templates.Data{Title: "매일 만보", RateBP: c.bp, Amount: c.amount}
		in := render(t, r, templates.InApp, "MISSION_CLOSED", d)
		mail := render(t, r, templates.Mail, "MISSION_CLOSED", d)
		for _, w := range c.want {
			if !strings.Contains(in.Text, w) || !strings.Contains(mail.Text, w) || !strings.Contains(mail.HTML, w) {
				t.Errorf("rate %d: %q missing from %q / %q / %q", *c.bp, w, in.Text, mail.Text, mail.HTML)
			}
		}
	}
	in := render(t, r, templates.InApp, "MISSION_CLOSED", templates.Data{Title: "매일 만보"})
	if strings.Contains(in.Text, "달성률") {
		t.Errorf("no rate given, yet shown: %q", in.Text)
	}
}

func ptr(v int) *int { return &v }
