package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/hibiken/asynqmon"
)

// queueUIPath is where the asynqmon queue UI and its JSON API live.
const queueUIPath = "/admin/queues"

// registerQueueUIRoutes mounts asynqmon behind the admin credentials. The
// UI can delete and re-run tasks, so nothing of it (page, assets or API) is
// reachable without them.
func (s *server) registerQueueUIRoutes(r chi.Router, ui http.Handler) {
	r.Group(func(r chi.Router) {
		r.Use(s.requireAdmin)
		// asynqmon routes on the full URL path, so it is handed the request
		// unchanged, for the root and for everything below it.
		r.Handle(queueUIPath, ui)
		// Its pages are static; its API reads Redis and would answer a
		// Redis outage with a 500 of its own.
		r.Handle(queueUIPath+"/*", ui)
		r.With(s.requireRedis).Handle(queueUIPath+"/api/*", ui)
	})
}

// formatTaskBytes shows task payloads and results in the queue UI: JSON
// (every payload and result of ours) indented, other text as is, no bytes
// as "(none)" and anything else as its size and first bytes in hex.
// asynqmon's default says "non-printable bytes" for all but plain text,
// including an empty result.
func formatTaskBytes(_ string, b []byte) string {
	switch {
	case len(b) == 0:
		return "(none)"
	case json.Valid(b):
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err == nil {
			return out.String()
		}
	case utf8.Valid(b) && bytes.IndexFunc(b, func(r rune) bool { return !unicode.IsPrint(r) && !unicode.IsSpace(r) }) < 0:
		return string(b)
	}
	return fmt.Sprintf("%d bytes, not text: %x", len(b), b[:min(len(b), 32)])
}

// queueUIOptions are asynqmon's options for the UI mounted at
// queueUIPath.
func queueUIOptions(opt asynqmon.Options) asynqmon.Options {
	opt.RootPath = queueUIPath
	opt.PayloadFormatter = asynqmon.PayloadFormatterFunc(formatTaskBytes)
	opt.ResultFormatter = asynqmon.ResultFormatterFunc(formatTaskBytes)
	return opt
}
