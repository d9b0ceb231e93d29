package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moim/moim/domain"
)

// headerRequestID carries the request id in both directions.
const headerRequestID = "X-Request-ID"

// maxRequestIDLen bounds an accepted incoming request id so a client cannot
// bloat every log line of its request.
const maxRequestIDLen = 128

type ctxKey int

const clientIPKey ctxKey = iota

// clientIP returns the address set by the realIP middleware, or "".
func clientIP(ctx context.Context) string {
	ip, ok := ctx.Value(clientIPKey).(netip.Addr)
	if !ok || !ip.IsValid() {
		return ""
	}
	return ip.String()
}

// requestID takes the caller's X-Request-ID when it is well formed (so a
// request can be followed through a proxy or another service) and otherwise
// makes a new one; either way it is echoed and put in the context for logs
// and for the tasks the request causes.
func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(headerRequestID)
		if !validRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set(headerRequestID, id)
		next.ServeHTTP(w, r.WithContext(domain.WithRequestID(r.Context(), id)))
	})
}

// validRequestID reports whether id is 1–128 characters of [A-Za-z0-9._:-],
// a set that is safe in headers, logs and task metadata.
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// realIP records the client's address. X-Forwarded-For is read only when the
// TCP peer is one of our trusted proxies, because anyone else can write any
// value into it.
func (s *server) realIP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := realClientIP(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), s.trustedProxies)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey, ip)))
	})
}

// realClientIP returns the peer address unless the peer is trusted; then it
// walks X-Forwarded-For right to left (each proxy appends the address it got
// the request from) and returns the first entry that is not a trusted proxy.
// A malformed entry stops the walk at the last address we could vouch for,
// since anything to its left may have been forged.
func realClientIP(remoteAddr string, xff []string, trusted []netip.Prefix) netip.Addr {
	peer, ok := parseAddr(remoteAddr)
	if !ok || !isTrusted(peer, trusted) {
		return peer
	}
	last := peer
	for i := len(xff) - 1; i >= 0; i-- {
		entries := strings.Split(xff[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			e := strings.TrimSpace(entries[j])
			if e == "" {
				continue
			}
			ip, ok := parseAddr(e)
			if !ok {
				return last
			}
			if !isTrusted(ip, trusted) {
				return ip
			}
			last = ip
		}
	}
	return last
}

// parseAddr parses "ip", "ip:port" or "[ip]:port", folding IPv4-mapped IPv6
// to IPv4 and dropping zones so one host has one spelling (otherwise
// ::ffff:10.0.0.1 could slip past a 10.0.0.0/8 check).
func parseAddr(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	return ip.Unmap().WithZone(""), true
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// routeLabel returns the chi route pattern the request matched, so logs and
// metrics group by route and not by raw path (whose ids would make label
// cardinality unbounded). Requests no route matched share "unmatched".
func routeLabel(r *http.Request) string {
	if rctx := chi.RouteContext(r.Context()); rctx != nil {
		if p := rctx.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// accessLog writes one line per request once it is answered.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		ctx := r.Context()
		s.logger.LogAttrs(ctx, slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("route", routeLabel(r)),
			slog.String("path", r.URL.Path),
			slog.Int("status", statusWritten(ww)),
			slog.Int("bytes", ww.BytesWritten()),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote_ip", clientIP(ctx)),
			slog.String("request_id", domain.RequestID(ctx)),
		)
	})
}

// statusWritten is the status the client saw: a handler that wrote nothing
// answered 200.
func statusWritten(ww middleware.WrapResponseWriter) int {
	if st := ww.Status(); st != 0 {
		return st
	}
	return http.StatusOK
}

// httpMetrics are the per-route request counters and latencies.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "moim_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method and route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
}

// collectors lists what must be registered (and unregistered on close).
func (m *httpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration}
}

// instrument records the request in the HTTP metrics.
func (m *httpMetrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		method, route := methodLabel(r.Method), routeLabel(r)
		m.requests.WithLabelValues(method, route, strconv.Itoa(statusWritten(ww))).Inc()
		// A live stream lasts as long as its client listens; its time
		// would drown the latencies (it has metrics of its own).
		if ww.Header().Get("Content-Type") != eventStreamType {
			m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		}
	})
}

// methodLabel keeps the method label bounded: clients may send any token.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	default:
		return "OTHER"
	}
}

