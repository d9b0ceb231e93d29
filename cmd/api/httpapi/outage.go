package httpapi

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/domain"
)

// retryAfter is what a 503 tells clients to wait, in seconds: long enough
// not to hammer a dependency that is coming back, short enough that a
// blip costs little.
const retryAfter = "5"

// redisProbeTimeout bounds the ping of the routes that cannot work without
// Redis; a healthy Redis answers in well under a millisecond.
const redisProbeTimeout = time.Second

// msgUnavailable is the client text of an outage.
const msgUnavailable = "A service the API depends on is unavailable; try again shortly."

// dependencyDown reports whether err says a dependency (Redis, the
// database) could not be reached, rather than that a request was wrong or
// the code is: those errors are answered 503 with Retry-After, not 500.
func dependencyDown(err error) bool {
	var opErr *net.OpError
	switch {
	case errors.As(err, &opErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted), errors.Is(err, redis.ErrClosed),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone):
		return true
	}
	// go-redis reports a server that is loading its data or is a replica
	// that lost its primary with these replies.
	msg := err.Error()
	return strings.Contains(msg, "LOADING ") || strings.Contains(msg, "MASTERDOWN ")
}

// redisUp pings Redis for the routes that need it for everything they do.
func (s *server) redisUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, redisProbeTimeout)
	defer cancel()
	if err := s.redis.Ping(ctx).Err(); err != nil {
		return &domain.Error{Code: domain.EUNAVAILABLE, Message: msgUnavailable, Err: err}
	}
	return nil
}

// requireRedis answers 503 before a handler that only works with Redis
// (the queue UI's API) gets to fail in its own way.
func (s *server) requireRedis(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.redisUp(r.Context()); err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}
