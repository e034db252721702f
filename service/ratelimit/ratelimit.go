// Package ratelimit limits the requests of a Presence server per app and
// per user with token buckets (golang.org/x/time/rate): a request over a
// limit is answered 429 rate_limited with a Retry-After header, the whole
// seconds until the bucket has a token for it, and is not served.
//
// Each scope (app, user) keeps a bucket per key in a map of at most
// Config.MaxKeys entries. A bucket that has refilled is the same as a new
// one, so it is dropped at the next sweep (about every SweepEvery); when
// the map is full of buckets still in use, as under a flood of made-up
// keys, an arbitrary bucket is dropped for the new key. The map never
// grows past MaxKeys; a key whose bucket was dropped starts again with a
// full one, which the per-app limit still bounds.
//
// Metrics (namespace presence, subsystem http, constant label server):
//
//	presence_http_rate_limited_total{server,scope}        requests refused
//	presence_http_rate_limit_evicted_total{server,scope}  buckets dropped
//	                                                      while still in use
//	                                                      (the map was full)
package ratelimit

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/presence-im/presence/service/httpapi"
)

// Defaults of Config and of the limits.
const (
	DefaultMaxKeys    = 100_000
	DefaultSweepEvery = time.Minute
)

// Default limits: an app's requests to one server process, and one user's.
// Far above what one user of an IM client sends, and above what `make
// bench` sends per app (about 700 lookups a second).
var (
	DefaultApp  = Rule{PerSecond: 10_000, Burst: 20_000}
	DefaultUser = Rule{PerSecond: 50, Burst: 100}
)

// Unlimited is a Rule that never refuses.
var Unlimited = Rule{PerSecond: math.Inf(1)}

// Rule is a token bucket: PerSecond requests a second on average, Burst at
// once. A positive infinite PerSecond is no limit.
type Rule struct {
	PerSecond float64
	Burst     int
}

func (r Rule) unlimited() bool { return math.IsInf(r.PerSecond, 1) }

func (r Rule) validate() error {
	if r.unlimited() {
		return nil
	}
	if !(r.PerSecond > 0) || r.Burst < 1 {
		return fmt.Errorf("rate %v a second with burst %d: want a positive rate and a burst of at least 1", r.PerSecond, r.Burst)
	}
	return nil
}

// Scope is one limit and what it is keyed by.
type Scope struct {
	// Name is the scope label of the metrics: app, user.
	Name string
	Rule Rule
	// Key is the key of a request in this scope; "" means the request is
	// not limited in this scope.
	Key func(*http.Request) string
}

// Config configures a Limiter. Zero values mean the defaults.
type Config struct {
	// Server is the server label of the metrics: queryapi, gateway.
	Server string
	Scopes []Scope
	// MaxKeys bounds the buckets kept per scope (DefaultMaxKeys).
	MaxKeys int
	// SweepEvery is how often refilled buckets are dropped
	// (DefaultSweepEvery).
	SweepEvery time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// Logger (slog.Default()).
	Logger *slog.Logger
	// Registerer receives the metrics (nil: nowhere).
	Registerer prometheus.Registerer
}

// Limiter applies the scopes of its Config to requests.
type Limiter struct {
	now     func() time.Time
	log     *slog.Logger
	scopes  []*scope
	limited *prometheus.CounterVec
	evicted *prometheus.CounterVec
}

// New returns a Limiter.
func New(cfg Config) (*Limiter, error) {
	if cfg.MaxKeys < 0 || cfg.SweepEvery < 0 {
		return nil, fmt.Errorf("ratelimit: negative MaxKeys %d or SweepEvery %s", cfg.MaxKeys, cfg.SweepEvery)
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Limiter{
		now: cfg.Now,
		log: cfg.Logger,
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "http", Name: "rate_limited_total",
			Help:        "Requests refused 429 rate_limited, by scope: app, user.",
			ConstLabels: prometheus.Labels{"server": cfg.Server},
		}, []string{"scope"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "http", Name: "rate_limit_evicted_total",
			Help:        "Token buckets dropped while still in use because the scope held its most keys.",
			ConstLabels: prometheus.Labels{"server": cfg.Server},
		}, []string{"scope"}),
	}
	for _, c := range []prometheus.Collector{l.limited, l.evicted} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("ratelimit: registering metrics: %w", err)
		}
	}
	for _, sc := range cfg.Scopes {
		if sc.Key == nil || sc.Name == "" {
			return nil, errors.New("ratelimit: a scope without a name or a key function")
		}
		if err := sc.Rule.validate(); err != nil {
			return nil, fmt.Errorf("ratelimit: scope %s: %w", sc.Name, err)
		}
		if sc.Rule.unlimited() {
			continue
		}
		l.scopes = append(l.scopes, &scope{Scope: sc, max: cfg.MaxKeys, sweepEvery: cfg.SweepEvery,
			buckets: map[string]*rate.Limiter{}, evicted: l.evicted.WithLabelValues(sc.Name)})
	}
	return l, nil
}

// Wrap serves h with the limits: a request over any of them is answered
// 429 rate_limited with Retry-After and takes no token from the others.
func (l *Limiter) Wrap(h http.Handler) http.Handler {
	if len(l.scopes) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, sc := l.reserve(r); wait > 0 {
			l.limited.WithLabelValues(sc).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			httpapi.WriteError(w, r, l.log, httpapi.Errorf(httpapi.CodeRateLimited,
				fmt.Sprintf("over the %s's rate limit: retry in %s", sc, wait.Round(time.Millisecond))))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// reserve takes a token for r in every scope that keys it, or, when one
// has none to give now, none at all: it returns the longest wait and its
// scope.
func (l *Limiter) reserve(r *http.Request) (time.Duration, string) {
	now := l.now()
	var taken []*rate.Reservation
	var wait time.Duration
	var which string
	for _, sc := range l.scopes {
		key := sc.Key(r)
		if key == "" {
			continue
		}
		res := sc.bucket(key, now).ReserveN(now, 1)
		if d := res.DelayFrom(now); d > wait {
			wait, which = d, sc.Name
		}
		taken = append(taken, res)
	}
	if wait > 0 {
		for _, res := range taken {
			res.CancelAt(now)
		}
	}
	return wait, which
}

// scope is the buckets of one Scope.
type scope struct {
	Scope
	max        int
	sweepEvery time.Duration
	evicted    prometheus.Counter

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

// bucket returns the bucket of key, making one when there is none.
func (sc *scope) bucket(key string, now time.Time) *rate.Limiter {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if b, ok := sc.buckets[key]; ok {
		return b
	}
	sc.sweep(now)
	for k := range sc.buckets { // the map is full of buckets in use
		if len(sc.buckets) < sc.max {
			break
		}
		delete(sc.buckets, k)
		sc.evicted.Inc()
	}
	b := rate.NewLimiter(rate.Limit(sc.Rule.PerSecond), sc.Rule.Burst)
	sc.buckets[key] = b
	return b
}

// sweep drops the buckets that have refilled: a new one would be the same.
// A sweep that finds the map full of buckets in use is not repeated before
// SweepEvery, so that a flood of keys costs one pass per SweepEvery, not
// one per request.
func (sc *scope) sweep(now time.Time) {
	if now.Sub(sc.lastSweep) < sc.sweepEvery {
		return
	}
	sc.lastSweep = now
	full := float64(sc.Rule.Burst)
	for k, b := range sc.buckets {
		if b.TokensAt(now) >= full {
			delete(sc.buckets, k)
		}
	}
}

// size is how many buckets the scope holds.
func (sc *scope) size() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.buckets)
}
