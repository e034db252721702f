package socket

import "github.com/prometheus/client_golang/prometheus"

// Labels of presence_gateway_socket_connects_total{result}.
const (
	connectOpened      = "opened"
	connectInvalid     = "invalid"
	connectDuplicate   = "duplicate"
	connectUnavailable = "unavailable"
	connectNotUpgraded = "not_upgraded"
	connectUnauth      = "unauthorized"
	connectForbidden   = "forbidden"
	connectUserCap     = "user_cap"    // the user has MaxSocketsPerUser here
	connectGatewayCap  = "gateway_cap" // the gateway has MaxSockets
)

// Labels of presence_gateway_socket_disconnects_total{cause}.
const (
	causeClientClosed = "client_closed"
	causeTimeout      = "timeout"
	causeSlowConsumer = "slow_consumer"
	causeWriteFailed  = "write_failed"
	causeShutdown     = "gateway_shutdown"
	causeTokenExpired = "token_expired"
)

// Labels of presence_gateway_notifications_dropped_total{reason}.
const (
	dropNotHere      = "not_here"
	dropSlowConsumer = "slow_consumer"
)

type metrics struct {
	sockets     prometheus.Gauge
	connects    *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	delivered   *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	undecodable prometheus.Counter
	unknownType prometheus.Counter
	messages    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "presence", Subsystem: "gateway", Name: name, Help: help}
	}
	m := &metrics{
		sockets: prometheus.NewGauge(prometheus.GaugeOpts(opts("sockets",
			"WebSocket clients connected."))),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts(opts("socket_connects_total",
			"WebSocket connection attempts, by result: opened, invalid, duplicate, unavailable, not_upgraded, unauthorized, forbidden, user_cap, gateway_cap.")), []string{"result"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts(opts("socket_disconnects_total",
			"WebSocket sessions ended, by cause: client_closed, timeout, slow_consumer, write_failed, gateway_shutdown, token_expired.")), []string{"cause"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts(opts("notifications_delivered_total",
			"Notifications written to a client, by type: presence, sync.")), []string{"type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts(opts("notifications_dropped_total",
			"Notifications for a recipient not delivered, by reason: not_here (no socket for the session on this gateway), slow_consumer (its send buffer was full).")), []string{"reason"}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts(opts("notify_undecodable_total",
			"Records keyed to this gateway on the notify topic that are not a Notification, skipped."))),
		unknownType: prometheus.NewCounter(prometheus.CounterOpts(opts("notify_unknown_type_total",
			"Notifications of a type this gateway does not know, skipped."))),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts(opts("socket_messages_total",
			"Messages clients sent, by result: activity (a report), invalid (anything else, ignored).")), []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.sockets, m.connects, m.disconnects, m.delivered, m.dropped, m.undecodable, m.unknownType, m.messages} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
