package webhook

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	deliveries *prometheus.CounterVec
	skipped    *prometheus.CounterVec
	request    *prometheus.HistogramVec
	lag        *prometheus.HistogramVec
	endpoints  prometheus.Gauge
}

// appMetrics are the metrics of one app's deliveries.
type appMetrics struct {
	delivered, failed, retried, skipped prometheus.Counter
	request, lag                        prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "webhook", Name: "deliveries_total",
			Help: "Outcomes of webhook deliveries, by app: delivered, failed (given up), retried (an attempt failed, another follows).",
		}, []string{"app", "outcome"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "webhook", Name: "skipped_total",
			Help: "Records of presence.changes under a key of the app that are not a change of that key's user (they do not decode, name another app or user): not sent.",
		}, []string{"app"}),
		request: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "presence", Subsystem: "webhook", Name: "request_seconds",
			Help:    "Time for a webhook endpoint to answer one attempt, by app.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"app"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "presence", Subsystem: "webhook", Name: "lag_seconds",
			Help:    "Time from a change to its acknowledgement by a webhook endpoint, by app.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"app"}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "presence", Subsystem: "webhook", Name: "endpoints",
			Help: "Webhook endpoints being delivered.",
		}),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.skipped, m.request, m.lag, m.endpoints} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) app(app string) appMetrics {
	return appMetrics{
		delivered: m.deliveries.WithLabelValues(app, "delivered"),
		failed:    m.deliveries.WithLabelValues(app, "failed"),
		retried:   m.deliveries.WithLabelValues(app, "retried"),
		skipped:   m.skipped.WithLabelValues(app),
		request:   m.request.WithLabelValues(app),
		lag:       m.lag.WithLabelValues(app),
	}
}
