package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/presence-im/presence/presence/bench"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/cli"
	"github.com/presence-im/presence/service/kafkaconn"
)

const benchSummary = `presence bench: measure Presence against the raw tools it is built on

Each scenario runs the project's path and a raw baseline doing the same
work with go-redis and a plain franz-go client, one after the other, on
the same machine, and prints both, their ratio and the design's target:

  ingest  records/s from gateway.Publisher through Kafka and the processor
          into Redis, against the same records through a plain producer,
          Kafka and a plain consumer writing pipelined HSET/HDEL
          (target ≥ 0.5× raw)
  query   ids/s and latency of 500-id lookups through the query API,
          against pipelined HGETALL of the same keys (target ≥ 0.6× raw)
  replay  sessions/s rebuilt from the sessions topic by a quiet processor,
          as presence replay does, against pipelined HSET (target ≥ 0.5× raw);
          beside it what a plain consumer reading the topic alone reaches
  fanout  notifications/s and latency from a user's connect to its online
          friends' gateways reading the news, against the same reads and
          records done in line by hand (target ≥ 0.8× raw)
  memory  Redis bytes per online session and per offline user
          (target ≤ 200 bytes per online session), plain HSET for reference

Without --redis-url it starts a redis-server of its own; without --brokers
an in-process Kafka per scenario. A Redis given, one server or a Redis
Cluster (any node's URL, or the cluster URL form), must have an empty
database (the run flushes it, on every master of a cluster; Redis CPU and
memory are then the masters' totals); a Kafka given must not hold the
Presence topics (each scenario creates and deletes them). The table (or --json)
goes to stdout, progress to stderr. Timings are wall-clock: on a shared
machine, compare ratios rather than absolute numbers.`

func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	scenarios := fs.String("scenarios", strings.Join(bench.Scenarios(), ","), "scenarios to run, comma-separated")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a table")
	chart := fs.String("chart", "", "write an SVG chart of the latency distributions (query, fanout) to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (every component runs in this process, Redis aside) to this file")
	memProfile := fs.String("memprofile", "", "write a profile of the memory allocated during the whole run (go tool pprof -sample_index=alloc_space) to this file")
	brokers := fs.String("brokers", "", "external Kafka seed brokers, comma-separated, instead of an in-process one; it must not hold the Presence topics")
	kafka := kafkaconn.Register(fs)
	fs.StringVar(&cfg.RedisURL, "redis-url", "", "external Redis URL instead of a redis-server of the run's own: one server, or a cluster (any node, or redis://h1:p1?addr=h2:p2); its database (every master's) must be empty")
	partitions := fs.Int("partitions", schemas.DefaultPartitions, "partitions of the topics")
	fs.IntVar(&cfg.Writers, "writers", bench.DefaultWriters, "goroutines writing at once: publishing through the gateway library, or sending raw pipelines")
	fs.IntVar(&cfg.IngestUsers, "ingest-users", bench.DefaultIngestUsers, "ingest: users that connect, every other one then disconnecting")
	fs.IntVar(&cfg.QueryUsers, "query-users", bench.DefaultQueryUsers, "query: ids looked up, a third online, a third offline, a third never seen")
	fs.IntVar(&cfg.QueryClients, "query-clients", bench.DefaultQueryClients, "query: clients looking up at once")
	fs.DurationVar(&cfg.QueryDuration, "duration", bench.DefaultQueryDuration, "query: how long each side runs")
	fs.IntVar(&cfg.ReplaySessions, "sessions", bench.DefaultReplaySessions, "replay: sessions rebuilt, two per user")
	fs.IntVar(&cfg.FanoutUsers, "fanout-users", bench.DefaultFanoutUsers, "fanout: users that come online")
	fs.IntVar(&cfg.FanoutFriends, "friends", bench.DefaultFanoutFriends, "fanout: friends of each")
	fs.Float64Var(&cfg.FanoutOnline, "online-share", bench.DefaultFanoutOnline, "fanout: share of the friends online, above 0 and at most 1")
	fs.IntVar(&cfg.FanoutClients, "fanout-clients", bench.DefaultFanoutClients, "fanout: users coming online at once")
	fs.IntVar(&cfg.FanoutProcessors, "fanout-processors", bench.DefaultFanoutProcessors, "fanout: processors sharing the partitions (with one, every audience member's sessions are in its memory)")
	fs.IntVar(&cfg.MemoryUsers, "memory-users", bench.DefaultMemoryUsers, "memory: users loaded")
	fs.IntVar(&cfg.RestoreUsers, "restore-users", bench.DefaultRestoreUsers, "restore: users restored from the topic and from redis, half of them online")
	cli.Usage(fs, benchSummary)
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("presence bench takes no arguments, got %q", fs.Args())
	}
	sizes := map[string]int{"partitions": *partitions, "writers": cfg.Writers, "ingest-users": cfg.IngestUsers,
		"query-users": cfg.QueryUsers, "query-clients": cfg.QueryClients, "sessions": cfg.ReplaySessions,
		"fanout-users": cfg.FanoutUsers, "friends": cfg.FanoutFriends, "fanout-clients": cfg.FanoutClients, "fanout-processors": cfg.FanoutProcessors, "memory-users": cfg.MemoryUsers,
		"restore-users": cfg.RestoreUsers}
	for _, name := range []string{"partitions", "writers", "ingest-users", "query-users", "query-clients", "sessions", "fanout-users", "friends", "fanout-clients", "fanout-processors", "memory-users", "restore-users"} {
		if sizes[name] <= 0 {
			return fmt.Errorf("--%s must be positive, got %d", name, sizes[name])
		}
	}
	switch {
	case cfg.QueryDuration <= 0:
		return fmt.Errorf("--duration must be positive, got %s", cfg.QueryDuration)
	case cfg.FanoutOnline <= 0 || cfg.FanoutOnline > 1:
		return fmt.Errorf("--online-share must be above 0 and at most 1, got %g", cfg.FanoutOnline)
	case cfg.ReplaySessions%2 != 0:
		return fmt.Errorf("--sessions must be even (two sessions per user), got %d", cfg.ReplaySessions)
	}
	cfg.Partitions = int32(*partitions)
	for s := range strings.SplitSeq(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Scenarios = append(cfg.Scenarios, s)
		}
	}
	if len(cfg.Scenarios) == 0 {
		return fmt.Errorf("--scenarios names none; choose among %s", strings.Join(bench.Scenarios(), ","))
	}
	cfg.Progress = stderr
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	redisstore.LogTo(cfg.Logger)
	if err := externalKafka(ctx, *brokers, kafka, cfg.Logger, &cfg.Brokers, &cfg.KafkaOpts); err != nil {
		return err
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("creating the cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("starting the cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return fmt.Errorf("creating the memory profile: %w", err)
		}
		defer f.Close()
		defer func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintln(os.Stderr, "bench: writing the memory profile:", err)
			}
		}()
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, bench.ErrConfig) {
			return err
		}
		return fmt.Errorf("bench: %w", err)
	}
	if *chart != "" {
		if err := writeChart(*chart, rep); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: chart of the latency distributions written to %s\n", *chart)
	}
	if *asJSON {
		return bench.WriteJSON(stdout, rep)
	}
	return bench.WriteTable(stdout, rep)
}

func writeChart(path string, rep *bench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating the chart: %w", err)
	}
	if err := bench.WriteChart(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("writing the chart: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the chart: %w", err)
	}
	return nil
}
