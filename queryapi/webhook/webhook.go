// Package webhook tells the webhooks of the --auth file (auth.Webhook) of
// every visible change of their app's users: it follows the topic
// presence.changes, and POSTs each change of the app as the WebSocket
// gateway's message, {"type":"presence",…Status}, with the header
// Presence-Signature: sha256=<hex HMAC-SHA256 of the body with the
// webhook's secret>.
//
// Isolation. Each endpoint is a consumer of its own, in a Kafka consumer
// group of its own (GroupID: the app and a hash of the URL, never the
// secret), that reads the whole topic and keeps its app's records. So an
// endpoint that is slow or dead lags alone: the processor never waits for
// it (it only writes the topic), nor do other endpoints of its app or of
// other apps. The price is that each endpoint reads every app's changes,
// hence the bound on webhooks per app (auth.MaxWebhooks). The query API
// instances share each group's partitions, so several of them deliver
// each change once, not once each.
//
// Delivery is at least once and in order per user. A poll of at most
// Config.MaxBatch records is grouped by user; the users are delivered
// concurrently, at most Config.InFlight requests at once per endpoint,
// and each user's changes one after the other, the next only once the
// previous one was acknowledged (a 2xx answer) or given up. The batch's
// offsets are committed only once every change of it was, so a restart
// resumes at the first change not done and may send some again: a
// receiver drops a status whose version is not above the last one it has
// for that user. A rebalance (a query API starting or stopping) waits for
// the batch in hand, up to the group's rebalance timeout (a minute): past
// it, as with an endpoint too slow for that, the partition moves while
// its batch is still being sent, and the new owner sends it again.
//
// A change is given up after Config.MaxAttempts attempts (any answer
// other than 2xx, redirects included, or no answer within Config.Timeout,
// is a failed attempt; attempts are spaced by a backoff doubling from
// Config.MinBackoff to Config.MaxBackoff, jittered), or at once when its
// body is over MaxBody; it is counted as failed and logged with the app
// and the endpoint's id, never the URL or the secret. A change older than the topic's retention
// (schemas.ChangesRetention, a day) when its endpoint comes to it is
// lost. A new endpoint starts at the changes written since the auth file
// that first listed it was loaded.
//
// The webhooks follow the auth file: a reload (SIGHUP) that adds an
// endpoint starts it, one that removes it stops it (its deliveries in
// flight are abandoned, to be sent again if it comes back), and one that
// changes its secret restarts it where it was.
//
// Metrics (namespace presence, subsystem webhook):
//
//	presence_webhook_deliveries_total{app,outcome}  outcomes of deliveries:
//	                                                delivered, failed (given
//	                                                up), retried (an attempt
//	                                                failed, another follows)
//	presence_webhook_skipped_total{app}             records under the app's
//	                                                keys that are not a change
//	                                                of their user: not sent
//	presence_webhook_request_seconds{app}           time to answer one attempt
//	presence_webhook_lag_seconds{app}               from the change to its
//	                                                acknowledgement
//	presence_webhook_endpoints                      endpoints being delivered
package webhook

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/service/auth"
)

// Defaults of Config.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxAttempts = 8
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultInFlight    = 16
	DefaultMaxBatch    = 500
)

// MaxBody is the largest body sent: a change whose body is larger is given
// up at once.
const MaxBody = 1 << 20

// Source gives the webhooks to deliver, and a channel closed when they may
// have changed (*auth.Authenticator; a nil one has none).
type Source interface {
	Webhooks() ([]auth.Webhook, <-chan struct{})
}

// Config configures a Sender. Zero values mean the documented defaults.
type Config struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// KafkaOpts add franz-go options to every endpoint's consumer: TLS,
	// SASL.
	KafkaOpts []kgo.Opt
	// Webhooks says which endpoints to deliver. Required (a nil
	// *auth.Authenticator is fine: no webhooks).
	Webhooks Source
	// Timeout bounds one attempt, from sending the request to reading
	// the answer's headers (DefaultTimeout).
	Timeout time.Duration
	// MaxAttempts is how many attempts a change gets before it is given
	// up (DefaultMaxAttempts).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait after a failed attempt:
	// MinBackoff after the first, doubling up to MaxBackoff, each drawn
	// between half and all of it (DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// InFlight is the most requests one endpoint has at once, each for
	// another user (DefaultInFlight).
	InFlight int
	// MaxBatch is the most changes an endpoint takes from Kafka at once,
	// of every app (DefaultMaxBatch).
	MaxBatch int
	// Logger receives deliveries given up and endpoints started and
	// stopped (slog.Default()).
	Logger *slog.Logger
	// Registerer receives the metrics (none when nil).
	Registerer prometheus.Registerer
}

