package httpapi

import (
	"log/slog"
	"net/http"
)

// Envelope serves mux, answering the errors mux writes itself (404 for an
// unknown path, 405 for a wrong method) in the JSON envelope instead of
// plain text.
func Envelope(mux *http.ServeMux, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(&envelopeWriter{ResponseWriter: w, r: r, log: log}, r)
	})
}

// envelopeWriter replaces a plain-text error with the envelope.
type envelopeWriter struct {
	http.ResponseWriter
	r        *http.Request
	log      *slog.Logger
	replaced bool
}

func (w *envelopeWriter) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		w.replaced = true
		WriteError(w.ResponseWriter, w.r, w.log, Errorf(CodeNotFound, "no such path: "+w.r.URL.Path))
	case http.StatusMethodNotAllowed:
		w.replaced = true
		WriteError(w.ResponseWriter, w.r, w.log, Errorf(CodeMethod, w.r.Method+" is not allowed on "+w.r.URL.Path))
	default:
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *envelopeWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}
