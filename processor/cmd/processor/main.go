// Command processor materializes the Presence topics into Redis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/cli"
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/kafkaconn"
)

func main() { cli.Main("processor", run) }

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("processor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL: one server, or a Redis Cluster (any node, or redis://h1:p1?addr=h2:p2)")
	keyPrefix := fs.String("key-prefix", redisstore.DefaultPrefix, "prefix of every Redis key")
	group := fs.String("group", processor.DefaultGroup, "Kafka consumer group")
	instanceID := fs.String("instance-id", "", "static member id in the consumer group, unique per processor and kept across restarts (a pod name): a restart takes its partitions back at once (empty: a dynamic member)")
	sessionTimeout := fs.Duration("session-timeout", processor.DefaultSessionTimeout, "how long the group waits for a processor that stopped before its partitions go to the others (at least the brokers' group.min.session.timeout.ms)")
	partitions := fs.Int("partitions", schemas.DefaultPartitions, "partitions of the topics created when missing")
	offlineTTL := fs.Duration("offline-ttl", redisstore.DefaultOfflineTTL, "how long a user with no session is remembered")
	offlineGrace := fs.Duration("offline-grace", processor.DefaultOfflineGrace, "how long a user must stay offline before friends and subscribers are told")
	gatewayLease := fs.Duration("gateway-lease", processor.DefaultGatewayLease, "lease of a gateway that never heartbeats: its sessions end this long after they connect")
	var limits processor.Limits
	limits.Flags(fs)
	addr := fs.String("addr", ":8091", "HTTP listen address of /healthz, /readyz and /metrics")
	kafka := kafkaconn.Register(fs)
	metricsAddr := fs.String("metrics-addr", "", "listen address of /metrics alone (empty: /metrics is served on --addr)")
	cli.Usage(fs, "processor: materializes the Presence topics into Redis")
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	if *offlineTTL <= 0 || *partitions <= 0 || *offlineGrace <= 0 || *gatewayLease <= 0 || *sessionTimeout <= 0 {
		return errors.New("--offline-ttl, --offline-grace, --gateway-lease, --session-timeout and --partitions must be positive")
	}
	if err := processor.CheckInstanceID(*instanceID); err != nil {
		return fmt.Errorf("--instance-id: %w", err)
	}
	if limits.MaxRecordBytes <= 0 || limits.MaxClockSkew <= 0 || limits.MaxGatewayLease <= 0 || limits.StallTimeout <= 0 {
		return errors.New("--max-record-bytes, --max-clock-skew, --max-gateway-lease and --stall-timeout must be positive")
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	defer func() { // after every other deferred close: the last line of a clean stop
		if err == nil {
			log.Info("processor stopped")
		}
	}()
	redisstore.LogTo(log)
	kopts, err := kafka.Opts(log)
	if err != nil {
		return err
	}

	store, err := redisstore.Open(ctx, *redisURL, redisstore.Options{Prefix: *keyPrefix, OfflineTTL: *offlineTTL})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := kafka.Check(ctx, strings.Split(*brokers, ","), kopts); err != nil {
		return err
	}
	reg := httpapi.NewRegistry()
	p, err := processor.New(processor.Config{
		Brokers: strings.Split(*brokers, ","), Group: *group, InstanceID: *instanceID, SessionTimeout: *sessionTimeout, Store: store,
		Partitions: int32(*partitions), OfflineGrace: *offlineGrace, GatewayLease: *gatewayLease, Limits: limits, Logger: log, Registerer: reg,
		KafkaOpts: kopts,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	httpapi.Health(mux, p.Ready)
	if *metricsAddr == "" {
		httpapi.Metrics(mux, reg)
	}
	l, err := httpapi.Listen(*addr)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	if *metricsAddr != "" {
		ml, err := httpapi.Listen(*metricsAddr)
		if err != nil {
			l.Close()
			return err
		}
		log.Info("serving metrics", "metrics_addr", ml.Addr().String())
		g.Go(func() error { return httpapi.ServeMetrics(ctx, ml, reg, log) })
	}
	g.Go(func() error { return p.Run(ctx) })
	g.Go(func() error { return httpapi.Serve(ctx, l, httpapi.Envelope(mux, log), log) })
	return g.Wait()
}
