// Package httpapi is the HTTP plumbing every Presence server shares: one
// coded error type and the table from code to status, the JSON envelope,
// request decoding with limits, the health, readiness and metrics
// endpoints, and a server that shuts down within a time limit.
package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
)

// Error codes. Each maps to one HTTP status in statusOf.
const (
	CodeInvalid     = "invalid"
	CodeTooMany     = "too_many_users"
	CodeTooManySubs = "too_many_subscriptions" // over a subscriber's cap
	CodeNotFound    = "not_found"
	CodeTooLarge    = "too_large"
	CodeUnavailable = "unavailable"
	CodeInternal    = "internal"
	CodeMethod      = "method_not_allowed"
	CodeNotReady    = "not_ready"
	// Missing or invalid credentials; answered with WWW-Authenticate.
	CodeUnauthorized = "unauthorized"
	// Valid credentials that do not allow the request.
	CodeForbidden = "forbidden"
	// A session id already open on this gateway, for the same user.
	CodeSessionExists = "session_exists"
	// Over a rate limit; the answer has a Retry-After header (seconds).
	CodeRateLimited = "rate_limited"
	// Over the cap of a user's sockets on one gateway.
	CodeTooManySockets = "too_many_sockets"
	// A watch cursor the service can no longer serve: start again
	// without one.
	CodeCursorExpired = "cursor_expired"
)

var statusOf = map[string]int{
	CodeInvalid:     http.StatusBadRequest,
	CodeTooMany:     http.StatusBadRequest,
	CodeTooManySubs: http.StatusBadRequest,
	CodeNotFound:    http.StatusNotFound,
	CodeTooLarge:    http.StatusRequestEntityTooLarge,
	CodeUnavailable: http.StatusServiceUnavailable,
	CodeInternal:    http.StatusInternalServerError,
	CodeMethod:      http.StatusMethodNotAllowed,
	CodeNotReady:    http.StatusServiceUnavailable,

	CodeUnauthorized: http.StatusUnauthorized,
	CodeForbidden:    http.StatusForbidden,

	CodeSessionExists:  http.StatusConflict,
	CodeRateLimited:    http.StatusTooManyRequests,
	CodeTooManySockets: http.StatusTooManyRequests,
	CodeCursorExpired:  http.StatusGone,
}

// StatusOf is the HTTP status an error of code is answered with, and
// whether code is in the table.
func StatusOf(code string) (int, bool) {
	status, ok := statusOf[code]
	return status, ok
}

// Codes lists every error code, sorted: what the servers' OpenAPI
// documents must describe.
func Codes() []string { return slices.Sorted(maps.Keys(statusOf)) }

// Error is an error a client can act on: a code from the table above and a
// message for people.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with code and message.
func Errorf(code, message string) *Error { return &Error{Code: code, Message: message} }

// WriteError writes err in the envelope {"error":{"code","message"}}. An
// error that is not an *Error is answered as internal, without its text.
// Errors answered with a 5xx are logged whole, causes included. A 401
// carries "WWW-Authenticate: Bearer".
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = Errorf(CodeInternal, "internal error")
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="presence"`)
	}
	if status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	WriteJSON(w, status, struct {
		Error *Error `json:"error"`
	}{e})
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteEncoded writes body, a JSON value already encoded as WriteJSON
// would (followed by a newline), with status.
func WriteEncoded(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
