package processor

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the processor (namespace presence, subsystem processor):
//
//	presence_processor_records_total{result}  records read, by result:
//	                                          applied, duplicate, invalid
//	                                          (sent to presence.deadletter)
//	presence_processor_apply_seconds          time to apply one partition's
//	                                          batch to Redis, announcements
//	                                          included
//	presence_processor_apply_errors_total     failed Redis or Kafka steps
//	                                          (retried)
//	presence_processor_consumer_lag{topic,partition}
//	                                          records not yet applied
//	presence_processor_announcements_total{result}
//	                                          changes of a user's visible
//	                                          state: announced, delayed
//	                                          (went offline, or less
//	                                          present: wait for the grace
//	                                          period), absorbed (back
//	                                          within it: no news)
//	presence_processor_notifications_total{type}
//	                                          recipient sessions notified:
//	                                          presence, sync
//	presence_processor_fanout_recipients      recipient sessions per
//	                                          announcement
//	presence_processor_announce_seconds       time to read the audiences of
//	                                          a batch and emit its
//	                                          notifications
//	presence_processor_state_lost_total       times Redis lost what the
//	                                          processor wrote and it
//	                                          rejoined to rebuild
//	presence_processor_partitions_moved_total{how}
//	                                          partitions that went to
//	                                          another processor: revoked
//	                                          (a rebalance), lost (this
//	                                          processor's session ended;
//	                                          a checkpoint moved by
//	                                          another counts one), fenced
//	                                          (a write of its users was
//	                                          refused: another processor
//	                                          had taken the partition)
//	presence_processor_gateways_lost_total    gateway leases that lapsed
//	                                          or were replaced by a new
//	                                          epoch
//	presence_processor_tombstones_total{topic}
//	                                          tombstones written for ended
//	                                          sessions past the offline
//	                                          TTL and expired
//	                                          subscriptions
//	presence_processor_disconnects_written_total
//	                                          gateway_lost disconnects the
//	                                          processor wrote
//	presence_processor_dead_letters_failed_total
//	                                          dead letters that could not
//	                                          be written (dropped, logged)
//	presence_processor_clamped_total{field}   record fields bounded: time
//	                                          (ahead of the clock), lease
//	                                          (above the longest)
//	presence_processor_stalled_partitions     partitions with records and
//	                                          no progress for longer than
//	                                          the stall timeout
type metrics struct {
	records       *prometheus.CounterVec
	applied       prometheus.Counter
	duplicate     prometheus.Counter
	invalid       prometheus.Counter
	applyTime     prometheus.Histogram
	applyErrors   prometheus.Counter
	lag           *prometheus.GaugeVec
	announcements *prometheus.CounterVec
	announced     prometheus.Counter
	delayed       prometheus.Counter
	absorbed      prometheus.Counter
	notifications *prometheus.CounterVec
	fanout        prometheus.Histogram
	announceTime  prometheus.Histogram
	stateLost     prometheus.Counter
	moved         *prometheus.CounterVec
	gatewaysLost  prometheus.Counter
	disconnects   prometheus.Counter
	tombstones    *prometheus.CounterVec
	// deadLettersFailed counts dead letters dropped.
	deadLettersFailed prometheus.Counter
	clamped           *prometheus.CounterVec
	stalled           prometheus.GaugeFunc
}

// newMetrics registers the metrics on reg; stalled counts the stalled
// partitions at each scrape.
func newMetrics(reg prometheus.Registerer, stalled func() float64) (*metrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "presence", Subsystem: "processor", Name: name, Help: help}
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "presence", Subsystem: "processor", Name: name, Help: help, Buckets: buckets})
	}
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts(opts("records_total",
			"Records read from the state topics, by result: applied, duplicate (already in Redis), invalid (sent to presence.deadletter).")), []string{"result"}),
		applyTime: histogram("apply_seconds", "Time to apply one partition's batch of records to Redis, announcements included.",
			prometheus.ExponentialBuckets(0.0005, 2, 14)),
		applyErrors: prometheus.NewCounter(prometheus.CounterOpts(opts("apply_errors_total",
			"Redis or Kafka steps of a batch that failed and were retried."))),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("consumer_lag",
			"Records of a partition not yet applied, as of the last fetch.")), []string{"topic", "partition"}),
		announcements: prometheus.NewCounterVec(prometheus.CounterOpts(opts("announcements_total",
			"Changes of a user's visible state, by result: announced, delayed (went offline, or less present: wait for the grace period), absorbed (back within it).")), []string{"result"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts(opts("notifications_total",
			"Recipient sessions notified, by type: presence (friends, subscribers), sync (the user's own other sessions).")), []string{"type"}),
		fanout: histogram("fanout_recipients", "Recipient sessions per announcement.",
			prometheus.ExponentialBuckets(1, 4, 10)),
		announceTime: histogram("announce_seconds", "Time to read the audiences of a batch of announcements and emit its notifications.",
			prometheus.ExponentialBuckets(0.0005, 2, 16)),
		stateLost: prometheus.NewCounter(prometheus.CounterOpts(opts("state_lost_total",
			"Times Redis lost what the processor wrote (a restart without persistence, a flush) and the processor rejoined its group to rebuild."))),
		moved: prometheus.NewCounterVec(prometheus.CounterOpts(opts("partitions_moved_total",
			"Partitions (of every consumed topic) that went to another processor, by how: revoked (a rebalance of the group), lost (this processor's group session ended; a checkpoint another processor moved counts one), fenced (a write of its users was refused: another processor had taken the partition).")), []string{"how"}),
		gatewaysLost: prometheus.NewCounter(prometheus.CounterOpts(opts("gateways_lost_total",
			"Gateway epochs found lost (lease lapsed, or replaced by a new epoch) with sessions to end; an epoch whose sessions end over several checks counts once per check."))),
		disconnects: prometheus.NewCounter(prometheus.CounterOpts(opts("disconnects_written_total",
			"Disconnects with reason gateway_lost the processor wrote for sessions of lost gateways."))),
		tombstones: prometheus.NewCounterVec(prometheus.CounterOpts(opts("tombstones_total",
			"Tombstones written to keep the compacted topics bounded, by topic.")), []string{"topic"}),
		deadLettersFailed: prometheus.NewCounter(prometheus.CounterOpts(opts("dead_letters_failed_total",
			"Dead letters that could not be written to presence.deadletter after a few attempts; they are logged and dropped, and the partition moves on."))),
		clamped: prometheus.NewCounterVec(prometheus.CounterOpts(opts("clamped_total",
			"Record fields bounded by the processor, by field: time (later than the clock plus the allowed skew: taken as now), lease (a heartbeat's lease above the longest allowed: cut to it).")), []string{"field"}),
		stalled: prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("stalled_partitions",
			"Assigned partitions holding records that have made no progress for longer than the stall timeout; readiness fails while any is.")), stalled),
	}
	for _, c := range []prometheus.Collector{m.records, m.applyTime, m.applyErrors, m.lag, m.announcements, m.notifications,
		m.fanout, m.announceTime, m.stateLost, m.moved, m.gatewaysLost, m.disconnects, m.tombstones, m.deadLettersFailed, m.clamped, m.stalled} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.applied = m.records.WithLabelValues("applied")
	m.duplicate = m.records.WithLabelValues("duplicate")
	m.invalid = m.records.WithLabelValues("invalid")
	m.announced = m.announcements.WithLabelValues("announced")
	m.delayed = m.announcements.WithLabelValues("delayed")
	m.absorbed = m.announcements.WithLabelValues("absorbed")
	return m, nil
}
