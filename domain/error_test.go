package domain_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/moim/moim/domain"
)

func TestErrorCodeAndMessage(t *testing.T) {
	t.Parallel()
	cause := errors.New("pq: duplicate key value violates unique constraint")
	tests := []struct {
		name        string
		err         error
		wantCode    string
		wantMessage string
	}{
		{"nil", nil, "", ""},
		{"domain error", domain.Errorf(domain.EINVALID, "Bad %s.", "queue"), domain.EINVALID, "Bad queue."},
		{"wrapped domain error", fmt.Errorf("create ping: %w", &domain.Error{Code: domain.ECONFLICT, Message: "Already exists.", Err: cause}), domain.ECONFLICT, "Already exists."},
		{"field error", domain.FieldErrorf(domain.EINVALID, "queue", "Unknown queue."), domain.EINVALID, "Unknown queue."},
		// Internals never reach a client: any other error is "internal" with a generic text.
		{"plain error", cause, domain.EINTERNAL, "Internal error."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := domain.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if got := domain.ErrorMessage(tt.err); got != tt.wantMessage {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.wantMessage)
			}
		})
	}
}

func TestErrorKeepsItsCause(t *testing.T) {
	t.Parallel()
	cause := errors.New("driver said no")
	err := fmt.Errorf("store: %w", &domain.Error{Code: domain.ECONFLICT, Message: "Already exists.", Err: cause})
	if !errors.Is(err, cause) {
		t.Error("errors.Is does not reach the cause through *domain.Error")
	}
}

func TestRequestIDContext(t *testing.T) {
	t.Parallel()
	if got := domain.RequestID(context.Background()); got != "" {
		t.Errorf("RequestID(empty ctx) = %q, want empty", got)
	}
	ctx := domain.WithRequestID(context.Background(), "req-1")
	if got := domain.RequestID(ctx); got != "req-1" {
		t.Errorf("RequestID = %q, want req-1", got)
	}
}
