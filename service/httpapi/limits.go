package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults of Limits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	// DefaultWriteTimeout leaves room for a long poll of 30 s and a write
	// that waits 10 s for Kafka.
	DefaultWriteTimeout   = 60 * time.Second
	DefaultIdleTimeout    = 120 * time.Second
	DefaultMaxHeaderBytes = 64 << 10
)

// Limits bounds what one connection may hold of a server, so that a client
// that sends slowly, reads slowly or never sends again cannot keep a
// connection and its goroutine for ever. Zero values mean the defaults.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers
	// (DefaultReadHeaderTimeout).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included
	// (DefaultReadTimeout): a body trickled in is cut when it runs out.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the
	// end of its answer (DefaultWriteTimeout). A handler that hijacks the
	// connection (a WebSocket) calls NoDeadlines first: net/http clears
	// the deadlines when it hands the connection over, but only after it
	// has flushed the answer's header (101 Switching Protocols), which a
	// passed deadline would lose.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection waits for its
	// next request (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers, request line included
	// (DefaultMaxHeaderBytes); beyond it the server answers 431.
	MaxHeaderBytes int
}

func (lim Limits) withDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&lim.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&lim.ReadTimeout, DefaultReadTimeout)
	def(&lim.WriteTimeout, DefaultWriteTimeout)
	def(&lim.IdleTimeout, DefaultIdleTimeout)
	if lim.MaxHeaderBytes <= 0 {
		lim.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return lim
}

// Serve serves h on l within lim until ctx ends, then shuts down within
// ShutdownTimeout.
func (lim Limits) Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	lim = lim.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down %s: %w", l.Addr(), err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", l.Addr(), err)
	}
	return nil
}

// NoDeadlines clears the read and write deadlines the server set on the
// connection of w, for a handler about to hijack it for longer than a
// request (a WebSocket).
func NoDeadlines(w http.ResponseWriter) error {
	rc := http.NewResponseController(w)
	if err := errors.Join(rc.SetReadDeadline(time.Time{}), rc.SetWriteDeadline(time.Time{})); err != nil {
		return fmt.Errorf("clearing the connection's deadlines: %w", err)
	}
	return nil
}
