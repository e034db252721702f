// Package socket is the WebSocket endpoint of the reference gateway: a
// client connecting to GET /v1/apps/{app}/ws opens a session, published as
// a connect through the gateway library, and closing it ends the session.
// While connected, the client receives as JSON text messages the
// notifications the processor addresses to its session:
//
//	{"type":"presence","user":…,"state":…,"sessions":[…],"custom":…,"last_seen":…,"version":…}
//
// for friends and watched users, "type":"sync" for the client's own user
// changing on another session; the other fields are the query API's
// Status of the user who changed. A client reports its activity with
// {"type":"activity","activity":"active"|"idle"|"background"} (see
// activity.go); the gateway reads no other message.
//
// With Config.Auth, a client connects with a user token, as its user
// only; without valid credentials it is answered 401 unauthorized, as
// another user (or with a server key) 403 forbidden. A browser page of
// another host than the gateway's, not in Config.AllowedOrigins, is
// answered 403 forbidden, before anything is published.
//
// A client that does not keep up is closed rather than waited for: each
// session has a send buffer of Config.SendBuffer messages, and a
// notification that finds it full closes the socket with
// StatusPolicyViolation. A gateway holds at most Config.MaxSockets
// sessions, and at most Config.MaxSocketsPerUser of one user; a connect
// over a cap is refused before the upgrade, in the JSON envelope: 429
// too_many_sockets for the user's cap, 503 unavailable for the gateway's
// (connect to another gateway). A client must answer the server's pings (every
// Config.PingInterval) within a ping interval.
//
// Metrics (namespace presence, subsystem gateway):
//
//	presence_gateway_sockets                               clients connected
//	presence_gateway_socket_connects_total{result}         attempts: opened,
//	                                                       invalid, duplicate,
//	                                                       unavailable,
//	                                                       not_upgraded,
//	                                                       unauthorized,
//	                                                       forbidden,
//	                                                       user_cap,
//	                                                       gateway_cap
//	presence_gateway_socket_disconnects_total{cause}       client_closed,
//	                                                       timeout,
//	                                                       slow_consumer,
//	                                                       write_failed,
//	                                                       gateway_shutdown,
//	                                                       token_expired
//	presence_gateway_notifications_delivered_total{type}   messages written to
//	                                                       a client: presence,
//	                                                       sync
//	presence_gateway_notifications_dropped_total{reason}   not_here (no such
//	                                                       session here),
//	                                                       slow_consumer
//	presence_gateway_socket_messages_total{result}         client messages:
//	                                                       activity, invalid
//	                                                       (ignored)
//	presence_gateway_notify_undecodable_total              notify records that
//	                                                       do not decode
//	presence_gateway_notify_unknown_type_total             notifications of an
//	                                                       unknown type
package socket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/httpapi"
)

// Defaults of Config.
const (
	DefaultPingInterval      = 20 * time.Second
	DefaultSendBuffer        = 256
	DefaultMaxSockets        = 100_000
	DefaultMaxSocketsPerUser = 16
)

// PublishTimeout bounds how long a connect or disconnect waits for Kafka.
const PublishTimeout = 10 * time.Second

// Config configures a Server. Zero values mean the defaults.
type Config struct {
	// Publisher publishes the sessions' connects and disconnects and
	// reads their notifications. Required.
	Publisher *gateway.Publisher
	// Logger (slog.Default()).
	Logger *slog.Logger
	// Registerer is where the metrics are registered (nil: nowhere).
	Registerer prometheus.Registerer
	// PingInterval is how often each client is pinged, and how long it
	// has to answer, or to take a message (DefaultPingInterval).
	PingInterval time.Duration
	// SendBuffer is how many notifications may wait for a client before
	// it is closed as too slow (DefaultSendBuffer).
	SendBuffer int
	// Auth, when set, lets a client open a session only with a user
	// token of the path's app (header "Authorization: Bearer …" or query
	// parameter token), as the token's user: its "sub" must equal the
	// query's user, which may be left out. Nil lets anyone connect as
	// anyone.
	Auth *auth.Authenticator
	// AllowedOrigins are the pages, besides those of the gateway's own
	// host, a browser may open a socket from: host patterns
	// ("app.example.com", "*.example.com") or origins
	// ("https://app.example.com"), matched with path.Match. A request
	// without Origin (not a browser) is always let through.
	AllowedOrigins []string
	// MaxSockets is the most sessions this gateway holds at once
	// (DefaultMaxSockets).
	MaxSockets int
	// MaxSocketsPerUser is the most sessions of one user this gateway
	// holds at once (DefaultMaxSocketsPerUser).
	MaxSocketsPerUser int
	// ActivityInterval is how often, at most, a session publishes the
	// activity its client reports (DefaultActivityInterval).
	ActivityInterval time.Duration
}

