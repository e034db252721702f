// Package compat serves the APIs of the two systems Presence descends
// from, so that their clients move to Presence by changing a base URL and
// a credential, under /compat of the query API:
//
//   - LeanCloud's cloud function getOnOffStatus, the recipe's
//     {"peerIds":[…]} → {"result":["1"|"0"|null,…]} (leancloud.go);
//   - the Java IM's queryUserOnlineStatus, queryFriendOnlineStatus,
//     subscribeUserOnlineStatus and setUserCustomerStatus, with its appId
//     and identifier query parameters and its {"code","msg","data"}
//     envelope (im.go, imstatus.go).
//
// Each route is a thin adapter: it reads the seed's request, calls one
// route of the native query API in process (call.go) and writes the
// native answer in the seed's shape. Lookups, friends, subscriptions and
// custom status have one implementation, the native one, with its
// checks, limits (at most 500 users a request, …), rebuilding header and
// metrics.
//
// Credentials are the native API's, "Authorization: Bearer <key or user
// token>", checked as for the native route a compat route calls (the
// seeds' X-LC-Key, X-LC-Sign and userSign are not read). An error keeps
// the native HTTP status (401 unauthorized, 403 forbidden, 400, 429, 503,
// …) and its headers (WWW-Authenticate, Retry-After), and is written in
// the seed's error envelope, its code the HTTP status and its message the
// native one: LeanCloud's {"code":403,"error":"…"}, the Java IM's
// {"code":403,"msg":"…","data":null}.
//
// The rate limits count a compat request once, at the native route it
// calls (see Bypass), for the app and user the same request sent there
// is counted for; over a limit, it is refused 429 in the seed's envelope
// with Retry-After.
//
// Metrics (namespace presence, subsystem queryapi):
//
//	presence_queryapi_compat_requests_total{route,code}  compat requests
//	                                                     answered, by route
//	                                                     and HTTP status
//
// The native routes a compat request calls count it too, under their own
// route names.
package compat

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/service/httpapi"
)

// Config configures the compat routes.
type Config struct {
	// API serves the native routes the adapters call: the query API's
	// router with its rate limits (the credential check in front of it
	// has already seen the compat request). Required.
	API http.Handler
	// Logger receives the logs of failures (slog.Default()).
	Logger *slog.Logger
	// Registerer receives the metrics (nil: nowhere).
	Registerer prometheus.Registerer
}

// Compat serves the compat routes; mount it at /compat. It is a
// chi.Router, so chi.Walk on the router it is mounted on lists its
// routes.
type Compat struct {
	chi.Router
	api      http.Handler
	log      *slog.Logger
	requests *prometheus.CounterVec
}

// New returns the compat routes.
func New(cfg Config) (*Compat, error) {
	if cfg.API == nil {
		return nil, errors.New("compat: no native API to call")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	c := &Compat{
		api: cfg.API,
		log: cfg.Logger,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "queryapi", Name: "compat_requests_total",
			Help: "Requests of the seeds' APIs (/compat) answered, by route and HTTP status code.",
		}, []string{"route", "code"}),
	}
	if err := cfg.Registerer.Register(c.requests); err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.Route("/leancloud", func(r chi.Router) {
		d := leanCloud{}
		r.Post("/1.1/functions/getOnOffStatus", c.handle("leancloud_get_on_off_status", d, c.getOnOffStatus))
		c.unrouted(r, d)
	})
	r.Route("/im", func(r chi.Router) {
		d := javaIM{}
		// The contract's paths, and the Java IM's own (/v1/user/…): a
		// client of the seed changes only its base URL.
		for _, prefix := range []string{"/v1/user/status", "/v1/user"} {
			r.Post(prefix+"/queryUserOnlineStatus", c.handle("im_query_user_online_status", d, c.queryUserOnlineStatus))
			r.Post(prefix+"/queryFriendOnlineStatus", c.handle("im_query_friend_online_status", d, c.queryFriendOnlineStatus))
			r.Post(prefix+"/subscribeUserOnlineStatus", c.handle("im_subscribe_user_online_status", d, c.subscribeUserOnlineStatus))
			r.Post(prefix+"/setUserCustomerStatus", c.handle("im_set_user_customer_status", d, c.setUserCustomerStatus))
		}
		c.unrouted(r, d)
	})
	c.unrouted(r, native{})
	c.Router = r
	return c, nil
}

// Bypass serves the paths under /compat with router, on which the compat
// routes are mounted, and every other path with limited, router behind
// the rate limits: a compat request is limited once, at the native route
// it calls (Config.API), for the app and user of that route, as the same
// request sent there.
func Bypass(router, limited http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/compat" || strings.HasPrefix(r.URL.Path, "/compat/") {
			router.ServeHTTP(w, r)
			return
		}
		limited.ServeHTTP(w, r)
	})
}

// dialect writes errors in the envelope of one seed.
type dialect interface {
	// fail writes e with status.
	fail(w http.ResponseWriter, status int, e *httpapi.Error)
}

// native is the query API's own envelope, for paths of no seed.
type native struct{}

func (native) fail(w http.ResponseWriter, status int, e *httpapi.Error) {
	httpapi.WriteJSON(w, status, struct {
		Error *httpapi.Error `json:"error"`
	}{e})
}

// unrouted answers unknown paths and methods under r in d's envelope.
func (c *Compat) unrouted(r chi.Router, d dialect) {
	r.NotFound(c.handle("not_found", d, func(w http.ResponseWriter, r *http.Request) error {
		return httpapi.Errorf(httpapi.CodeNotFound, "no such path: "+r.URL.Path)
	}))
	r.MethodNotAllowed(c.handle("method_not_allowed", d, func(w http.ResponseWriter, r *http.Request) error {
		return httpapi.Errorf(httpapi.CodeMethod, r.Method+" is not allowed on "+r.URL.Path)
	}))
}

// handle turns h into a handler that answers h's error in d's envelope
// and counts the request.
func (c *Compat) handle(route string, d dialect, h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		if err := h(sw, r); err != nil {
			c.fail(sw, r, d, err)
		}
		c.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	}
}

// fail answers err in d's envelope with the status the native API gives
// it: that of a native answer (a *failure), or the one httpapi gives
// the code of an *httpapi.Error. Any other error is internal, and logged
// with its cause, as the native API does.
func (c *Compat) fail(w http.ResponseWriter, r *http.Request, d dialect, err error) {
	var f *failure
	if !errors.As(err, &f) {
		var ans answer
		httpapi.WriteError(&ans, r, c.log, err)
		if f = ans.failure(); f == nil {
			f = &failure{status: http.StatusInternalServerError, err: httpapi.Errorf(httpapi.CodeInternal, "internal error")}
		}
	}
	d.fail(w, f.status, f.err)
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}
