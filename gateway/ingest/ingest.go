// Package ingest is the HTTP ingestion endpoint of the gateway server, for
// IM gateways written in other languages: they post batches of connects,
// disconnects and activity changes, and heartbeats, which it publishes to
// Kafka. An activity event names the whole session, as its connect does
// (device required), and must be posted only while the session is live
// (see gateway.ActivityChange).
//
// An event's "at" may run ahead of the server's clock by at most the
// maximum clock skew (DefaultMaxClockSkew, MaxClockSkew): within it, it
// is taken as the server's now; beyond it, the batch is refused 400 and
// nothing of it is written, since a session connected in the future would
// outlive its gateway's lease. An "at" in the past is kept: a gateway may
// post events it held while Kafka was down.
//
// Metrics (namespace presence, subsystem gateway):
//
//	presence_gateway_events_total{type}        events published
//	presence_gateway_batches_total{result}     batches: accepted, invalid,
//	                                           refused (401, 403), failed
//	presence_gateway_publish_seconds           time until Kafka acknowledged
//	                                           a batch
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/status"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/httpapi"
)

// DefaultMaxClockSkew is how far ahead of the server's clock an event's
// "at" may be, by default.
const DefaultMaxClockSkew = 5 * time.Second

// Option configures a Handler.
type Option func(*Handler)

// MaxClockSkew sets how far ahead of the server's clock an event's "at"
// may be (DefaultMaxClockSkew).
func MaxClockSkew(d time.Duration) Option { return func(h *Handler) { h.maxSkew = d } }

// Clock sets the server's clock (time.Now).
func Clock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// MaxEvents is the most events one batch may hold.
const MaxEvents = 10000

// PublishTimeout bounds how long a request waits for Kafka. Publishing is
// not tied to the request: a client that hangs up must not cancel records
// that other requests' records are batched with.
const PublishTimeout = 10 * time.Second

// publishContext is the context a request publishes under.
func publishContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), PublishTimeout)
}

// Publisher is what the endpoint publishes with; *gateway.Publisher is one.
// A publisher that also has a method Atomic() bool reporting true (as a
// *gateway.Publisher made with gateway.Atomic does) writes each batch
// whole or not at all, and the endpoint says so when it answers 503.
type Publisher interface {
	Publish(ctx context.Context, events ...gateway.Event) error
	HeartbeatFor(ctx context.Context, gateway, epoch string) error
}

// Answers to a batch Kafka did not acknowledge, by whether the publisher
// is atomic.
const (
	unavailableAtomic  = "kafka did not acknowledge the batch in time; it is written whole or not at all, and posting it again is safe before any later event of its sessions"
	unavailablePartial = "kafka did not acknowledge the batch in time; some of it may be written, and posting it again is safe before any later event of its sessions"
)

// Handler serves POST /v1/apps/{app}/events and
// POST /v1/gateways/{gateway}/heartbeat.
type Handler struct {
	pub     Publisher
	auth    *auth.Authenticator
	atomic  bool
	maxSkew time.Duration
	now     func() time.Time
	log     *slog.Logger
	events  *prometheus.CounterVec
	batches *prometheus.CounterVec
	publish prometheus.Histogram
}

// New returns a Handler registering its metrics on reg. With an
// authenticator, a batch of events needs a key of scope gateway of the
// path's app that lists the batch's gateway, and a heartbeat a key of
// scope gateway (of any app) that lists the path's gateway: only a
// gateway itself may declare its new epoch. Without credentials the
// answer is 401 unauthorized, with others 403 forbidden. A nil
// authenticator lets anyone post.
//
// opts set the clock and the maximum clock skew.
func New(pub Publisher, log *slog.Logger, reg prometheus.Registerer, a *auth.Authenticator, opts ...Option) (*Handler, error) {
	at, ok := pub.(interface{ Atomic() bool })
	h := &Handler{
		pub:     pub,
		auth:    a,
		atomic:  ok && at.Atomic(),
		maxSkew: DefaultMaxClockSkew,
		now:     time.Now,
		log:     log.With("component", "ingest"),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "gateway", Name: "events_total",
			Help: "Session events published, by type.",
		}, []string{"type"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presence", Subsystem: "gateway", Name: "batches_total",
			Help: "Event batches received, by result: accepted, invalid, refused (401, 403), failed.",
		}, []string{"result"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "presence", Subsystem: "gateway", Name: "publish_seconds",
			Help:    "Time until Kafka acknowledged a batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for _, o := range opts {
		o(h)
	}
	if h.maxSkew <= 0 {
		return nil, fmt.Errorf("ingest: max clock skew %s is not positive", h.maxSkew)
	}
	for _, c := range []prometheus.Collector{h.events, h.batches, h.publish} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Register adds the endpoint's routes to mux (an *http.ServeMux: the
// handlers read their path values from it).
func (h *Handler) Register(mux httpapi.Router) {
	mux.Handle("POST /v1/apps/{app}/events", h.serve(h.postEvents))
	mux.Handle("POST /v1/gateways/{gateway}/heartbeat", h.serve(h.postHeartbeat))
}

func (h *Handler) serve(fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			httpapi.WriteError(w, r, h.log, err)
		}
	}
}

