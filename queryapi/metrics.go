package queryapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/service/httpapi"
)

type metrics struct {
	requests                 *prometheus.CounterVec
	seconds                  *prometheus.HistogramVec
	online, offline, unknown prometheus.Counter
	writes                   *prometheus.CounterVec
}

// newMetrics registers the server's metrics on reg; rebuilding is the
// value of presence_queryapi_rebuilding_partitions.
func newMetrics(reg prometheus.Registerer, rebuilding func() float64) (*metrics, error) {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "presence", Subsystem: "queryapi", Name: "lookups_total",
		Help: "Users looked up, by result: online, offline, unknown.",
	}, []string{"result"})
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "queryapi", Name: "requests_total",
			Help: "Requests answered, by route and HTTP status code.",
		}, []string{"route", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "presence", Subsystem: "queryapi", Name: "request_seconds",
			Help:    "Time to answer a request, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}, []string{"route"}),
		online:  lookups.WithLabelValues("online"),
		offline: lookups.WithLabelValues("offline"),
		unknown: lookups.WithLabelValues("unknown"),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "queryapi", Name: "writes_total",
			Help: "Records written to Kafka, by kind (custom_status, friend, subscription, privacy) and result (ok, failed).",
		}, []string{"kind", "result"}),
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "presence", Subsystem: "queryapi", Name: "rebuilding_partitions",
		Help: "Partitions of the state topics not yet built in Redis (being rebuilt, or never built); NaN while Redis does not answer.",
	}, rebuilding)
	for _, c := range []prometheus.Collector{m.requests, m.seconds, lookups, m.writes, pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) count(results []*redisstore.Status) {
	var on, off, unknown int
	for _, st := range results {
		switch {
		case st == nil:
			unknown++
		case st.State == redisstore.Online:
			on++
		default:
			off++
		}
	}
	m.online.Add(float64(on))
	m.offline.Add(float64(off))
	m.unknown.Add(float64(unknown))
}

// written counts the records of one write of kind.
func (m *metrics) written(kind string, ok, failed int) {
	m.writes.WithLabelValues(kind, "ok").Add(float64(ok))
	m.writes.WithLabelValues(kind, "failed").Add(float64(failed))
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// instrument turns a handler that returns an error into an http.Handler
// that writes the error in the envelope and counts and times the request.
func (s *Server) instrument(route string, h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		if err := h(sw, r); err != nil {
			httpapi.WriteError(sw, r, s.log, err)
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		s.metrics.seconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
}
