package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/moim/moim/domain"
)

// Codes only the HTTP layer produces: they describe the request's framing,
// not anything the domain decides.
const (
	codeMethodNotAllowed     = "method_not_allowed"
	codeUnsupportedMediaType = "unsupported_media_type"
	codeRateLimited          = "rate_limited"
	codeCrossSite            = "cross_site_request"
)

// statusOf is the one table from error code to HTTP status. A code missing
// here answers 500, so a new domain code is noticed rather than misreported.
func statusOf(code string) int {
	switch code {
	case domain.EINVALID, domain.EINVALIDJSON,
		domain.ETYPEMISMATCH, domain.EIMAGETOOSMALL, domain.ECORRUPTIMAGE,
		domain.ECODEWRONG, domain.ECODEEXPIRED:
		return http.StatusBadRequest
	case domain.EOAUTHSTATE, domain.EOAUTHCODE:
		return http.StatusBadRequest
	case domain.EINVALIDIDTOKEN:
		return http.StatusUnauthorized
	case domain.EOAUTHDENIED:
		return http.StatusForbidden
	case domain.ELINKREQUIRED, domain.EIDENTITYTAKEN, domain.EPROVIDERLINKED, domain.ELASTLOGINMETHOD:
		return http.StatusConflict
	case domain.EPROVIDERFAILED:
		return http.StatusBadGateway
	case domain.EUNAUTHORIZED, domain.EINVALIDSIGNATURE, domain.ETOKENEXPIRED, domain.ETOKENREVOKED, domain.EINVALIDTOKEN:
		return http.StatusUnauthorized
	case domain.EFORBIDDEN, domain.EWRONGCODE, codeCrossSite, domain.ENOTINVITED,
		domain.ENOTTASKHELPER, domain.EEMAILUNVERIFIED:
		return http.StatusForbidden
	case domain.ENOTFOUND:
		return http.StatusNotFound
	case codeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case domain.ECONFLICT, domain.EEMAILTAKEN, domain.ENICKNAMETAKEN, domain.EALREADYWAITING,
		domain.EROOMCLOSED, domain.ECAPACITYBELOWCOUNT, domain.EALREADYJOINED, domain.ENOTPARTICIPATING,
		domain.EHOSTCANNOTLEAVE, domain.EREQUESTPENDING, domain.EALREADYEVALUATED, domain.ENOTOPENYET,
		domain.EALREADYUPLOADED, domain.EUPLOADMISSING, domain.EALREADYCOMPLETED, domain.EUPLOADEXPIRED,
		domain.EINSUFFICIENTPOINTS, domain.EMISSIONNOTOPEN, domain.EMISSIONFULL, domain.EMISSIONNOTONGOING,
		domain.EOUTSIDEWINDOW, domain.EQUOTAREACHED, domain.EIMAGEUSED,
		domain.ETASKNOTSTANDBY, domain.ETASKINCOMPLETE, domain.ETASKNOTMATCHING,
		domain.EALREADYANSWERED, domain.EINVITATIONEXPIRED, domain.ETASKFULL,
		domain.EALREADYREVIEWED, domain.EREVIEWCLOSED,
		domain.ETASKNOTMATCHED, domain.EALREADYSTARTED, domain.EHELPERNOTDOING, domain.EALREADYDONE,
		domain.ETASKNOTDONE, domain.ECODEUSED, domain.EALREADYVERIFIED:
		return http.StatusConflict
	case domain.ETOOLARGE, domain.ETOOMANYPIXELS:
		return http.StatusRequestEntityTooLarge
	case codeUnsupportedMediaType, domain.EUNSUPPORTEDTYPE:
		return http.StatusUnsupportedMediaType
	case codeRateLimited, domain.ETOOMANYATTEMPTS, domain.ESENDLIMIT:
		return http.StatusTooManyRequests
	case domain.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	default: // domain.EINTERNAL and anything unknown
		return http.StatusInternalServerError
	}
}

// errorEnvelope is the wire shape of every error answer.
type errorEnvelope struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// writeError answers err in the error envelope. Domain errors carry their own
// client text; anything else is logged once with the request id and answered
// with a generic 500 so internals never reach the client.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	if errors.Is(err, context.DeadlineExceeded) && domain.ErrorCode(err) == domain.EINTERNAL {
		// The request deadline ran out somewhere below us: that is an
		// overload or a slow dependency, not a bug, so say so and let the
		// client retry.
		s.logger.WarnContext(ctx, "request timed out",
			slog.String("request_id", domain.RequestID(ctx)), slog.Any("err", err))
		err = domain.Errorf(domain.EUNAVAILABLE, "Request timed out.")
	}
	if domain.ErrorCode(err) == domain.EINTERNAL && dependencyDown(err) {
		s.logger.WarnContext(ctx, "dependency unavailable",
			slog.String("request_id", domain.RequestID(ctx)),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Any("err", err))
		err = &domain.Error{Code: domain.EUNAVAILABLE, Message: msgUnavailable, Err: err}
	}
	code := domain.ErrorCode(err)
	detail := errorDetail{Code: code, Message: domain.ErrorMessage(err)}
	var de *domain.Error
	if errors.As(err, &de) {
		detail.Field = de.Field
	}
	if code == domain.EINTERNAL {
		s.logger.ErrorContext(ctx, "internal error",
			slog.String("request_id", domain.RequestID(ctx)),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Any("err", err))
		detail = errorDetail{Code: domain.EINTERNAL, Message: "Internal error."}
	}
	if code == domain.EUNAVAILABLE && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	s.writeJSON(w, r, statusOf(code), errorEnvelope{Error: detail})
}

// handleNotFound answers routes chi does not know.
func (s *server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, domain.Errorf(domain.ENOTFOUND, "Not found."))
}

// handleMethodNotAllowed answers a known path asked with the wrong method.
// chi does not hand its list of allowed methods to a custom handler, so the
// Allow header is rebuilt by asking the router which methods match.
func (s *server) handleMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if s.router.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
	}
	s.writeError(w, r, domain.Errorf(codeMethodNotAllowed, "Method not allowed."))
}