// Server serves WebSocket clients and delivers their notifications.
type Server struct {
	pub          *gateway.Publisher
	log          *slog.Logger
	metrics      *metrics
	pingInterval time.Duration
	sendBuffer   int
	auth         *auth.Authenticator
	origins      []string
	maxSockets   int
	maxPerUser   int
	// activityEvery: Config.ActivityInterval.
	activityEvery time.Duration

	mu       sync.RWMutex
	conns    map[key]*conn      // sessions by id, until their id is free
	users    map[userKey]int    // entries of conns by user
	live     map[*conn]struct{} // sessions whose handler runs
	closing  bool               // Shutdown has begun
	handlers sync.WaitGroup     // one per entry of live

	reading     chan struct{} // closed once Run reads notifications
	readingOnce sync.Once
	drained     chan struct{} // closed once Shutdown published its disconnects
	drainedOnce sync.Once
}

// New returns a Server; Run delivers its notifications.
func New(cfg Config) (*Server, error) {
	if cfg.Publisher == nil {
		return nil, errors.New("socket.Config: no Publisher")
	}
	if cfg.PingInterval < 0 || cfg.SendBuffer < 0 || cfg.MaxSockets < 0 || cfg.MaxSocketsPerUser < 0 || cfg.ActivityInterval < 0 {
		return nil, fmt.Errorf("socket.Config: negative PingInterval %s, SendBuffer %d, MaxSockets %d, MaxSocketsPerUser %d or ActivityInterval %s",
			cfg.PingInterval, cfg.SendBuffer, cfg.MaxSockets, cfg.MaxSocketsPerUser, cfg.ActivityInterval)
	}
	if cfg.ActivityInterval == 0 {
		cfg.ActivityInterval = DefaultActivityInterval
	}
	if err := checkOrigins(cfg.AllowedOrigins); err != nil {
		return nil, fmt.Errorf("socket.Config: %w", err)
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.SendBuffer == 0 {
		cfg.SendBuffer = DefaultSendBuffer
	}
	if cfg.MaxSockets == 0 {
		cfg.MaxSockets = DefaultMaxSockets
	}
	if cfg.MaxSocketsPerUser == 0 {
		cfg.MaxSocketsPerUser = DefaultMaxSocketsPerUser
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("registering socket metrics: %w", err)
	}
	return &Server{
		pub:           cfg.Publisher,
		log:           cfg.Logger.With("component", "socket"),
		metrics:       m,
		pingInterval:  cfg.PingInterval,
		sendBuffer:    cfg.SendBuffer,
		auth:          cfg.Auth,
		origins:       cfg.AllowedOrigins,
		maxSockets:    cfg.MaxSockets,
		maxPerUser:    cfg.MaxSocketsPerUser,
		activityEvery: cfg.ActivityInterval,
		conns:         map[key]*conn{},
		users:         map[userKey]int{},
		live:          map[*conn]struct{}{},
		reading:       make(chan struct{}),
		drained:       make(chan struct{}),
	}, nil
}

// Register adds GET /v1/apps/{app}/ws to mux (an *http.ServeMux: the
// handler reads its path values from it).
func (s *Server) Register(mux httpapi.Router) {
	mux.Handle("GET /v1/apps/{app}/ws", http.HandlerFunc(s.handle))
}

// Run reads the notifications for this gateway's sessions and delivers
// them until ctx ends; then it returns nil. Call it once.
func (s *Server) Run(ctx context.Context) error {
	return s.pub.Notifications(ctx, s.deliver,
		gateway.OnReading(func(partition int32, offset int64) {
			s.log.Info("reading notifications", "partition", partition, "offset", offset)
			s.readingOnce.Do(func() { close(s.reading) })
		}),
		gateway.OnUndecodable(func(offset int64, err error) {
			s.metrics.undecodable.Inc()
			s.log.Warn("skipping an undecodable notification", "offset", offset, "err", err)
		}),
		gateway.OnReadError(func(err error) {
			if s.Ready(ctx) != nil && errors.Is(err, kerr.UnknownTopicOrPartition) {
				// A first start: the processor has not created the topic yet.
				s.log.Info("waiting for the notification topic (the processor creates it)", "topic", schemas.NotifyTopic)
				return
			}
			s.log.Warn("reading notifications", "err", err)
		}),
	)
}

// Ready reports whether Run reads notifications, as a readiness probe.
func (s *Server) Ready(context.Context) error {
	select {
	case <-s.reading:
		return nil
	default:
		return errors.New("not reading notifications yet")
	}
}

// deliver queues a notification for each of its recipients that has a
// socket here. It never waits: a recipient whose buffer is full is closed.
func (s *Server) deliver(n *pb.Notification) {
	typ, ok := messageType(n.GetType())
	if !ok {
		s.metrics.unknownType.Inc()
		return
	}
	data := encode(typ, n.GetSubject())
	targets := make([]*conn, len(n.GetRecipients()))
	s.mu.RLock()
	for i, r := range n.GetRecipients() {
		targets[i] = s.conns[key{n.GetApp(), r.GetUser(), r.GetSession()}]
	}
	s.mu.RUnlock()
	for _, c := range targets {
		switch {
		case c == nil || c.ended():
			s.metrics.dropped.WithLabelValues(dropNotHere).Inc()
		case !c.enqueue(outgoing{typ: typ, data: data}):
			s.metrics.dropped.WithLabelValues(dropSlowConsumer).Inc()
			c.end(ending{reason: gateway.Timeout, status: websocket.StatusPolicyViolation,
				text: fmt.Sprintf("too slow: %d notifications not read", cap(c.send)), cause: causeSlowConsumer})
		}
	}
}

// finish publishes the disconnect of an ended session and frees its id,
// or, for a session Shutdown ends, waits until Shutdown has done both.
func (s *Server) finish(c *conn) {
	if c.ending.batched {
		<-s.drained
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), PublishTimeout)
	defer cancel()
	c.order.Lock() // after any report in flight
	err := s.pub.Publish(ctx, gateway.Event{Type: gateway.Disconnect,
		App: c.app, User: c.user, Session: c.session, Reason: c.ending.reason})
	c.order.Unlock()
	if err != nil {
		s.log.Error("publishing a disconnect", "app", c.app, "user", c.user, "session", c.session, "err", err)
	}
	s.release(c)
}

