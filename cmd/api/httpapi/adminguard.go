package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/moim/moim/domain"
)

// isAdminPath reports the paths behind the operator's credentials that a
// browser may hold: the queue UI, the mailbox and the admin API.
func isAdminPath(p string) bool {
	return p == "/admin" || strings.HasPrefix(p, "/admin/") || strings.HasPrefix(p, "/v1/admin/")
}

// guardAdmin protects the admin pages from other sites. A browser that has
// the Basic credentials cached sends them with any request to this origin,
// including one a foreign page makes (a form POST, or a fetch of
// text/plain, which needs no CORS preflight), and the queue UI acts on such
// POSTs (pausing a queue, deleting tasks). So every answer forbids framing,
// and a state-changing request a browser marks as coming from another site
// is refused before the credentials are looked at. Requests with no such
// marks (curl, scripts) and requests with a bearer token, which a browser
// never attaches by itself, pass.
func (s *server) guardAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isAdminPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if _, bearer := bearerToken(r); !bearer && s.crossSite(r) {
				s.writeError(w, r, domain.Errorf(codeCrossSite, "Cross-site requests to the admin pages are refused."))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// crossSite reports whether the browser says r comes from another origin:
// Sec-Fetch-Site other than same-origin or none (typed by the user), or an
// Origin whose host is not the one the request was sent to. Behind a trusted
// proxy that host may be in X-Forwarded-Host.
func (s *server) crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return true // "null" (a sandboxed page, a file) or garbage
	}
	if strings.EqualFold(u.Host, r.Host) {
		return false
	}
	if peer, ok := parseAddr(r.RemoteAddr); ok && isTrusted(peer, s.trustedProxies) {
		if fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ","); fwd != "" {
			return !strings.EqualFold(u.Host, strings.TrimSpace(fwd))
		}
	}
	return true
}
