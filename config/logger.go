package config

import (
	"context"
	"io"
	"log/slog"

	"github.com/moim/moim/domain"
)

// NewLogger returns a logger writing JSON when c.Format is "json" and text
// otherwise (Load sets the format to json in production when it is empty),
// at c.Level (info when unknown; Validate reports it). Every record logged
// with a context carrying a request id (domain.WithRequestID) gets a
// "request_id" attribute, so one request's lines, and those of the tasks it
// caused, can be found together.
func NewLogger(w io.Writer, c LogConfig) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(requestIDHandler{h})
}

// requestIDHandler adds the request id from the context to each record.
// Under a WithGroup the id lands inside that group, as any attribute would.
type requestIDHandler struct {
	next slog.Handler
}

func (h requestIDHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := domain.RequestID(ctx); id != "" && !hasRequestID(r) {
		// Clone: another handler may share this record's attribute storage.
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.next.Handle(ctx, r)
}

// hasRequestID reports whether the call already logged request_id itself,
// so a line never carries the key twice.
func hasRequestID(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == "request_id"
		return !found
	})
	return found
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.next.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.next.WithGroup(name)}
}