// release frees the id of a session whose disconnect is published.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	if s.conns[c.key] == c {
		delete(s.conns, c.key)
		u := c.userKey()
		if s.users[u]--; s.users[u] == 0 {
			delete(s.users, u)
		}
	}
	s.mu.Unlock()
	close(c.released)
}

// Shutdown refuses new sessions, publishes the disconnects of every open
// session in one batch (reason GatewayShutdown), then closes their sockets
// with StatusGoingAway. When ctx ends first, it cuts the connections that
// remain and returns.
func (s *Server) Shutdown(ctx context.Context) error {
	shutdown := ending{reason: gateway.GatewayShutdown, status: websocket.StatusGoingAway,
		text: "gateway shutting down", cause: causeShutdown}
	var batch []*conn
	s.mu.Lock()
	s.closing = true
	for _, c := range s.conns {
		if !c.open {
			// Its connect is not acknowledged yet: its handler publishes
			// the disconnect after it, in order.
			c.end(shutdown)
			continue
		}
		e := shutdown
		e.batched = true
		if c.end(e) {
			batch = append(batch, c)
		}
	}
	s.mu.Unlock()

	var err error
	if len(batch) > 0 {
		// After any report in flight (activity.go); ended, they publish
		// no other.
		for _, c := range batch {
			c.order.Lock()
		}
		events := make([]gateway.Event, len(batch))
		for i, c := range batch {
			events[i] = gateway.Event{Type: gateway.Disconnect, App: c.app, User: c.user, Session: c.session, Reason: gateway.GatewayShutdown}
		}
		if perr := s.pub.Publish(ctx, events...); perr != nil {
			err = fmt.Errorf("publishing the disconnects of %d sessions: %w", len(batch), perr)
		}
		for _, c := range batch {
			c.order.Unlock()
		}
	}
	for _, c := range batch {
		s.release(c)
	}
	s.drainedOnce.Do(func() { close(s.drained) })

	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.RLock()
		n := len(s.live)
		for c := range s.live {
			c.cut()
		}
		s.mu.RUnlock()
		err = errors.Join(err, fmt.Errorf("closing %d sockets: %w", n, ctx.Err()))
	}
	return err
}
