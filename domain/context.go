package domain

import "context"

type ctxKey int

const requestIDKey ctxKey = iota

// WithRequestID returns a context carrying the id of the HTTP request (or the
// task) that caused the work, so every log line and follow-up task can name it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id stored by WithRequestID, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}
