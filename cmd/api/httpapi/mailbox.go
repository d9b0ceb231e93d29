package httpapi

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/notify"
)

// registerMailboxRoutes mounts what the local log senders kept, for an
// admin to read what would have been sent.
func (s *server) registerMailboxRoutes(r chi.Router) {
	r.With(s.requireAdmin).Get("/admin/mailbox", s.handleMailbox)
}

type mailboxResponse struct {
	Messages []notify.MailboxEntry `json:"messages"`
}

// handleMailbox answers the kept mail and SMS, newest first: a page for a
// browser (an Accept naming text/html and not application/json), JSON
// for everyone else, so scripts and curl keep the JSON they had. The
// messages are in Redis, where a worker process of its own keeps them;
// only a configuration with a log provider has a mailbox.
func (s *server) handleMailbox(w http.ResponseWriter, r *http.Request) {
	if s.mailbox == nil {
		s.writeError(w, r, domain.Errorf(domain.ENOTFOUND, "No mailbox: this process sends through real providers, or does not send at all."))
		return
	}
	msgs, err := s.mailbox.List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	accept := r.Header.Get("Accept")
	if !strings.Contains(accept, "text/html") || strings.Contains(accept, "application/json") {
		s.writeJSON(w, r, http.StatusOK, mailboxResponse{Messages: msgs})
		return
	}
	var page bytes.Buffer
	if err := mailboxPage.Execute(&page, msgs); err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	// Nothing on the page runs: a mail's HTML is shown in a sandboxed
	// frame (no scripts, no forms, an origin of its own), and remote
	// images and styles of a mail are not fetched.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(page.Bytes())
}

// mailboxPage lists the messages. html/template escapes every field by
// context; a mail's HTML goes, escaped as an attribute value, into a
// sandboxed iframe's srcdoc, where it is rendered as the mail it is
// without reaching this page.
var mailboxPage = template.Must(template.New("mailbox").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moim mailbox</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:60em}
article{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}
h2{font-size:1.1em;margin:0 0 .3em}
.meta{color:#555;margin:0 0 .6em}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.6em;margin:0}
iframe{width:100%;height:24em;border:1px solid #ddd;margin-top:.6em}
</style></head><body>
<h1>Mailbox</h1>
<p>What the log providers would have sent, newest first. JSON: send <code>Accept: application/json</code>.</p>
{{range .}}<article id="{{.ID}}">
<h2>{{if .Subject}}{{.Subject}}{{else}}(no subject){{end}}</h2>
<p class="meta">{{.Channel}} to <b>{{.To}}</b> · {{.At.UTC.Format "2006-01-02 15:04:05 UTC"}} · {{.ID}}</p>
<pre>{{.Text}}</pre>
{{if .HTML}}<iframe sandbox title="HTML body of {{.ID}}" srcdoc="{{.HTML}}"></iframe>{{end}}
</article>
{{else}}<p>Nothing kept yet.</p>
{{end}}</body></html>
`))
