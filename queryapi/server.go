// Package queryapi serves Presence over HTTP: batch status queries,
// single-user status and the statuses of a user's friends, read from Redis
// in one pipelined round trip per request; and the writes of custom status,
// friendships and subscriptions, which are records produced to the
// compacted Kafka topics (never written to Redis here: the processor
// materializes them, so replaying the topics rebuilds them).
//
// While the state in Redis is incomplete (the processor is rebuilding it
// from Kafka, or has never built it), every lookup (status query, user
// status, friends' statuses, subscribe) carries the header
// Presence-Rebuilding: <n>, n the partitions of the state topics not yet
// built, read from Redis at most about once a second. Lookups are still
// answered, from what the rebuild has reached so far, so a client should
// take such an answer as provisional. /readyz does not wait for the
// rebuild: every replica shares the same Redis, so all would go unready
// at once.
//
// Under /compat, package compat serves the seeds' APIs (LeanCloud's
// getOnOffStatus, the Java IM's four user status routes), each one call
// of a route above, in process.
//
// With Config.Auth, every API call needs credentials (see Config.Auth):
// 401 unauthorized without valid ones, 403 forbidden when they do not
// allow the call.
// Requests are limited per app and per user (Config.RateLimits): one
// over a limit is answered 429 rate_limited with a Retry-After header.
//
// When Redis does not answer, lookups answer 503 unavailable and /readyz
// answers 503. When Kafka does not acknowledge a write within the write
// timeout, the write answers 503 unavailable; sending it again as it is
// is safe.
//
// Metrics (namespace presence, subsystem queryapi):
//
//	presence_queryapi_requests_total{route,code}  requests answered
//	presence_queryapi_request_seconds{route}      time to answer
//	presence_queryapi_lookups_total{result}       users looked up, by result:
//	                                              online, offline, unknown
//	presence_queryapi_writes_total{kind,result}   records written to Kafka, by
//	                                              kind (custom_status, friend,
//	                                              subscription, privacy) and
//	                                              result (ok, failed)
//	presence_queryapi_watch_…                     watches and the change feed
//	                                              (package watch)
//	presence_queryapi_rebuilding_partitions       partitions of the state
//	                                              topics not yet built (NaN
//	                                              while Redis does not answer)
//	presence_queryapi_compat_requests_total{route,code}
//	                                              requests of the seeds' APIs
//	                                              (package compat)
//	presence_http_rate_limited_total{server="queryapi",scope}
//	                                              requests refused 429
//	                                              (package ratelimit)
package queryapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/queryapi/compat"
	"github.com/presence-im/presence/queryapi/console"
	"github.com/presence-im/presence/queryapi/watch"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/openapi"
	"github.com/presence-im/presence/service/ratelimit"
)

// MaxBatch is the most users one status query, or one subscription
// request, may name.
const MaxBatch = 500

// DefaultMaxSubscriptions is the default of Config.MaxSubscriptions.
const DefaultMaxSubscriptions = 1000

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// Store is where statuses are read. Required.
	Store *redisstore.Store
	// Brokers are the Kafka seed brokers the writes go to. Required.
	Brokers []string
	// KafkaOpts add franz-go options to the producer: TLS, SASL, hooks.
	KafkaOpts []kgo.Opt
	// WriteTimeout bounds how long a write waits for Kafka before it
	// answers 503 (DefaultWriteTimeout).
	WriteTimeout time.Duration
	// MaxSubscriptions is the most users one subscriber may watch at once
	// (DefaultMaxSubscriptions), enforced atomically in Redis whatever the
	// concurrency (see subscribe).
	MaxSubscriptions int
	// Now is the clock of record timestamps and subscription expiries,
	// and of the cache of the rebuild count (time.Now).
	Now func() time.Time
	// Logger receives the server's logs (slog.Default()).
	Logger *slog.Logger
	// Registry receives the server's metrics and is served on /metrics
	// (a new registry when nil).
	Registry *prometheus.Registry
	// NoMetrics leaves /metrics out of the handler, for metrics served on
	// an address of their own (httpapi.ServeMetrics).
	NoMetrics bool
	// RateLimits limit the requests per app and per user
	// (nil: ratelimit.DefaultScopes; empty: none; ratelimit.Flags makes
	// them from flags).
	RateLimits []ratelimit.Scope
	// Probes are checked by /readyz besides Redis.
	Probes []httpapi.Probe
	// Auth, when set, checks every caller of the API (not of /healthz,
	// /readyz, /metrics, /openapi.json): a key of scope read looks up
	// any user of its app; a key of scope backend writes friends, custom
	// status and subscriptions of any user; a user token looks up any
	// user of its app, and reads or changes its own custom status,
	// subscriptions and friends' statuses only. Nil serves everyone.
	Auth *auth.Authenticator
	// Gate, when set, is checked before each lookup; while it fails (the
	// state is being rebuilt) lookups answer 503 not_ready rather than
	// answers that may be wrong. Writes go to Kafka and are not gated.
	Gate httpapi.Probe
	// WatchWindow is how long the changes watches are served from are
	// kept (watch.DefaultWindow): a cursor older than that may be
	// expired. WatchMaxChanges bounds them (watch.DefaultMaxChanges).
	WatchWindow     time.Duration
	WatchMaxChanges int
	// ProcessorGroup is the processors' consumer group, whose members
	// GET /v1/ops names per partition (DefaultProcessorGroup).
	ProcessorGroup string
}

