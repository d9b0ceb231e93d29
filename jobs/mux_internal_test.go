package jobs

import (
	"context"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
)

func TestRegistryRejects(t *testing.T) {
	t.Parallel()
	noop := asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })
	tests := []struct {
		name    string
		typ     string
		h       asynq.Handler
		wantErr string
	}{
		{"duplicate type", "test:taken", noop, `"test:taken": task type already registered`},
		{"empty type", "", noop, "empty task type"},
		{"nil handler", "test:nil", nil, `"test:nil": nil handler`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRegistry(asynq.NewServeMux())
			if err := r.register("test:taken", noop); err != nil {
				t.Fatalf("first register: %v", err)
			}
			err := r.register(tt.typ, tt.h)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("register(%q) = %v, want an error containing %q", tt.typ, err, tt.wantErr)
			}
		})
	}
}

// Every type NewMux serves is registered exactly once: registering the list
// again on the same registry must fail on its first entry, and the mux
// routes each type to a handler of its own.
func TestRegisterHandlersListsEachTypeOnce(t *testing.T) {
	t.Parallel()
	mux := asynq.NewServeMux()
	r := newRegistry(mux)
	deps := Deps{}
	if err := registerHandlers(r, deps); err != nil {
		t.Fatalf("registerHandlers: %v", err)
	}
	for _, typ := range []string{TypePing, TypeOutboxPrune} {
		if !r.types[typ] {
			t.Errorf("type %q not registered", typ)
		}
		if _, pattern := mux.Handler(asynq.NewTask(typ, nil)); pattern != typ {
			t.Errorf("mux routes %q to pattern %q, want its own", typ, pattern)
		}
	}
	if err := registerHandlers(r, deps); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("registering the list twice = %v, want a duplicate error", err)
	}
}
