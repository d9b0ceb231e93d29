package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// pingsPath is the collection of operator pings.
const pingsPath = "/v1/admin/pings"

// registerPingRoutes mounts the operators' end-to-end probe: a ping is
// recorded with its task in the outbox, relayed to Redis, and marked
// processed by a worker, so one POST and a few GETs exercise the whole loop.
func (s *server) registerPingRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.requireAdmin)
		r.Post(pingsPath, s.handlePingCreate)
		r.Get(pingsPath+"/{id}", s.handlePingGet)
	})
}

// pingCreateRequest is the optional body of POST /v1/admin/pings.
type pingCreateRequest struct {
	// Queue picks the queue the ping task goes through, to probe one queue's
	// workers; empty means the default queue.
	Queue string `json:"queue"`
}

// pingResponse is a ping on the wire.
type pingResponse struct {
	ID          string     `json:"id"`
	RequestID   string     `json:"request_id"`
	CreatedAt   time.Time  `json:"created_at"`
	ProcessedAt *time.Time `json:"processed_at"`
}

func newPingResponse(p *domain.Ping) pingResponse {
	resp := pingResponse{ID: p.ID, RequestID: p.RequestID, CreatedAt: p.CreatedAt.UTC()}
	if p.ProcessedAt != nil {
		t := p.ProcessedAt.UTC()
		resp.ProcessedAt = &t
	}
	return resp
}

// handlePingCreate records a ping and its task in one transaction and
// answers 202: the work happens later, in a worker.
func (s *server) handlePingCreate(w http.ResponseWriter, r *http.Request) {
	var req pingCreateRequest
	if err := s.decodeOptional(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	queue, err := s.pingQueue(req.Queue)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	// Microseconds are what every dialect stores, so the 202 body equals
	// what a later GET reads back.
	p := domain.Ping{RequestID: domain.RequestID(ctx), CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	err = s.relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := (db.Pings{}).Create(ctx, tx, &p); err != nil {
			return fmt.Errorf("create ping: %w", err)
		}
		task, err := jobs.NewPingTask(p.ID, queue)
		if err != nil {
			return fmt.Errorf("build ping task: %w", err)
		}
		if err := jobs.Enqueue(ctx, tx, task); err != nil {
			return fmt.Errorf("enqueue ping task: %w", err)
		}
		return nil
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", pingsPath+"/"+url.PathEscape(p.ID))
	s.writeJSON(w, r, http.StatusAccepted, newPingResponse(&p))
}

// pingQueue checks the requested queue against the known ones. An empty
// queue means the default queue, or the first known queue when this
// deployment has no "default" (so the probe goes where a worker listens).
func (s *server) pingQueue(q string) (string, error) {
	if q == "" {
		if slices.Contains(s.queues, jobs.QueueDefault) {
			return jobs.QueueDefault, nil
		}
		return s.queues[0], nil
	}
	if !slices.Contains(s.queues, q) {
		return "", domain.FieldErrorf(domain.EINVALID, "queue",
			"Unknown queue %q; known queues: %s.", q, strings.Join(s.queues, ", "))
	}
	return q, nil
}

// handlePingGet answers a ping, with processed_at once a worker handled it.
func (s *server) handlePingGet(w http.ResponseWriter, r *http.Request) {
	p, err := (db.Pings{}).FindByID(r.Context(), s.db, chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newPingResponse(p))
}
