// Command gateway is the reference gateway server: it holds WebSocket
// clients, publishing their connects and disconnects and delivering their
// notifications, and publishes the connects, disconnects and heartbeats
// that external IM gateways post over HTTP.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/ingest"
	"github.com/presence-im/presence/gateway/server"
	"github.com/presence-im/presence/gateway/socket"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/cli"
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/kafkaconn"
	"github.com/presence-im/presence/service/ratelimit"
)

func main() { cli.Main("gateway", run) }

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) (err error) {
	hostname, _ := os.Hostname()
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	addr := fs.String("addr", ":8090", "HTTP listen address")
	id := fs.String("id", hostname, "this gateway's id, stable across restarts")
	epoch := fs.String("epoch", "", "this gateway's boot epoch (random when empty)")
	lease := fs.Duration("gateway-lease", gateway.DefaultLease, "how long a heartbeat keeps a gateway's sessions alive")
	ping := fs.Duration("ping-interval", socket.DefaultPingInterval, "how often WebSocket clients are pinged, and how long they have to answer")
	sendBuffer := fs.Int("send-buffer", socket.DefaultSendBuffer, "notifications that may wait for a WebSocket client before it is closed as too slow")
	maxBuffered := fs.Int("max-buffered", gateway.DefaultMaxBuffered, "most records held that Kafka has not acknowledged; a publish beyond it waits for room, then fails (503)")
	authFile := fs.String("auth", "", "auth file: the apps' keys and user token secrets (re-read on SIGHUP); required unless --insecure")
	insecure := fs.Bool("insecure", false, "serve without --auth: anyone may publish for any gateway and connect as any user")
	origins := fs.String("allowed-origins", "", "comma-separated origins or host patterns (https://app.example.com, *.example.com) whose pages may open WebSockets, besides the gateway's own host")
	kafka := kafkaconn.Register(fs)
	maxSockets := fs.Int("max-sockets", socket.DefaultMaxSockets, "most WebSocket sessions this gateway holds; over it a connect is refused 503")
	maxPerUser := fs.Int("max-sockets-per-user", socket.DefaultMaxSocketsPerUser, "most WebSocket sessions of one user this gateway holds; over it a connect is refused 429 too_many_sockets")
	activityInterval := fs.Duration("activity-interval", socket.DefaultActivityInterval, "how often, at most, a WebSocket session publishes the activity its client reports (the latest wins)")
	metricsAddr := fs.String("metrics-addr", "", "listen address of /metrics alone (empty: /metrics is served on --addr)")
	maxSkew := fs.Duration("max-clock-skew", ingest.DefaultMaxClockSkew, "how far an ingested event's \"at\" may be ahead of this server's clock (later ones are refused 400); older ones are kept")
	var rates ratelimit.Flags
	rates.Register(fs)
	cli.Usage(fs, "gateway: holds WebSocket clients and publishes the connects, disconnects and heartbeats that IM gateways post over HTTP")
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	switch {
	case *lease <= 0:
		return errors.New("--gateway-lease must be positive")
	case *ping <= 0:
		return errors.New("--ping-interval must be positive")
	case *sendBuffer <= 0:
		return errors.New("--send-buffer must be positive")
	case *maxBuffered <= 0:
		return errors.New("--max-buffered must be positive")
	case *maxSockets <= 0 || *maxPerUser <= 0:
		return errors.New("--max-sockets and --max-sockets-per-user must be positive")
	case *maxSkew <= 0:
		return errors.New("--max-clock-skew must be positive")
	case *activityInterval <= 0:
		return errors.New("--activity-interval must be positive")
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	defer func() { // after every other deferred close: the last line of a clean stop
		if err == nil {
			log.Info("gateway stopped")
		}
	}()
	authn, err := auth.Setup(ctx, *authFile, *insecure, log)
	if err != nil {
		return err
	}
	kopts, err := kafka.Opts(log)
	if err != nil {
		return err
	}
	if err := kafka.Check(ctx, strings.Split(*brokers, ","), kopts); err != nil {
		return err
	}

	// Atomic: a batch posted, a connect, a disconnect or a heartbeat is
	// written whole or not at all, even when only some of Kafka's
	// brokers are down; the processor reads committed records only.
	pub, err := gateway.New(gateway.Brokers(strings.Split(*brokers, ",")...), gateway.Atomic(),
		gateway.ID(*id), gateway.Epoch(*epoch), gateway.Lease(*lease), gateway.MaxBuffered(*maxBuffered), gateway.KafkaOpts(kopts...))
	if err != nil {
		return err
	}
	defer pub.Close()
	reg := httpapi.NewRegistry()
	h, err := ingest.New(pub, log, reg, authn, ingest.MaxClockSkew(*maxSkew))
	if err != nil {
		return err
	}
	sock, err := socket.New(socket.Config{Publisher: pub, Logger: log, Registerer: reg,
		PingInterval: *ping, SendBuffer: *sendBuffer, Auth: authn, AllowedOrigins: cli.List(*origins),
		MaxSockets: *maxSockets, MaxSocketsPerUser: *maxPerUser, ActivityInterval: *activityInterval})
	if err != nil {
		return err
	}
	limits, err := ratelimit.New(ratelimit.Config{Server: "gateway", Scopes: rates.Scopes(authn != nil), Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	routes := server.Routes{Ingest: h, Socket: sock, Probes: []httpapi.Probe{pub.Ping}}
	if *metricsAddr == "" {
		routes.Metrics = reg
	}
	mux := routes.Mux()
	l, err := httpapi.Listen(*addr)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	ready := []any{"addr", l.Addr().String(), "id", pub.ID(), "epoch", pub.Epoch()}
	if *metricsAddr != "" {
		ml, err := httpapi.Listen(*metricsAddr)
		if err != nil {
			l.Close()
			return err
		}
		ready = append(ready, "metrics_addr", ml.Addr().String())
		g.Go(func() error { return httpapi.ServeMetrics(ctx, ml, reg, log) })
	}
	log.Info("gateway ready", ready...)
	g.Go(func() error {
		return httpapi.Serve(ctx, l, authn.Identify(limits.Wrap(httpapi.Envelope(mux, log))), log)
	})
	g.Go(func() error { return sock.Run(ctx) })
	g.Go(func() error {
		return pub.KeepLease(ctx, func(err error) { log.Warn("renewing the gateway's lease", "err", err) })
	})
	g.Go(func() error {
		<-ctx.Done()
		// The sockets' disconnects are published before the deferred
		// Close of the publisher.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpapi.ShutdownTimeout)
		defer cancel()
		return sock.Shutdown(sctx)
	})
	return g.Wait()
}
