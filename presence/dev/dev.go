// Package dev runs the whole Presence pipeline in one process: an embedded
// Kafka (kfake, persisted to the data directory) unless external brokers
// are given, an embedded Redis unless a Redis URL is given, the gateway
// server (HTTP ingestion and WebSocket clients), the processor and the
// query API.
//
// With Config.AuthFile both servers check credentials as the gateway and
// queryapi commands do with --auth, and the query API delivers the
// file's webhooks; without it they serve everyone, and Run logs a warning
// saying so.
//
// The embedded Redis lives in memory only; on every start the processor
// finds it empty and rebuilds it from the persisted topics, which is what
// Presence does after any loss of Redis.
package dev

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/ingest"
	"github.com/presence-im/presence/gateway/server"
	"github.com/presence-im/presence/gateway/socket"
	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/queryapi/webhook"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/ratelimit"
)

// Config configures Run. Zero values mean the defaults of `presence dev`.
type Config struct {
	DataDir   string   // "./.presence"
	KafkaAddr string   // "127.0.0.1:9092": where the embedded Kafka listens
	Brokers   []string // external Kafka instead of the embedded one
	// KafkaOpts are added to every client of the external Kafka (SASL,
	// TLS; see service/kafkaconn).
	KafkaOpts   []kgo.Opt
	RedisURL    string // external Redis instead of the embedded one
	QueryAddr   string // "127.0.0.1:8080"
	GatewayAddr string // "127.0.0.1:8090"
	OfflineTTL  time.Duration
	// OfflineGrace is how long a user must stay offline before friends
	// and subscribers are told (processor.DefaultOfflineGrace).
	OfflineGrace time.Duration
	// GatewayLease is the lease of the embedded gateway, and of external
	// gateways that never heartbeat (gateway.DefaultLease).
	GatewayLease time.Duration
	// AuthFile is the auth file both servers check credentials against,
	// re-read on SIGHUP. Without one everything is served to everyone,
	// with a warning in the log.
	AuthFile string
	// AllowedOrigins are the pages of other hosts than the gateway's
	// that may open WebSockets (socket.Config.AllowedOrigins).
	AllowedOrigins []string
	// Limits bound what the processor takes from a record (zero values:
	// the processor's defaults).
	Limits processor.Limits
	// MetricsAddr, when set, serves /metrics alone there, and not on the
	// query API and gateway addresses.
	MetricsAddr string
	// Rates are the rate limits of both servers (ratelimit.DefaultApp and
	// DefaultUser; a rate of 0 is no limit).
	Rates *ratelimit.Flags
	// MaxSockets and MaxSocketsPerUser cap the gateway's WebSocket
	// sessions (socket.DefaultMaxSockets, DefaultMaxSocketsPerUser).
	MaxSockets, MaxSocketsPerUser int
	// Registry receives every component's metrics (nil: a new one with
	// the Go and process collectors, httpapi.NewRegistry).
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Ready is called once everything serves.
	Ready func(Addrs)
}

// Addrs are where a running pipeline can be reached.
type Addrs struct {
	Query, Gateway string   // HTTP host:port
	Metrics        string   // host:port of /metrics, when it has its own
	Brokers        []string // Kafka
	Redis          string   // redis URL
}