// DefaultProcessorGroup is the processors' default consumer group (the
// processor's DefaultGroup).
const DefaultProcessorGroup = "presence-processor"

// Server is the query API. Close it when done.
type Server struct {
	gate         httpapi.Probe
	auth         *auth.Authenticator
	rebuilding   *rebuilding
	store        *redisstore.Store
	kafka        *kgo.Client
	kafkaOpts    []kgo.Opt     // of the Kafka clients, for the reads of GET /v1/ops
	opsRead      chan struct{} // one read of GET /v1/ops at a time
	writeTimeout time.Duration
	maxSubs      int
	now          func() time.Time
	log          *slog.Logger
	metrics      *metrics
	router       chi.Router // the routes, which a test compares with the OpenAPI document
	handler      http.Handler
	buffers      buffers
	lookups      statusBuffers
	// processorGroup is Config.ProcessorGroup.
	processorGroup string
	// feed follows presence.changes for watches until stopFeed; fed is
	// closed once it has stopped.
	feed     *watch.Feed
	stopFeed context.CancelFunc
	fed      chan struct{}
}

// New returns a Server; its Handler serves the API, /healthz, /readyz,
// /metrics and /openapi.json (the document of every route here, from
// service/openapi: a route added below must be added to it, as the test
// of the routes says).
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("queryapi: no store")
	case len(cfg.Brokers) == 0:
		return nil, errors.New("queryapi: no kafka brokers")
	case cfg.MaxSubscriptions < 0 || cfg.WriteTimeout < 0:
		return nil, fmt.Errorf("queryapi: negative max subscriptions (%d) or write timeout (%s)", cfg.MaxSubscriptions, cfg.WriteTimeout)
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	rb := &rebuilding{store: cfg.Store, now: cfg.Now}
	m, err := newMetrics(cfg.Registry, rb.gauge)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(ProducerOpts(cfg.Brokers), cfg.KafkaOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("queryapi: creating kafka client: %w", err)
	}
	feed, err := watch.New(watch.Config{Brokers: cfg.Brokers, KafkaOpts: cfg.KafkaOpts, Window: cfg.WatchWindow,
		MaxChanges: cfg.WatchMaxChanges, Logger: cfg.Logger, Registerer: cfg.Registry})
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("queryapi: %w", err)
	}
	s := &Server{
		gate: cfg.Gate, auth: cfg.Auth, rebuilding: rb, store: cfg.Store, kafka: cl,
		kafkaOpts: append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.KafkaOpts...), opsRead: make(chan struct{}, 1),
		writeTimeout: cfg.WriteTimeout, maxSubs: cfg.MaxSubscriptions, now: cfg.Now,
		log: cfg.Logger.With("component", "queryapi"), metrics: m, feed: feed, fed: make(chan struct{}),
		processorGroup: cmp.Or(cfg.ProcessorGroup, DefaultProcessorGroup),
	}

	r := chi.NewRouter()
	r.Post("/v1/apps/{app}/status/query", s.instrument("status_query", s.guard(auth.Lookup, s.lookup(s.queryStatuses))))
	r.Post("/v1/apps/{app}/status/watch", s.instrument("status_watch", s.guard(auth.Lookup, s.lookup(s.watchStatuses))))
	r.Get("/v1/apps/{app}/users/{user}/status", s.instrument("user_status", s.guard(auth.Lookup, s.lookup(s.userStatus))))
	r.Get("/v1/apps/{app}/online", s.instrument("online", s.guard(auth.OwnLookup, s.lookup(s.onlineUsers))))
	r.Put("/v1/apps/{app}/users/{user}/custom-status", s.instrument("custom_status_set", s.guard(auth.ActAs, s.setCustomStatus)))
	r.Delete("/v1/apps/{app}/users/{user}/custom-status", s.instrument("custom_status_clear", s.guard(auth.ActAs, s.clearCustomStatus)))
	r.Put("/v1/apps/{app}/users/{user}/privacy", s.instrument("privacy_set", s.guard(auth.ActAs, s.setPrivacy)))
	r.Get("/v1/apps/{app}/users/{user}/privacy", s.instrument("privacy_get", s.guard(auth.ActAs, s.lookup(s.getPrivacy))))
	r.Get("/v1/apps/{app}/users/{user}/friends/status", s.instrument("friends_status", s.guard(auth.OwnLookup, s.lookup(s.friendsStatus))))
	r.Put("/v1/apps/{app}/users/{user}/friends/{friend}", s.instrument("friend_add", s.guard(auth.Backend, s.addFriend)))
	r.Delete("/v1/apps/{app}/users/{user}/friends/{friend}", s.instrument("friend_remove", s.guard(auth.Backend, s.removeFriend)))
	r.Post("/v1/apps/{app}/users/{user}/subscriptions", s.instrument("subscribe", s.guard(auth.ActAs, s.lookup(s.subscribe))))
	r.Delete("/v1/apps/{app}/users/{user}/subscriptions", s.instrument("unsubscribe", s.guard(auth.ActAs, s.unsubscribe)))
	r.Get("/v1/ops", s.instrument("ops", s.ops))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, r, s.log, httpapi.Errorf(httpapi.CodeNotFound, "no such path: "+r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, r, s.log, httpapi.Errorf(httpapi.CodeMethod, r.Method+" is not allowed on "+r.URL.Path))
	})
	httpapi.Health(r, append([]httpapi.Probe{cfg.Store.Ping}, cfg.Probes...)...)
	if !cfg.NoMetrics {
		httpapi.Metrics(r, cfg.Registry)
	}
	openapi.Register(r, openapi.QueryAPI())
	page := console.Handler("/console") // no credentials: its data calls carry them
	r.Get("/console", page.ServeHTTP)
	r.Get("/console/", page.ServeHTTP)
	r.Get("/console/{file}", func(w http.ResponseWriter, r *http.Request) {
		if !console.Has(chi.URLParam(r, "file")) {
			httpapi.WriteError(w, r, s.log, httpapi.Errorf(httpapi.CodeNotFound, "no such file of the console: "+r.URL.Path))
			return
		}
		page.ServeHTTP(w, r)
	})
	if cfg.RateLimits == nil {
		cfg.RateLimits = ratelimit.DefaultScopes(cfg.Auth != nil)
	}
	lim, err := ratelimit.New(ratelimit.Config{Server: "queryapi", Scopes: cfg.RateLimits,
		Logger: s.log, Registerer: cfg.Registry})
	if err != nil {
		cl.Close()
		return nil, err
	}
	limited := lim.Wrap(r)
	cx, err := compat.New(compat.Config{API: limited, Logger: s.log, Registerer: cfg.Registry})
	if err != nil {
		cl.Close()
		return nil, err
	}
	r.Mount("/compat", cx) // the seeds' APIs, over the routes above
	s.router = r
	s.handler = cfg.Auth.Identify(compat.Bypass(r, limited))
	var ctx context.Context
	ctx, s.stopFeed = context.WithCancel(context.Background())
	go func() {
		defer close(s.fed)
		if err := feed.Run(ctx); err != nil {
			s.log.Error("the change feed stopped: watches with a cursor answer 503 not_ready", "err", err)
		}
	}()
	return s, nil
}

