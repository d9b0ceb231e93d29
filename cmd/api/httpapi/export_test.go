package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// NewWithRoutes is New with extra routes mounted behind the same middleware,
// so external tests can drive a panicking or slow handler.
func NewWithRoutes(d Deps, extra func(chi.Router)) (http.Handler, func(), error) {
	return newHandler(d, extra)
}
