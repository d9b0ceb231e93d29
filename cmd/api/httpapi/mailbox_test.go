package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/jobs/notify"
)

// TestMailboxPage: a browser gets a page on which a hostile subject, body
// and HTML body are text or sandboxed, never markup of the page; JSON
// clients get the messages as they were.
func TestMailboxPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t))
	box := notify.NewMailbox(e.redis, 10)
	const hostile = `<script>alert("subject")</script>`
	const htmlBody = `<p onclick="steal()">hi</p><script>alert("body")</script>`
	sender := &notify.LogMail{Logger: slog.New(slog.DiscardHandler), Mailbox: box,
		NowFunc: func() time.Time { return notificationsClock }}
	if _, err := sender.SendMail(context.Background(), notify.Mail{To: "mina@example.com", Subject: hostile,
		Text: "</pre><b>text</b>", HTML: htmlBody}); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, e, func(d *httpapi.Deps) { d.Mailbox = box }, nil)

	resp, body := s.do(t, request{method: http.MethodGet, path: "/admin/mailbox", auth: authAdmin,
		header: map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}})
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status = %d, Content-Type = %q, want 200 text/html", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	page := string(body)
	for _, bad := range []string{"<script", "<b>text", "</pre><b>", `onclick="steal`} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q unescaped:\n%s", bad, page)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt;",
		"&lt;/pre&gt;&lt;b&gt;text&lt;/b&gt;",
		`<iframe sandbox title="HTML body of log-1" srcdoc="&lt;p onclick=&#34;steal()&#34;&gt;hi&lt;/p&gt;`,
		"mina@example.com",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q, want scripts refused", csp)
	}

	for _, accept := range []string{"application/json", "", "*/*"} {
		resp, body = s.do(t, request{method: http.MethodGet, path: "/admin/mailbox", auth: authAdmin,
			header: map[string]string{"Accept": accept}})
		var got struct {
			Messages []mailboxEntryBody `json:"messages"`
		}
		if err := json.Unmarshal(body, &got); err != nil || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("Accept %q: %s (%v)", accept, body, err)
		}
		if len(got.Messages) != 1 || got.Messages[0].Subject != hostile || got.Messages[0].HTML != htmlBody {
			t.Errorf("Accept %q: messages = %+v, want the mail as sent", accept, got.Messages)
		}
	}
}

// TestMailboxAcrossProcesses: what a worker's log sender keeps (its own
// Redis connection and mailbox, as in a worker process) is what an API
// with a mailbox of its own reads.
func TestMailboxAcrossProcesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t))
	workerRedis := redis.NewClient(e.redis.(*redis.Client).Options())
	t.Cleanup(func() { _ = workerRedis.Close() })
	worker := &notify.LogMail{Logger: slog.New(slog.DiscardHandler), Mailbox: notify.NewMailbox(workerRedis, 3),
		NowFunc: func() time.Time { return notificationsClock }}
	for _, to := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"} {
		if _, err := worker.SendMail(context.Background(), notify.Mail{To: to, Subject: "hello", Text: "hi"}); err != nil {
			t.Fatal(err)
		}
	}
	s := newServer(t, e, func(d *httpapi.Deps) { d.Mailbox = notify.NewMailbox(e.redis, 3) }, nil)
	resp, body := s.do(t, request{method: http.MethodGet, path: "/admin/mailbox", auth: authAdmin})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d: %s", resp.StatusCode, body)
	}
	var got struct {
		Messages []mailboxEntryBody `json:"messages"`
	}
	decodeStrict(t, body, &got)
	var to []string
	for _, m := range got.Messages {
		to = append(to, m.To+" "+m.ID)
	}
	// Capped at three: the oldest went.
	if want := "d@example.com log-4,c@example.com log-3,b@example.com log-2"; strings.Join(to, ",") != want {
		t.Errorf("messages = %v, want %s", to, want)
	}
}