type eventsRequest struct {
	Gateway string      `json:"gateway"`
	Epoch   string      `json:"epoch"`
	Events  []eventJSON `json:"events"`
}

type eventJSON struct {
	Type     string `json:"type"`
	User     string `json:"user"`
	Session  string `json:"session"`
	Device   string `json:"device"`
	DeviceID string `json:"device_id"`
	// Reason of a disconnect: client_closed (default), timeout or
	// gateway_shutdown.
	Reason string `json:"reason"`
	// Activity of an activity event (required: active, idle or
	// background), or of a connect (optional: active).
	Activity string `json:"activity"`
	// At is when the gateway saw the event (RFC 3339); when absent, the
	// time the server publishes it. A time ahead of the server's clock
	// is taken as the server's time within the maximum skew, and refused
	// beyond it.
	At *time.Time `json:"at"`
}

var reasons = map[string]gateway.Reason{
	"":                 gateway.ClientClosed,
	"client_closed":    gateway.ClientClosed,
	"timeout":          gateway.Timeout,
	"gateway_shutdown": gateway.GatewayShutdown,
}

// postEvents validates a batch whole and publishes it; 202 means Kafka has
// every record of it. Every event is checked before any is published, so
// an invalid batch writes nothing; with an atomic publisher, neither does
// a batch Kafka acknowledges in part (or, when Kafka's answer is lost, it
// writes all of it).
func (h *Handler) postEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := h.authenticate(r)
	if err != nil {
		h.batches.WithLabelValues("refused").Inc()
		return err
	}
	if app := r.PathValue("app"); h.auth != nil && (id.App != app || !id.Has(auth.ScopeGateway)) {
		// Refused before the body is read: only the gateway list needs it.
		h.batches.WithLabelValues("refused").Inc()
		return id.AllowGateway(app, "")
	}
	events, gw, err := h.parseEvents(w, r)
	if err != nil {
		h.batches.WithLabelValues("invalid").Inc()
		return err
	}
	if h.auth != nil {
		if err := id.AllowGateway(r.PathValue("app"), gw); err != nil {
			h.batches.WithLabelValues("refused").Inc()
			return err
		}
	}
	start := time.Now()
	ctx, cancel := publishContext(r)
	defer cancel()
	if err := h.pub.Publish(ctx, events...); err != nil {
		h.batches.WithLabelValues("failed").Inc()
		msg := unavailablePartial
		if h.atomic {
			msg = unavailableAtomic
		}
		return fmt.Errorf("%w (%w)", httpapi.Errorf(httpapi.CodeUnavailable, msg), err)
	}
	h.publish.Observe(time.Since(start).Seconds())
	h.batches.WithLabelValues("accepted").Inc()
	for _, e := range events {
		switch e.Type {
		case gateway.Connect:
			h.events.WithLabelValues("connect").Inc()
		case gateway.ActivityChange:
			h.events.WithLabelValues("activity").Inc()
		default:
			h.events.WithLabelValues("disconnect").Inc()
		}
	}
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]int{"accepted": len(events)})
	return nil
}

// authenticate identifies the caller when the handler checks
// credentials.
func (h *Handler) authenticate(r *http.Request) (auth.Identity, error) {
	if h.auth == nil {
		return auth.Identity{}, nil
	}
	return h.auth.Authenticate(r)
}

