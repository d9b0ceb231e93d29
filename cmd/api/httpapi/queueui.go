package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
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
