package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moim/moim/domain"
)

// readyTimeout bounds each dependency ping of /readyz, well under a load
// balancer's usual probe timeout.
const readyTimeout = 2 * time.Second

// registerHealthRoutes mounts the probes and the metrics endpoint.
func (s *server) registerHealthRoutes(r chi.Router, reg *prometheus.Registry) {
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelError),
	}))
}

type statusResponse struct {
	Status string `json:"status"`
}

// handleHealthz says the process is alive. It does no I/O on purpose: a
// database outage must not make the orchestrator restart every API process.
func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, statusResponse{Status: "ok"})
}

// handleReadyz says whether this process can serve traffic: the database and
// Redis both answer a ping. The answer names what is down but never how it
// is reached; the errors themselves go to the log.
func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var dbErr, redisErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		pctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		dbErr = s.db.PingContext(pctx)
	})
	wg.Go(func() {
		pctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		redisErr = s.redis.Ping(pctx).Err()
	})
	wg.Wait()

	var msg string
	switch {
	case dbErr != nil && redisErr != nil:
		msg = "database and redis unreachable"
	case dbErr != nil:
		msg = "database unreachable"
	case redisErr != nil:
		msg = "redis unreachable"
	default:
		s.writeJSON(w, r, http.StatusOK, statusResponse{Status: "ready"})
		return
	}
	s.logger.WarnContext(ctx, "not ready",
		slog.String("request_id", domain.RequestID(ctx)),
		slog.Any("db_err", dbErr), slog.Any("redis_err", redisErr))
	s.writeError(w, r, domain.Errorf(domain.EUNAVAILABLE, "%s", msg))
}
