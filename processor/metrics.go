package processor

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the processor (namespace presence, subsystem processor):
//
//	presence_processor_records_total{result}  records read, by result:
//	                                          applied, duplicate, invalid
//	presence_processor_apply_seconds          time to apply one partition's
//	                                          batch to Redis
//	presence_processor_apply_errors_total     failed Redis applies (retried)
//	presence_processor_consumer_lag{partition} records not yet applied
type metrics struct {
	records     *prometheus.CounterVec
	applied     prometheus.Counter
	duplicate   prometheus.Counter
	invalid     prometheus.Counter
	applyTime   prometheus.Histogram
	applyErrors prometheus.Counter
	lag         *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "processor", Name: "records_total",
			Help: "Records read from the sessions topic, by result: applied, duplicate (already in Redis), invalid (skipped).",
		}, []string{"result"}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "presence", Subsystem: "processor", Name: "apply_seconds",
			Help:    "Time to apply one partition's batch of records to Redis.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		applyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "processor", Name: "apply_errors_total",
			Help: "Batches whose apply to Redis failed and was retried.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "presence", Subsystem: "processor", Name: "consumer_lag",
			Help: "Records of a partition not yet applied, as of the last fetch.",
		}, []string{"partition"}),
	}
	for _, c := range []prometheus.Collector{m.records, m.applyTime, m.applyErrors, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.applied = m.records.WithLabelValues("applied")
	m.duplicate = m.records.WithLabelValues("duplicate")
	m.invalid = m.records.WithLabelValues("invalid")
	return m, nil
}
