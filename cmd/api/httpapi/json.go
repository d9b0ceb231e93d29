package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/moim/moim/domain"
)

// validator is implemented by request bodies that check themselves after
// decoding. Validate should return a *domain.Error (usually EINVALID naming
// the field).
type validator interface {
	Validate() error
}

// decode reads a required JSON request body into dst; see decodeBody.
func (s *server) decode(w http.ResponseWriter, r *http.Request, dst any) error {
	return s.decodeBody(w, r, dst, false)
}

// decodeOptional is decode for endpoints whose body may be left out: an
// empty body leaves dst at its zero value (which is still validated).
func (s *server) decodeOptional(w http.ResponseWriter, r *http.Request, dst any) error {
	return s.decodeBody(w, r, dst, true)
}

// decodeBody decodes exactly one JSON value into dst, rejecting unknown
// fields, and calls dst.Validate when dst has one. Every failure is a
// *domain.Error naming what was wrong (and the field when there is one),
// except read failures below HTTP, which are internal.
//
// The body is capped here as well as by the middleware so decode stays safe
// on a route mounted outside the usual chain; nesting the caps costs nothing.
func (s *server) decodeBody(w http.ResponseWriter, r *http.Request, dst any, allowEmpty bool) error {
	body := bufio.NewReader(http.MaxBytesReader(w, r.Body, s.bodyLimit))
	if _, err := body.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return s.emptyBody(dst, allowEmpty)
		}
		return s.decodeError(err, true)
	}
	// Checked only once a body is known to exist: a bodyless POST from a
	// client that sends no Content-Type is fine where the body is optional.
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return domain.Errorf(codeUnsupportedMediaType, "Content-Type must be application/json.")
	}
	nul := &nulScanner{r: body}
	dec := json.NewDecoder(nul)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) { // only whitespace was sent
			return s.emptyBody(dst, allowEmpty)
		}
		return s.decodeError(err, nul.readErr != nil)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return s.decodeError(err, true)
		}
		return domain.Errorf(domain.EINVALIDJSON, "Request body must contain a single JSON value.")
	}
	// Validation goes first: a field check that refuses control characters
	// names the field, which this catch-all cannot.
	if err := validate(dst); err != nil || !nul.found {
		return err
	}
	return domain.Errorf(domain.EINVALID, msgNUL)
}

// nulScanner passes a JSON text through and notes whether any string in it
// holds a NUL character. JSON can only carry one as the escape \u0000 (a raw
// control byte is a syntax error), and outside strings a backslash is a
// syntax error too, so following escapes byte by byte is enough; the state
// carries across reads.
type nulScanner struct {
	r     io.Reader
	state int // 0 plain, 1 after a backslash, 2–5 after \u and state-2 zeros
	found bool
	// readErr is the body's read failure other than EOF, which tells a
	// broken connection from a value the decoder refused.
	readErr error
}

func (n *nulScanner) Read(p []byte) (int, error) {
	c, err := n.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		n.readErr = err
	}
	for _, b := range p[:c] {
		switch {
		case n.state == 0:
			if b == '\\' {
				n.state = 1
			}
		case n.state == 1 && b == 'u', n.state >= 2 && b == '0':
			n.state++
			if n.state == 6 {
				n.found, n.state = true, 0
			}
		default: // the escape was another character
			n.state = 0
		}
	}
	return c, err
}

// emptyBody handles a request that sent no JSON value.
func (s *server) emptyBody(dst any, allowEmpty bool) error {
	if !allowEmpty {
		return domain.Errorf(domain.EINVALID, "Request body is required.")
	}
	return validate(dst)
}

// validate calls dst.Validate when it has one. A plain error from Validate is
// still the client's fault, so it becomes EINVALID with a generic message
// (its text is kept as the cause for logs only).
func validate(dst any) error {
	v, ok := dst.(validator)
	if !ok {
		return nil
	}
	err := v.Validate()
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	return &domain.Error{Code: domain.EINVALID, Message: "Invalid request.", Err: err}
}

// decodeError turns an encoding/json or body-read error into a client error;
// readFailed says the body could not be read, which is not the client's
// fault unless the body was too large.
func (s *server) decodeError(err error, readFailed bool) error {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		invalidUm *json.InvalidUnmarshalError
		timeErr   *time.ParseError
	)
	switch {
	case errors.As(err, &tooLarge):
		return &domain.Error{Code: domain.ETOOLARGE,
			Message: fmt.Sprintf("Request body must not exceed %d bytes.", tooLarge.Limit), Err: err}
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return &domain.Error{Code: domain.EINVALIDJSON, Message: "Request body is not valid JSON.", Err: err}
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return &domain.Error{Code: domain.EINVALID,
				Message: fmt.Sprintf("Request body must be a JSON %s.", jsonKind(typeErr.Type)), Err: err}
		}
		return &domain.Error{Code: domain.EINVALID, Field: typeErr.Field,
			Message: fmt.Sprintf("Field %q must be a JSON %s.", typeErr.Field, jsonKind(typeErr.Type)), Err: err}
	case errors.As(err, &invalidUm):
		return fmt.Errorf("decode request body: %w", err) // a programming error: internal
	case errors.As(err, &timeErr):
		return &domain.Error{Code: domain.EINVALID,
			Message: fmt.Sprintf("%q is not a time: write RFC 3339, such as 2026-05-02T12:30:00+09:00.", timeErr.Value), Err: err}
	}
	// A value that decodes itself (UnmarshalText of an enum) says what was
	// wrong, in the client's terms.
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	// encoding/json has no typed error for unknown fields; its message is
	// `json: unknown field "name"` and has been stable since Go 1.10.
	if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, uerr := strconv.Unquote(rest)
		if uerr != nil {
			field = rest
		}
		return &domain.Error{Code: domain.EINVALID, Field: field,
			Message: fmt.Sprintf("Unknown field %q.", field), Err: err}
	}
	if readFailed {
		return fmt.Errorf("read request body: %w", err)
	}
	// Any other failure came from a value's own decoder (a time sent as a
	// number, say): the body is at fault.
	return &domain.Error{Code: domain.EINVALID, Message: "Request body holds a value of the wrong form.", Err: err}
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	default:
		return "value"
	}
}

// isJSONContentType reports whether a Content-Type header names JSON
// (parameters such as charset are allowed).
func isJSONContentType(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && mt == "application/json"
}

// writeJSON answers v as JSON with the given status. The body is encoded
// before the header is written so an encoding failure can still be a 500.
func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := marshalJSON(v)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "encode response",
			slog.String("request_id", domain.RequestID(r.Context())), slog.Any("err", err))
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"Internal error."}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
