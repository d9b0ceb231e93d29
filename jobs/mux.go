package jobs

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
)

// Deps are what the task handlers need. NewMux hands each handler its part.
type Deps struct {
	// DB is the source of truth every handler re-reads and writes. Required.
	DB *bun.DB
	// Logger receives the task log lines; nil discards them.
	Logger *slog.Logger
	// Metrics receives task outcomes; nil keeps them in unregistered
	// collectors nobody reads.
	Metrics *Metrics
	// KeepSent is how long the outbox prune tick keeps sent rows; zero means
	// DefaultOutboxKeepSent.
	KeepSent time.Duration
	// NowFunc is the clock handed to handlers; nil means time.Now.
	NowFunc func() time.Time
}

// NewMux returns the worker's task router: every handler registered under
// its task type, wrapped in logging (outermost, so it sees the request id
// and the final outcome), metrics, and panic recovery (innermost, so a panic
// is counted and logged as a failure). A type registered twice is a wiring
// mistake and an error, never a silent override.
func NewMux(deps Deps) (*asynq.ServeMux, error) {
	if deps.DB == nil {
		return nil, errors.New("new task mux: deps.DB is nil")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	if deps.NowFunc == nil {
		deps.NowFunc = time.Now
	}

	mux := asynq.NewServeMux()
	mux.Use(Logging(deps.Logger), Instrument(deps.Metrics), Recover(deps.Logger))
	r := newRegistry(mux)
	if err := registerHandlers(r, deps); err != nil {
		return nil, fmt.Errorf("new task mux: %w", err)
	}
	return mux, nil
}

// registerHandlers is the one list of task types the worker serves. Add a
// handler here when you add a task type (ticks included); register rejects
// a type that is already taken.
func registerHandlers(r *registry, deps Deps) error {
	handlers := []struct {
		typ string
		h   asynq.Handler
	}{
		{TypePing, &PingHandler{DB: deps.DB, Logger: deps.Logger, NowFunc: deps.NowFunc}},

		// Ticks from the catalogue in ticks.go.
		{TypeOutboxPrune, &OutboxPruneHandler{DB: deps.DB, KeepSent: deps.KeepSent, NowFunc: deps.NowFunc, Logger: deps.Logger}},
	}
	for _, e := range handlers {
		if err := r.register(e.typ, e.h); err != nil {
			return err
		}
	}
	return nil
}

// registry registers handlers on a ServeMux and remembers the types taken:
// ServeMux panics on a duplicate, and we want an error at startup instead.
type registry struct {
	mux   *asynq.ServeMux
	types map[string]bool
}

func newRegistry(mux *asynq.ServeMux) *registry {
	return &registry{mux: mux, types: make(map[string]bool)}
}

// register serves typ with h. An empty type, a nil handler or a type already
// registered is an error.
func (r *registry) register(typ string, h asynq.Handler) error {
	switch {
	case typ == "":
		return errors.New("register handler: empty task type")
	case h == nil:
		return fmt.Errorf("register handler for %q: nil handler", typ)
	case r.types[typ]:
		return fmt.Errorf("register handler for %q: task type already registered", typ)
	}
	r.types[typ] = true
	r.mux.Handle(typ, h)
	return nil
}
