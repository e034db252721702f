package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presence-im/presence/service/cli"
)

// ShutdownTimeout bounds how long a server waits for requests in flight
// when it stops.
const ShutdownTimeout = 10 * time.Second

// Probe reports whether a dependency is usable; nil means ready.
type Probe func(ctx context.Context) error

// Router is where Ops adds its routes: an *http.ServeMux or a chi router.
type Router interface {
	Handle(pattern string, h http.Handler)
}

// Metrics adds /metrics (gatherer's metrics) to r; a server whose metrics
// have an address of their own serves them with ServeMetrics instead.
func Metrics(r Router, gatherer prometheus.Gatherer) {
	r.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
}

// Health adds /healthz (the process answers) and /readyz (every probe
// passes) to r.
func Health(r Router, probes ...Probe) {
	r.Handle("/healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	r.Handle("/readyz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		for _, p := range probes {
			if err := p(ctx); err != nil {
				WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
					"status": "not ready",
					"error":  Errorf(CodeNotReady, err.Error()),
				})
				return
			}
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}))
}

// NewRegistry returns a metrics registry holding the Go runtime and process
// collectors and presence_build_info{version,goversion} (always 1: the
// binary's cli.Version and Go release), for a binary's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "presence", Name: "build_info",
			Help:        "Always 1: the version of this binary and the Go release it was built with.",
			ConstLabels: prometheus.Labels{"version": cli.Version(), "goversion": runtime.Version()}},
			func() float64 { return 1 }))
	return reg
}

// Listen opens addr, so that callers learn a bad address before serving.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return l, nil
}

// Serve serves h on l with the default Limits until ctx ends, then shuts
// down within ShutdownTimeout.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	return Limits{}.Serve(ctx, l, h, log)
}

// ServeMetrics serves gatherer's metrics alone, on /metrics of l, until
// ctx ends: the metrics of a server given an address of their own.
func ServeMetrics(ctx context.Context, l net.Listener, gatherer prometheus.Gatherer, log *slog.Logger) error {
	mux := http.NewServeMux()
	Metrics(mux, gatherer)
	return Serve(ctx, l, Envelope(mux, log), log)
}
