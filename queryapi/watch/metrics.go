package watch

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Feed's, in the query API's subsystem:
//
//	presence_queryapi_watch_waiting            watches waiting for a change now
//	presence_queryapi_watch_changes_total      changes read from presence.changes
//	presence_queryapi_watch_wakeups_total      watches woken by a change
//	presence_queryapi_watch_expired_total      cursors refused as expired (410)
//	presence_queryapi_watch_invalid_total      change records that did not decode
//	presence_queryapi_watch_kept_changes       changes held in memory
//	presence_queryapi_watch_apply_seconds      time to index one fetch's changes
//	                                           and wake their watches
//
// The cost of a change is apply_seconds' sum over changes_total; the
// fan-out of a change, wakeups_total over changes_total.
type metrics struct {
	waiting                            prometheus.Gauge
	changes, wakeups, expired, invalid prometheus.Counter
	applySeconds                       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, f *Feed) (*metrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "presence", Subsystem: "queryapi", Name: name, Help: help}
	}
	m := &metrics{
		waiting: prometheus.NewGauge(prometheus.GaugeOpts(opts("watch_waiting", "Watches waiting for a change of their users."))),
		changes: prometheus.NewCounter(prometheus.CounterOpts(opts("watch_changes_total", "Changes read from presence.changes."))),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts(opts("watch_wakeups_total", "Watches woken by a change of one of their users."))),
		expired: prometheus.NewCounter(prometheus.CounterOpts(opts("watch_expired_total", "Watch cursors refused as expired (410 cursor_expired)."))),
		invalid: prometheus.NewCounter(prometheus.CounterOpts(opts("watch_invalid_total", "Records of presence.changes that did not decode, skipped."))),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "presence", Subsystem: "queryapi",
			Name: "watch_apply_seconds", Help: "Time to index the changes of one fetch and wake their watches.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}),
	}
	kept := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("watch_kept_changes", "Changes held in memory for watches.")), func() float64 {
		f.mu.Lock()
		defer f.mu.Unlock()
		return float64(f.kept)
	})
	for _, c := range []prometheus.Collector{m.waiting, m.changes, m.wakeups, m.expired, m.invalid, m.applySeconds, kept} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