// Handler serves the API.
func (s *Server) Handler() http.Handler { return s.handler }

// Drain answers every waiting watch at once, with the changes it has (none)
// and its cursor, and those that come after too: call it when the server
// begins to shut down, so that watches do not hold it up (their clients go
// on from their cursors, on another query API).
func (s *Server) Drain() { s.feed.Drain() }

// Close stops following the change feed and closes the Kafka client.
// Stop serving first: a write still waiting for Kafka fails.
func (s *Server) Close() {
	s.stopFeed()
	<-s.fed
	s.kafka.Close()
}

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

// idParam returns the id in path parameter name (user, friend), checked.
func idParam(r *http.Request, name string) (string, error) {
	id, err := pathParam(r, name)
	if err != nil {
		return "", err
	}
	if err := schemas.ValidateID(name, id); err != nil {
		return "", httpapi.Errorf(httpapi.CodeInvalid, err.Error())
	}
	return id, nil
}

// appUser returns the app and user of the path, checked.
func appUser(r *http.Request) (app, user string, err error) {
	if app, err = appParam(r); err != nil {
		return "", "", err
	}
	if user, err = idParam(r, "user"); err != nil {
		return "", "", err
	}
	return app, user, nil
}

// badRequest answers a validation error (one wrapping schemas.ErrInvalid)
// as 400 invalid; any other error stays internal.
func badRequest(err error) error {
	if errors.Is(err, schemas.ErrInvalid) {
		return httpapi.Errorf(httpapi.CodeInvalid, err.Error())
	}
	return err
}