func (c *Config) defaults() {
	c.DataDir = cmp.Or(c.DataDir, "./.presence")
	c.KafkaAddr = cmp.Or(c.KafkaAddr, "127.0.0.1:9092")
	c.QueryAddr = cmp.Or(c.QueryAddr, "127.0.0.1:8080")
	c.GatewayAddr = cmp.Or(c.GatewayAddr, "127.0.0.1:8090")
	c.OfflineTTL = cmp.Or(c.OfflineTTL, redisstore.DefaultOfflineTTL)
	c.GatewayLease = cmp.Or(c.GatewayLease, gateway.DefaultLease)
	if c.Rates == nil {
		c.Rates = &ratelimit.Flags{App: ratelimit.DefaultApp, User: ratelimit.DefaultUser}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Ready == nil {
		c.Ready = func(Addrs) {}
	}
}

// Run runs the pipeline until ctx ends, then stops it: the HTTP servers
// finish their requests, the processor its batch, the publisher flushes,
// and the embedded Kafka writes its state to disk.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	log := cfg.Logger
	addrs := Addrs{Brokers: cfg.Brokers, Redis: cfg.RedisURL}

	if len(addrs.Brokers) == 0 {
		unlock, err := lockDir(cfg.DataDir)
		if err != nil {
			return err
		}
		defer unlock()
		cluster, err := startKafka(cfg.KafkaAddr, filepath.Join(cfg.DataDir, "kafka"))
		if err != nil {
			return err
		}
		defer cluster.Close()
		addrs.Brokers = cluster.ListenAddrs()
	}
	if addrs.Redis == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("starting embedded redis: %w", err)
		}
		defer mr.Close()
		stopClock := runClock(mr)
		defer stopClock()
		addrs.Redis = "redis://" + mr.Addr()
	}
	store, err := redisstore.Open(ctx, addrs.Redis, redisstore.Options{OfflineTTL: cfg.OfflineTTL})
	if err != nil {
		return err
	}
	defer store.Close()

	authn, err := auth.Setup(ctx, cfg.AuthFile, true, log)
	if err != nil {
		return err
	}
	reg := cfg.Registry
	if reg == nil {
		reg = httpapi.NewRegistry()
	}
	proc, err := processor.New(processor.Config{Brokers: addrs.Brokers, KafkaOpts: cfg.KafkaOpts, Store: store,
		OfflineGrace: cfg.OfflineGrace, GatewayLease: cfg.GatewayLease, Limits: cfg.Limits, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	query, err := queryapi.New(queryapi.Config{Store: store, Brokers: addrs.Brokers, KafkaOpts: cfg.KafkaOpts, Auth: authn, Logger: log, Registry: reg,
		Probes: []httpapi.Probe{proc.Ready}, Gate: proc.CaughtUp,
		NoMetrics: cfg.MetricsAddr != "", RateLimits: cfg.Rates.Scopes(authn != nil)})
	if err != nil {
		return err
	}
	defer query.Close()
	hooks, err := webhook.New(webhook.Config{Brokers: addrs.Brokers, KafkaOpts: cfg.KafkaOpts, Webhooks: authn, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	pub, err := gateway.New(gateway.Brokers(addrs.Brokers...), gateway.ID("dev"), gateway.Lease(cfg.GatewayLease), gateway.Atomic(),
		gateway.KafkaOpts(cfg.KafkaOpts...))
	if err != nil {
		return err
	}
	defer pub.Close()
	ing, err := ingest.New(pub, log, reg, authn, ingest.MaxClockSkew(cmp.Or(cfg.Limits.MaxClockSkew, ingest.DefaultMaxClockSkew)))
	if err != nil {
		return err
	}
	sock, err := socket.New(socket.Config{Publisher: pub, Logger: log, Registerer: reg,
		Auth: authn, AllowedOrigins: cfg.AllowedOrigins,
		MaxSockets: cfg.MaxSockets, MaxSocketsPerUser: cfg.MaxSocketsPerUser})
	if err != nil {
		return err
	}
	gwLimits, err := ratelimit.New(ratelimit.Config{Server: "gateway", Scopes: cfg.Rates.Scopes(authn != nil), Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	gwRoutes := server.Routes{Ingest: ing, Socket: sock, Probes: []httpapi.Probe{pub.Ping}}
	if cfg.MetricsAddr == "" {
		gwRoutes.Metrics = reg
	}
	gwMux := gwRoutes.Mux()

	queryL, err := httpapi.Listen(cfg.QueryAddr)
	if err != nil {
		return err
	}
	gwL, err := httpapi.Listen(cfg.GatewayAddr)
	if err != nil {
		queryL.Close()
		return err
	}
	addrs.Query, addrs.Gateway = queryL.Addr().String(), gwL.Addr().String()

	g, ctx := errgroup.WithContext(ctx)
	if cfg.MetricsAddr != "" {
		metricsL, err := httpapi.Listen(cfg.MetricsAddr)
		if err != nil {
			queryL.Close()
			gwL.Close()
			return err
		}
		addrs.Metrics = metricsL.Addr().String()
		g.Go(func() error { return httpapi.ServeMetrics(ctx, metricsL, reg, log) })
	}
	g.Go(func() error { return proc.Run(ctx) })
	g.Go(func() error { return httpapi.Serve(ctx, queryL, query.Handler(), log) })
	g.Go(func() error { // waiting watches answer at once, so that the shutdown does not wait for them
		<-ctx.Done()
		query.Drain()
		return nil
	})
	g.Go(func() error { return hooks.Run(ctx) })
	g.Go(func() error {
		return httpapi.Serve(ctx, gwL, authn.Identify(gwLimits.Wrap(httpapi.Envelope(gwMux, log))), log)
	})
	g.Go(func() error { return sock.Run(ctx) })
	g.Go(func() error {
		return pub.KeepLease(ctx, func(err error) { log.Warn("renewing the gateway's lease", "err", err) })
	})
	g.Go(func() error {
		// Sockets are closed, and their disconnects published, before
		// the publisher closes (deferred above).
		<-ctx.Done()
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpapi.ShutdownTimeout)
		defer cancel()
		return sock.Shutdown(stop)
	})
	g.Go(func() error {
		// Ready once the processor has caught up and the gateway reads
		// notifications: nothing announced after that is missed.
		if err := waitReady(ctx, proc.Ready, sock.Ready); err != nil {
			return nil // stopping before ready is not an error
		}
		cfg.Ready(addrs)
		return nil
	})
	return g.Wait()
}

// runClock expires the embedded Redis's keys as time passes, once a
// second. (miniredis's own ClockTTL does it on every command, which costs
// a walk over all keys each time.)
func runClock(mr *miniredis.Miniredis) (stop func()) {
	t := time.NewTicker(time.Second)
	done := make(chan struct{})
	go func() {
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

func waitReady(ctx context.Context, probes ...httpapi.Probe) error {
	for {
		if allReady(ctx, probes) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// allReady reports whether every probe passes in one pass: a probe that
// passed once may fail again (the processor assigned more partitions)
// while a later one is still failing.
func allReady(ctx context.Context, probes []httpapi.Probe) bool {
	for _, ready := range probes {
		if ready(ctx) != nil {
			return false
		}
	}
	return true
}

// startKafka starts the embedded Kafka on addr, persisting to dir.
func startKafka(addr, dir string) (*kfake.Cluster, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("kafka address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("kafka address %q: %w", addr, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making kafka data dir: %w", err)
	}
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, portStr))
		}),
		kfake.DataDir(dir),
		// Compact the compacted topics every minute, as a real broker's
		// log cleaner would.
		kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": "60000"}),
	)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("kafka address %s is in use (another presence dev? pick one with --kafka-addr): %w", addr, err)
		}
		return nil, fmt.Errorf("starting embedded kafka: %w", err)
	}
	return cluster, nil
}