// parseEvents reads and checks a batch, and returns its events and
// gateway.
func (h *Handler) parseEvents(w http.ResponseWriter, r *http.Request) ([]gateway.Event, string, error) {
	app := r.PathValue("app")
	if err := schemas.ValidateApp(app); err != nil {
		return nil, "", httpapi.Errorf(httpapi.CodeInvalid, err.Error())
	}
	var req eventsRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return nil, "", err
	}
	if err := errors.Join(schemas.ValidateID("gateway", req.Gateway), schemas.ValidateID("epoch", req.Epoch)); err != nil {
		return nil, "", httpapi.Errorf(httpapi.CodeInvalid, err.Error())
	}
	if req.Events == nil {
		return nil, "", httpapi.Errorf(httpapi.CodeInvalid, `"events" is required: a list of events`)
	}
	if len(req.Events) > MaxEvents {
		return nil, "", httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("%d events in one batch, at most %d", len(req.Events), MaxEvents))
	}
	events := make([]gateway.Event, len(req.Events))
	now := h.now()
	for i, e := range req.Events {
		ev := gateway.Event{
			App: app, User: e.User, Session: e.Session, Device: e.Device, DeviceID: e.DeviceID,
			Gateway: req.Gateway, Epoch: req.Epoch,
		}
		if e.At != nil {
			at, err := h.clamp(*e.At, now)
			if err != nil {
				return nil, "", httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("events[%d]: %v", i, err))
			}
			ev.At = at
		}
		if e.Activity != "" {
			a, ok := status.ParseActivity(e.Activity)
			if !ok || e.Type == "disconnect" {
				return nil, "", httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("events[%d]: activity %q: want active, idle or background, on a connect or activity event", i, e.Activity))
			}
			ev.Activity = a
		}
		switch e.Type {
		case "connect", "activity":
			ev.Type = gateway.Connect
			if e.Type == "activity" {
				ev.Type = gateway.ActivityChange
				if e.Activity == "" {
					return nil, "", httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf(`events[%d]: an activity event needs "activity": active, idle or background`, i))
				}
			}
			if e.Reason != "" {
				return nil, "", httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("events[%d]: a %s has no reason", i, e.Type))
			}
		case "disconnect":
			ev.Type = gateway.Disconnect
			reason, ok := reasons[e.Reason]
			if !ok {
				return nil, "", httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("events[%d]: reason %q: want client_closed, timeout or gateway_shutdown", i, e.Reason))
			}
			ev.Reason = reason
		default:
			return nil, "", httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("events[%d]: type %q: want connect, disconnect or activity", i, e.Type))
		}
		if err := ev.Validate(); err != nil {
			return nil, "", httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("events[%d]: %v", i, err))
		}
		events[i] = ev
	}
	return events, req.Gateway, nil
}

// clamp is at as published: now when at is ahead of now by at most the
// maximum skew, at when it is not ahead; an error when it is further ahead.
func (h *Handler) clamp(at, now time.Time) (time.Time, error) {
	switch {
	case !at.After(now):
		return at, nil
	case at.Sub(now) <= h.maxSkew:
		return now, nil
	default:
		return time.Time{}, fmt.Errorf(`"at" %s is %s ahead of the server's clock, more than the %s allowed: check the gateway's clock`,
			at.Format(time.RFC3339Nano), at.Sub(now).Round(time.Millisecond), h.maxSkew)
	}
}

type heartbeatRequest struct {
	Epoch string `json:"epoch"`
}

// postHeartbeat renews an external gateway's lease.
func (h *Handler) postHeartbeat(w http.ResponseWriter, r *http.Request) error {
	gw := r.PathValue("gateway")
	id, err := h.authenticate(r)
	if err != nil {
		return err
	}
	var req heartbeatRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := errors.Join(schemas.ValidateID("gateway", gw), schemas.ValidateID("epoch", req.Epoch)); err != nil {
		return httpapi.Errorf(httpapi.CodeInvalid, err.Error())
	}
	if h.auth != nil {
		if err := id.AllowGateway("", gw); err != nil {
			return err
		}
	}
	ctx, cancel := publishContext(r)
	defer cancel()
	if err := h.pub.HeartbeatFor(ctx, gw, req.Epoch); err != nil {
		return fmt.Errorf("%w (%w)", httpapi.Errorf(httpapi.CodeUnavailable, "kafka did not acknowledge the heartbeat; retry it"), err)
	}
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"gateway": gw, "epoch": req.Epoch})
	return nil
}