// Sender delivers the webhooks of its Source until Run's context ends.
type Sender struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	client  *http.Client
}

// New returns a Sender; Run delivers.
func New(cfg Config) (*Sender, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("webhook: no kafka brokers")
	case cfg.Webhooks == nil:
		return nil, errors.New("webhook: no source of webhooks")
	case cfg.Timeout < 0 || cfg.MaxAttempts < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || cfg.InFlight < 0 || cfg.MaxBatch < 0:
		return nil, errors.New("webhook: a negative bound in the config")
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts)
	cfg.MinBackoff = cmp.Or(cfg.MinBackoff, DefaultMinBackoff)
	cfg.MaxBackoff = max(cmp.Or(cfg.MaxBackoff, DefaultMaxBackoff), cfg.MinBackoff)
	cfg.InFlight = cmp.Or(cfg.InFlight, DefaultInFlight)
	cfg.MaxBatch = cmp.Or(cfg.MaxBatch, DefaultMaxBatch)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg, log: cfg.Logger.With("component", "webhook"), metrics: m, client: newClient(cfg.InFlight)}, nil
}

// running is an endpoint being delivered.
type running struct {
	hook   auth.Webhook
	cancel context.CancelFunc
	done   chan struct{}
}

// Run delivers the webhooks until ctx ends, starting and stopping
// endpoints as the Source's list changes. It returns once every endpoint
// has stopped and committed what it delivered.
func (s *Sender) Run(ctx context.Context) error {
	live := map[string]*running{} // by app and endpoint id
	// since is when each endpoint was first listed: where a new group
	// starts.
	since := map[string]time.Time{}
	defer func() {
		var wg sync.WaitGroup
		for _, r := range live {
			wg.Go(func() { s.stop(r) })
		}
		wg.Wait()
		s.metrics.endpoints.Set(0)
	}()
	for {
		hooks, changed := s.cfg.Webhooks.Webhooks()
		s.reconcile(ctx, live, since, hooks)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// reconcile starts the endpoints of hooks not running, stops those running
// that hooks no longer lists, and restarts those whose secret changed.
func (s *Sender) reconcile(ctx context.Context, live map[string]*running, since map[string]time.Time, hooks []auth.Webhook) {
	want := make(map[string]auth.Webhook, len(hooks))
	for _, h := range hooks {
		k := h.App + "\x00" + h.ID
		want[k] = h
		if _, ok := since[k]; !ok {
			since[k] = h.Loaded
		}
	}
	for k, r := range live {
		if h, ok := want[k]; !ok || string(h.Secret) != string(r.hook.Secret) || h.URL != r.hook.URL {
			s.stop(r)
			delete(live, k)
		}
	}
	for k, h := range want {
		if live[k] != nil {
			continue
		}
		e, err := s.newEndpoint(h, since[k])
		if err != nil {
			s.log.Error("starting a webhook", "app", h.App, "endpoint", h.ID, "err", err)
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		r := &running{hook: h, cancel: cancel, done: make(chan struct{})}
		live[k] = r
		go func() {
			defer close(r.done)
			e.run(rctx)
		}()
		s.log.Info("delivering a webhook", "app", h.App, "endpoint", h.ID, "group", e.group)
	}
	s.metrics.endpoints.Set(float64(len(live)))
}

// stop stops r and waits until it has committed what it delivered.
func (s *Sender) stop(r *running) {
	r.cancel()
	<-r.done
}

// newClient is the HTTP client of every endpoint: it follows no
// redirect (an endpoint that moved answers 3xx, which fails the attempt)
// and keeps a connection per request in flight.
func newClient(inFlight int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = inFlight
	tr.MaxResponseHeaderBytes = maxAnswer * 16
	tr.Proxy = http.ProxyFromEnvironment
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