// recoverer turns a panic into a logged stack and a 500 in the usual error
// shape. It sits inside the access log and metrics so they record the 500.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if err, ok := rec.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(rec) // net/http's way to abort a response; not a bug
			}
			ctx := r.Context()
			s.logger.ErrorContext(ctx, "panic serving request",
				slog.String("request_id", domain.RequestID(ctx)),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Any("panic", rec),
				slog.String("stack", string(debug.Stack())))
			if ww, ok := w.(middleware.WrapResponseWriter); ok && ww.Status() != 0 {
				return // the status is already out; nothing more can be said
			}
			s.writeJSON(w, r, http.StatusInternalServerError,
				errorEnvelope{Error: errorDetail{Code: domain.EINTERNAL, Message: "Internal error."}})
		}()
		next.ServeHTTP(w, r)
	})
}

// timeout gives every request a context deadline so a slow dependency cannot
// hold a connection and a goroutine forever.
func timeout(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// bodyLimit caps every request body; reading past it fails with
// *http.MaxBytesError, which decode answers as 413.
func bodyLimit(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = &cappedBody{ReadCloser: http.MaxBytesReader(w, r.Body, n), raw: r.Body}
			next.ServeHTTP(w, r)
		})
	}
}

// cappedBody is a body under bodyLimit's cap that keeps the body below
// it, so one route can set its own cap.
type cappedBody struct {
	io.ReadCloser
	raw io.ReadCloser
}

// raiseBodyLimit replaces bodyLimit's cap with n for the routes it wraps
// (an upload), before anything has read the body; every other route keeps
// the small one.
func raiseBodyLimit(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body := r.Body
			if c, ok := body.(*cappedBody); ok {
				body = c.raw
			}
			r.Body = http.MaxBytesReader(w, body, n)
			next.ServeHTTP(w, r)
		})
	}
}

// rejectNUL answers 400 to a request whose path or query holds a NUL byte
// (%00). Ids, cursors and filters go to SQL as text, which PostgreSQL
// refuses with NUL in it; no valid value has one, so it is turned away
// here, once, before any handler sees it. JSON bodies are checked by
// decodeBody.
func (s *server) rejectNUL(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.ContainsRune(r.URL.Path, 0) || strings.Contains(r.URL.RawQuery, "%00") {
			s.writeError(w, r, domain.Errorf(domain.EINVALID, msgNUL))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// noStore keeps answers that carry tokens or a member's own account out
// of every cache, the browser's and a shared proxy's alike (RFC 9111).
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// msgNUL is the client's text for any input holding a NUL character.
const msgNUL = "Input must not contain NUL characters."

// corsHandler allows browser calls from the configured origins only.
// Credentials (cookies) are allowed for the event stream alone, whose
// reconnects present the stream cookie (EventSource withCredentials);
// every other call authenticates with an Authorization header, which CORS
// already lets through.
func corsHandler(origins []string) func(http.Handler) http.Handler {
	opts := cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowedHeaders: []string{"Accept", "Authorization", "Content-Type", "Last-Event-ID", headerRequestID},
		ExposedHeaders: []string{headerRequestID, "Location"},
		MaxAge:         300,
	}
	plain := cors.Handler(opts)
	opts.AllowCredentials = true
	withCookies := cors.Handler(opts)
	return func(next http.Handler) http.Handler {
		p, c := plain(next), withCookies(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == streamCookiePath {
				c.ServeHTTP(w, r)
				return
			}
			p.ServeHTTP(w, r)
		})
	}
}

// basicAuth guards the operator endpoints. Both the user and the password
// are compared in constant time, and both always, so timing reveals neither
// which one was wrong nor how much of it matched; comparing SHA-256 digests
// keeps the lengths equal, which subtle.ConstantTimeCompare needs.
type basicAuth struct {
	user, password [sha256.Size]byte
}

func newBasicAuth(user, password string) basicAuth {
	return basicAuth{user: sha256.Sum256([]byte(user)), password: sha256.Sum256([]byte(password))}
}

func (a basicAuth) ok(r *http.Request) bool {
	user, password, present := r.BasicAuth()
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(password))
	match := subtle.ConstantTimeCompare(u[:], a.user[:]) & subtle.ConstantTimeCompare(p[:], a.password[:])
	return present && match == 1
}
