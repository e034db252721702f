// Package queryapi serves the lookups of Presence over HTTP: batch status
// queries and single-user status, read from Redis in one pipelined round
// trip per request.
//
// Metrics (namespace presence, subsystem queryapi):
//
//	presence_queryapi_requests_total{route,code}  requests answered
//	presence_queryapi_request_seconds{route}      time to answer
//	presence_queryapi_lookups_total{result}       users looked up, by result:
//	                                              online, offline, unknown
package queryapi

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/httpapi"
)

// MaxBatch is the most users one status query may ask for.
const MaxBatch = 500

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// Store is where statuses are read. Required.
	Store *redisstore.Store
	// Logger receives the server's logs (slog.Default()).
	Logger *slog.Logger
	// Registry receives the server's metrics and is served on /metrics
	// (a new registry when nil).
	Registry *prometheus.Registry
	// Probes are checked by /readyz besides Redis.
	Probes []httpapi.Probe
	// Gate, when set, is checked before each lookup; while it fails (the
	// state is being rebuilt) lookups answer 503 not_ready rather than
	// answers that may be wrong.
	Gate httpapi.Probe
}

// Server is the query API.
type Server struct {
	gate    httpapi.Probe
	store   *redisstore.Store
	log     *slog.Logger
	metrics *metrics
	handler http.Handler
}

// New returns a Server; its Handler serves the API, /healthz, /readyz and
// /metrics.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("queryapi: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{gate: cfg.Gate, store: cfg.Store, log: cfg.Logger.With("component", "queryapi"), metrics: m}

	r := chi.NewRouter()
	r.Post("/v1/apps/{app}/status/query", s.instrument("status_query", s.queryStatuses))
	r.Get("/v1/apps/{app}/users/{user}/status", s.instrument("user_status", s.userStatus))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, r, s.log, httpapi.Errorf(httpapi.CodeNotFound, "no such path: "+r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, r, s.log, httpapi.Errorf(httpapi.CodeMethod, r.Method+" is not allowed on "+r.URL.Path))
	})
	httpapi.Ops(r, cfg.Registry, append([]httpapi.Probe{cfg.Store.Ping}, cfg.Probes...)...)
	s.handler = r
	return s, nil
}

// Handler serves the API.
func (s *Server) Handler() http.Handler { return s.handler }

// pathParam returns a path parameter, unescaped: ids may hold '/' or '%'
// when the client escapes them.
func pathParam(r *http.Request, name string) (string, error) {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v, nil
	}
	u, err := url.PathUnescape(v)
	if err != nil {
		return "", httpapi.Errorf(httpapi.CodeInvalid, "bad escape in "+name+" id")
	}
	return u, nil
}

// appParam returns the app of the path, checked.
func appParam(r *http.Request) (string, error) {
	app, err := pathParam(r, "app")
	if err != nil {
		return "", err
	}
	if err := schemas.ValidateApp(app); err != nil {
		return "", httpapi.Errorf(httpapi.CodeInvalid, err.Error())
	}
	return app, nil
}
