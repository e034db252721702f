// Command presence is the all-in-one Presence command. `presence dev` runs
// the whole pipeline in one process on embedded defaults; `presence
// import-friends` loads an existing friend graph into Kafka; `presence
// token` mints a user token from an auth file; `presence bench` measures
// the project against the raw tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/socket"
	"github.com/presence-im/presence/presence/dev"
	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/service/cli"
	"github.com/presence-im/presence/service/kafkaconn"
	"github.com/presence-im/presence/service/ratelimit"
)

const usage = `usage: presence <command> [flags]

commands:
  dev             run the whole pipeline in one process (embedded Kafka and Redis)
  import-friends  load a friend graph (CSV lines "user,friend") into Kafka
  connect         open a session over WebSocket and print its notifications
  token           print a user token (JWT) signed with an app's secret from the --auth file
  replay          rebuild Redis from the compacted topics, then exit
  bench           measure Presence against raw Redis and Kafka (make bench)

Run 'presence <command> --help' for its flags, 'presence --version' for the version.`

func main() { cli.Main("presence", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "dev":
		return runDev(ctx, args[1:], getenv, stdout, stderr)
	case "import-friends":
		return runImportFriends(ctx, args[1:], getenv, stdout, stderr)
	case "connect":
		return runConnect(ctx, args[1:], getenv, stdout, stderr)
	case "token":
		return runToken(ctx, args[1:], getenv, stdout, stderr)
	case "replay":
		return runReplay(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	case "version", "-version", "--version":
		return cli.ErrVersion
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg dev.Config
	var brokers string
	fs.StringVar(&cfg.DataDir, "data-dir", "./.presence", "where the embedded Kafka keeps its data")
	fs.StringVar(&cfg.KafkaAddr, "kafka-addr", "127.0.0.1:9092", "listen address of the embedded Kafka")
	fs.StringVar(&brokers, "brokers", "", "external Kafka seed brokers, comma-separated, instead of the embedded Kafka")
	kafka := kafkaconn.Register(fs)
	fs.StringVar(&cfg.RedisURL, "redis-url", "", "external Redis URL instead of the embedded Redis (redis://[user:password@]host:port/db, rediss:// for TLS; a Redis Cluster: any node, or redis://h1:p1?addr=h2:p2)")
	fs.StringVar(&cfg.QueryAddr, "query-addr", "127.0.0.1:8080", "listen address of the query API")
	fs.StringVar(&cfg.GatewayAddr, "gateway-addr", "127.0.0.1:8090", "listen address of the gateway server")
	fs.DurationVar(&cfg.OfflineTTL, "offline-ttl", redisstore.DefaultOfflineTTL, "how long a user with no session is remembered")
	fs.DurationVar(&cfg.OfflineGrace, "offline-grace", processor.DefaultOfflineGrace, "how long a user must stay offline before friends and subscribers are told")
	fs.DurationVar(&cfg.GatewayLease, "gateway-lease", gateway.DefaultLease, "how long a gateway heartbeat keeps its sessions alive")
	fs.StringVar(&cfg.AuthFile, "auth", "", "auth file: the apps' keys and user token secrets (re-read on SIGHUP); without it everything is served to everyone")
	origins := fs.String("allowed-origins", "", "comma-separated origins or host patterns (https://app.example.com, *.example.com) whose pages may open WebSockets, besides the gateway's own host")
	cfg.Limits.Flags(fs)
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "listen address of /metrics alone (empty: /metrics is served on both servers)")
	fs.IntVar(&cfg.MaxSockets, "max-sockets", socket.DefaultMaxSockets, "most WebSocket sessions the gateway holds; over it a connect is refused 503")
	fs.IntVar(&cfg.MaxSocketsPerUser, "max-sockets-per-user", socket.DefaultMaxSocketsPerUser, "most WebSocket sessions of one user the gateway holds; over it a connect is refused 429 too_many_sockets")
	cfg.Rates = &ratelimit.Flags{}
	cfg.Rates.Register(fs)
	cli.Usage(fs, "presence dev: the whole pipeline in one process")
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("presence dev takes no arguments, got %q", fs.Args())
	}
	if cfg.OfflineTTL <= 0 || cfg.GatewayLease <= 0 || cfg.OfflineGrace < 0 {
		return fmt.Errorf("--offline-ttl and --gateway-lease must be positive, --offline-grace not negative")
	}
	cfg.AllowedOrigins = cli.List(*origins)
	if l := cfg.Limits; l.MaxRecordBytes <= 0 || l.MaxClockSkew <= 0 || l.MaxGatewayLease <= 0 || l.StallTimeout <= 0 {
		return fmt.Errorf("--max-record-bytes, --max-clock-skew, --max-gateway-lease and --stall-timeout must be positive")
	}
	if cfg.MaxSockets <= 0 || cfg.MaxSocketsPerUser <= 0 {
		return fmt.Errorf("--max-sockets and --max-sockets-per-user must be positive")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	redisstore.LogTo(cfg.Logger)
	if err := externalKafka(ctx, brokers, kafka, cfg.Logger, &cfg.Brokers, &cfg.KafkaOpts); err != nil {
		return err
	}
	cfg.Ready = func(a dev.Addrs) {
		metrics := ""
		if a.Metrics != "" {
			metrics = ", metrics http://" + a.Metrics + "/metrics"
		}
		fmt.Fprintf(stdout, "presence ready: query API http://%s, gateway http://%s, kafka %s, redis %s%s\n",
			a.Query, a.Gateway, strings.Join(a.Brokers, ","), redisstore.RedactURL(a.Redis), metrics)
	}
	if err := dev.Run(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "presence stopped")
	return nil
}

// externalKafka sets brokers and opts to reach the external Kafka that
// the comma-separated list given names, with the connection flags, once
// it answers. Without a list, the command runs a Kafka of its own, which
// the connection flags cannot apply to.
func externalKafka(ctx context.Context, given string, kafka *kafkaconn.Flags, log *slog.Logger, brokers *[]string, opts *[]kgo.Opt) error {
	if given == "" {
		if !kafka.IsZero() {
			return errors.New("the --kafka-* flags are for an external Kafka: give its --brokers")
		}
		return nil
	}
	o, err := kafka.Opts(log)
	if err != nil {
		return err
	}
	b := strings.Split(given, ",")
	if err := kafka.Check(ctx, b, o); err != nil {
		return err
	}
	*brokers, *opts = b, o
	return nil
}
