// Command queryapi serves Presence lookups over HTTP, writes custom
// status, friendships and subscriptions to Kafka, and delivers the
// webhooks of its --auth file (package queryapi/webhook).
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/queryapi/watch"
	"github.com/presence-im/presence/queryapi/webhook"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/cli"
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/kafkaconn"
	"github.com/presence-im/presence/service/ratelimit"
)

func main() { cli.Main("queryapi", run) }

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("queryapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL: one server, or a Redis Cluster (any node, or redis://h1:p1?addr=h2:p2)")
	keyPrefix := fs.String("key-prefix", redisstore.DefaultPrefix, "prefix of every Redis key")
	addr := fs.String("addr", ":8080", "HTTP listen address")
	brokers := fs.String("brokers", "", "Kafka seed brokers, comma-separated (required)")
	maxSubs := fs.Int("max-subscriptions", queryapi.DefaultMaxSubscriptions, "most users one subscriber may watch at once")
	watchWindow := fs.Duration("watch-window", watch.DefaultWindow, "how long the changes that watches are answered from are kept: a watch cursor older than this may be expired (410)")
	watchMax := fs.Int("watch-max-changes", watch.DefaultMaxChanges, "most changes kept for watches (a few hundred bytes each); past it the oldest go, expiring the cursors before them")
	authFile := fs.String("auth", "", "auth file: the apps' keys and user token secrets (re-read on SIGHUP); required unless --insecure")
	insecure := fs.Bool("insecure", false, "serve without --auth: anyone may read and write any user of any app")
	kafka := kafkaconn.Register(fs)
	metricsAddr := fs.String("metrics-addr", "", "listen address of /metrics alone (empty: /metrics is served on --addr)")
	var rates ratelimit.Flags
	rates.Register(fs)
	cli.Usage(fs, "queryapi: serves Presence lookups over HTTP, writes custom status, friends and subscriptions to Kafka")
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	if *brokers == "" {
		return errors.New("--brokers is required: the Kafka the writes go to")
	}
	if *maxSubs <= 0 {
		return errors.New("--max-subscriptions must be positive")
	}
	if *watchWindow <= 0 || *watchMax <= 0 {
		return errors.New("--watch-window and --watch-max-changes must be positive")
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	defer func() { // after every other deferred close: the last line of a clean stop
		if err == nil {
			log.Info("queryapi stopped")
		}
	}()
	authn, err := auth.Setup(ctx, *authFile, *insecure, log)
	if err != nil {
		return err
	}
	redisstore.LogTo(log)
	kopts, err := kafka.Opts(log)
	if err != nil {
		return err
	}

	store, err := redisstore.Open(ctx, *redisURL, redisstore.Options{Prefix: *keyPrefix})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := kafka.Check(ctx, strings.Split(*brokers, ","), kopts); err != nil {
		return err
	}
	reg := httpapi.NewRegistry()
	s, err := queryapi.New(queryapi.Config{
		Store: store, Brokers: strings.Split(*brokers, ","), MaxSubscriptions: *maxSubs,
		WatchWindow: *watchWindow, WatchMaxChanges: *watchMax,
		Auth: authn, Logger: log, KafkaOpts: kopts, Registry: reg, NoMetrics: *metricsAddr != "", RateLimits: rates.Scopes(authn != nil),
	})
	if err != nil {
		return err
	}
	defer s.Close()
	hooks, err := webhook.New(webhook.Config{Brokers: strings.Split(*brokers, ","), KafkaOpts: kopts, Webhooks: authn,
		Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	l, err := httpapi.Listen(*addr)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	ready := []any{"addr", l.Addr().String()}
	if *metricsAddr != "" {
		ml, err := httpapi.Listen(*metricsAddr)
		if err != nil {
			l.Close()
			return err
		}
		ready = append(ready, "metrics_addr", ml.Addr().String())
		g.Go(func() error { return httpapi.ServeMetrics(ctx, ml, reg, log) })
	}
	log.Info("queryapi ready", ready...)
	g.Go(func() error { return httpapi.Serve(ctx, l, s.Handler(), log) })
	g.Go(func() error { // waiting watches answer at once, so that the shutdown does not wait for them
		<-ctx.Done()
		s.Drain()
		return nil
	})
	g.Go(func() error { return hooks.Run(ctx) })
	return g.Wait()
}
