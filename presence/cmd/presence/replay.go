package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/cli"
	"github.com/presence-im/presence/service/kafkaconn"
)

const replaySummary = `presence replay: rebuild Redis from the compacted topics, then exit

Applies presence.sessions, presence.friends and presence.subscriptions from
their beginning to the Redis at --redis-url, under --key-prefix, sending no
notifications, and exits once Redis holds every record the topics held
when it started. It reads in a consumer group of its own, deleted when it
ends, so running processors are not disturbed.

The target must hold nothing under the prefix. Either replay into a new
Redis (or a new --key-prefix) and point the services at it afterwards, or
stop the processors writing to that Redis and prefix first and pass
--reset, which deletes every key under the prefix before replaying.
Stopped early (Ctrl-C), it leaves a partial state marked as rebuilding:
run it again (with --reset, or with its --replay-group) to finish.

To rebuild faster, run several processes with the same --replay-group NAME (pass
--reset to one of them at most): they share the partitions through that
consumer group, a process that stops hands its partitions to the others,
and each prints the progress of the whole and exits once the whole is in
Redis. The key P:replay names the group replaying into the prefix; a
replay of another group is refused while it runs. A group stopped early
is finished by running it again with the same --replay-group.
Progress goes to stdout every --progress-every.`

// errNotEmpty means the target already holds state under the prefix.
var errNotEmpty = errors.New("target redis is not empty")

// errInterrupted means the replay was stopped before it caught up.
var errInterrupted = errors.New("replay interrupted")

// replayStopTimeout bounds how long the replay's processor takes to stop.
const replayStopTimeout = 30 * time.Second

// replayConfig is what `presence replay` was asked to do.
type replayConfig struct {
	brokers          []string
	kafkaOpts        []kgo.Opt
	redisURL, prefix string
	offlineTTL       time.Duration
	partitions       int32
	limits           processor.Limits
	reset            bool
	group            string
	progressEvery    time.Duration
}

func runReplay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL of the target: one server, or a Redis Cluster (any node, or redis://h1:p1?addr=h2:p2)")
	prefix := fs.String("key-prefix", redisstore.DefaultPrefix, "prefix of every Redis key")
	offlineTTL := fs.Duration("offline-ttl", redisstore.DefaultOfflineTTL, "how long a user with no session is remembered; the processors' value")
	partitions := fs.Int("partitions", schemas.DefaultPartitions, "partitions of the topics created when missing")
	reset := fs.Bool("reset", false, "delete every key under --key-prefix first (stop the processors writing to it before)")
	group := fs.String("replay-group", "", "Kafka consumer group shared by the replay processes rebuilding one target together (default: one of its own, deleted at the end)")
	progressEvery := fs.Duration("progress-every", time.Second, "how often progress is printed")
	kafka := kafkaconn.Register(fs)
	var limits processor.Limits
	limits.RecordFlags(fs) // the processors' values: a record they refused is refused here too
	cli.Usage(fs, replaySummary)
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("presence replay takes no arguments, got %q", fs.Args())
	case *offlineTTL <= 0 || *partitions <= 0 || *progressEvery <= 0 || limits.MaxRecordBytes <= 0 || limits.MaxClockSkew <= 0:
		return errors.New("--offline-ttl, --partitions, --progress-every, --max-record-bytes and --max-clock-skew must be positive")
	case *prefix == "":
		return errors.New("--key-prefix must not be empty")
	case processor.CheckInstanceID(*group) != nil: // the same rule suits a group name, which names the marker too
		return fmt.Errorf("--replay-group %.64q: want at most 249 letters, digits, '.', '_' or '-' (not . or ..)", *group)
	}
	cfg := replayConfig{
		brokers: strings.Split(*brokers, ","), redisURL: *redisURL, prefix: *prefix, offlineTTL: *offlineTTL,
		partitions: int32(*partitions), limits: limits, reset: *reset, group: *group, progressEvery: *progressEvery,
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	redisstore.LogTo(log)
	if err := redisstore.CheckURL(cfg.redisURL); err != nil {
		return fmt.Errorf("--redis-url: %w", err)
	}
	var err error
	if cfg.kafkaOpts, err = kafka.Opts(log); err != nil {
		return err
	}
	if err := kafka.Check(ctx, cfg.brokers, cfg.kafkaOpts); err != nil {
		return err
	}
	return replay(ctx, cfg, stdout, log)
}

// replayTarget is the Redis and prefix a replay writes to.
type replayTarget struct {
	rdb   redis.UniversalClient
	store *redisstore.Store
	name  string
}

// replay claims the target (see replaygroup.go), then runs a quiet
// processor in the replay's consumer group until Redis holds every record
// the topics held when it started, whichever process of the group applied
// them.
func replay(ctx context.Context, cfg replayConfig, out io.Writer, log *slog.Logger) error {
	rdb, err := redisstore.Dial(ctx, cfg.redisURL)
	if err != nil {
		return fmt.Errorf("--redis-url: %w", err)
	}
	defer rdb.Close()
	store := redisstore.New(rdb, redisstore.Options{Prefix: cfg.prefix, OfflineTTL: cfg.offlineTTL})
	rs := &replayTarget{rdb: rdb, store: store, name: fmt.Sprintf("%s prefix %q", redisstore.RedactURL(cfg.redisURL), cfg.prefix)}
	if err := store.Ping(ctx); err != nil {
		return fmt.Errorf("%s: %w", rs.name, err)
	}

	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.brokers...)}, cfg.kafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Reaching Kafka before deleting anything: a reset must not leave an
	// empty Redis behind an unreachable Kafka.
	ends, err := endsToReplay(ctx, adm)
	if err != nil {
		return fmt.Errorf("reading the ends of the topics from kafka %s: %w", strings.Join(cfg.brokers, ","), err)
	}
	group, named := cfg.group, cfg.group != ""
	if !named {
		group = fmt.Sprintf("presence-replay-%d", time.Now().UnixNano())
	}
	if err := claim(ctx, cfg, group, rs, adm, out); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	p, err := processor.New(processor.Config{
		Brokers: cfg.brokers, KafkaOpts: cfg.kafkaOpts, Group: group, Store: store, Partitions: cfg.partitions, Limits: cfg.limits, Quiet: true,
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "replay: replaying %s from kafka %s into %s (%d records, consumer group %s)\n",
		strings.Join(schemas.StateTopics, ", "), strings.Join(cfg.brokers, ","), rs.name, ends.total(), group)
	start := time.Now()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var runErr error
	ended := make(chan struct{})
	go func() { runErr = p.Run(runCtx); close(ended) }()
	done, watchErr := watch(ctx, store, ended, ends, cfg.progressEvery, out)
	stop()
	select {
	case <-ended:
	case <-time.After(replayStopTimeout):
		return fmt.Errorf("the replay's processor did not stop within %s", replayStopTimeout)
	}
	if !named || watchErr == nil {
		// Others of a named group may still be in it, applying records
		// of ends taken after this one's: Kafka refuses to delete it
		// then, and the last to leave deletes it, and the marker, which
		// keeps other replays off the target until then.
		if deleteGroup(adm, group, log) && watchErr == nil {
			if err := release(ctx, rdb, cfg.prefix, group); err != nil {
				return err
			}
		}
	}
	elapsed := time.Since(start)

	again := "run presence replay --reset again"
	if named {
		again = "run presence replay --replay-group " + group + " again"
	}
	switch {
	case errors.Is(watchErr, errInterrupted):
		fmt.Fprintf(out, "replay: interrupted after %d of %d records: %s holds a partial state, marked as rebuilding; "+
			"%s to finish\n", done, ends.total(), rs.name, again)
		return fmt.Errorf("%w after %d of %d records; %s is incomplete", errInterrupted, done, ends.total(), rs.name)
	case watchErr != nil || runErr != nil:
		return fmt.Errorf("replaying: %w; %s may hold a partial state: once this is fixed, %s",
			cmp.Or(runErr, watchErr), rs.name, again)
	}
	if named {
		fmt.Fprintf(out, "replay: this process applied %d records\n", recordsRead(reg))
	}
	return summarize(ctx, store, rdb, cfg.prefix, done, elapsed, out)
}

// watch prints the progress of the whole replay, read from the
// checkpoints in Redis, every period until Redis holds every record of
// ends (nil), ctx ends (errInterrupted) or the processor stops by itself.
// It returns how many records of ends Redis holds.
func watch(ctx context.Context, store *redisstore.Store, ended <-chan struct{}, ends replayEnds, period time.Duration, out io.Writer) (int64, error) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	poll := time.NewTicker(min(period, 100*time.Millisecond))
	defer poll.Stop()
	var (
		done, last int64
		total      = ends.total()
		lastAt     = time.Now()
	)
	for {
		select {
		case <-ctx.Done():
			return done, errInterrupted
		case <-ended:
			if ctx.Err() != nil {
				// The processor stopped because ctx ended.
				return done, errInterrupted
			}
			return done, errors.New("the processor stopped before it caught up")
		case <-poll.C:
			held, complete, err := ends.held(ctx, store)
			switch {
			case err != nil && ctx.Err() != nil:
				return done, errInterrupted
			case err != nil:
				return done, err
			}
			if done = held; complete {
				return done, nil
			}
		case now := <-tick.C:
			rate := float64(done-last) / now.Sub(lastAt).Seconds()
			eta := "unknown"
			if rate > 0 {
				eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
			}
			fmt.Fprintf(out, "replay: %d/%d records (%.1f%%), %.0f records/s, ETA %s\n",
				done, total, percent(done, total), rate, eta)
			last, lastAt = done, now
		}
	}
}

// recordsRead is how many records the replay's processor read
// (presence_processor_records_total), whichever partitions it held.
func recordsRead(reg *prometheus.Registry) int64 {
	families, _ := reg.Gather()
	var n float64
	for _, f := range families {
		if f.GetName() == "presence_processor_records_total" {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return int64(n)
}

// replayEnds holds the end of each partition of each state topic when the
// replay started: what Redis must hold for it to be complete.
type replayEnds map[string]map[int32]int64

func (e replayEnds) total() int64 {
	var sum int64
	for _, partitions := range e {
		for _, end := range partitions {
			sum += end
		}
	}
	return sum
}

// held reads the checkpoints in Redis: how many records of e Redis holds,
// and whether it holds them all and every partition is built.
func (e replayEnds) held(ctx context.Context, store *redisstore.Store) (int64, bool, error) {
	var done int64
	complete := true
	for _, topic := range schemas.StateTopics {
		cp, err := store.Checkpoint(ctx, topic)
		if err != nil {
			return 0, false, err
		}
		if cp.Unbuilt() > 0 || len(cp.Next) < len(e[topic]) {
			complete = false
		}
		for partition, end := range e[topic] {
			next := cp.Next[partition]
			done += min(next, end)
			if next < end {
				complete = false
			}
		}
	}
	return done, complete, nil
}

// summarize prints what the replay built.
func summarize(ctx context.Context, store *redisstore.Store, rdb redis.UniversalClient, prefix string, records int64, elapsed time.Duration, out io.Writer) error {
	partitions := 0
	for _, topic := range schemas.StateTopics {
		cp, err := store.Checkpoint(ctx, topic)
		if err != nil {
			return err
		}
		partitions += len(cp.Next)
	}
	users, err := countKeys(ctx, rdb, globEscaper.Replace(prefix)+":{*}")
	if err != nil {
		return fmt.Errorf("counting users: %w", err)
	}
	fmt.Fprintf(out, "replay: replayed %d records of %d partitions in %.1fs, %.0f records/s; redis now holds %d users\n",
		records, partitions, elapsed.Seconds(), float64(records)/max(elapsed.Seconds(), 1e-9), users)
	rebuilding, err := store.Rebuilding(ctx)
	if err != nil {
		return err
	}
	if rebuilding > 0 {
		fmt.Fprintf(out, "replay: %d partitions did not save their last checkpoint; a processor started on this redis applies their last records again, quietly\n", rebuilding)
	}
	return nil
}

func percent(done, total int64) float64 {
	if total <= 0 {
		return 100
	}
	return 100 * float64(done) / float64(total)
}

// endsToReplay lists the last stable offset of each partition of the
// state topics, as the processors do: what a replay from their beginning
// applies (a missing topic has none).
func endsToReplay(ctx context.Context, adm *kadm.Client) (replayEnds, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	listed, err := adm.ListCommittedOffsets(ctx, schemas.StateTopics...)
	if err != nil {
		return nil, err
	}
	ends := replayEnds{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			if ends[o.Topic] == nil {
				ends[o.Topic] = map[int32]int64{}
			}
			ends[o.Topic][o.Partition] = o.Offset
		}
	})
	return ends, nil
}

// deleteGroup deletes the replay's consumer group, which holds nothing of
// use once the replay ends, and reports whether it is gone. Failing is no
// error: Kafka expires the group. Kafka refuses while members remain: the
// processes of a named group that started together see the whole
// complete within a poll of each other and leave, so it tries again for a
// while; one that started later has more to apply, and deletes it itself.
func deleteGroup(adm *kadm.Client, group string, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		resp, err := adm.DeleteGroup(ctx, group)
		switch err = cmp.Or(err, resp.Err); {
		case err == nil || errors.Is(err, kerr.GroupIDNotFound): // not found: another process deleted it
			return true
		case !errors.Is(err, kerr.NonEmptyGroup):
			log.Warn("deleting the replay's consumer group failed; Kafka expires it, or delete it by hand", "group", group, "err", err)
			return false
		}
		select {
		case <-ctx.Done():
			return false // another process of the group deletes it
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// heldState describes what the target holds under prefix: the checkpoints
// of the state topics, or else any key; "" when nothing.
func heldState(ctx context.Context, store *redisstore.Store, rdb redis.UniversalClient, prefix string) (string, error) {
	var held []string
	for _, topic := range schemas.StateTopics {
		cp, err := store.Checkpoint(ctx, topic)
		if err != nil {
			return "", err
		}
		if cp.TopicID != "" || len(cp.Next) > 0 {
			held = append(held, fmt.Sprintf("%s (%d partitions, %d rebuilding)", topic, len(cp.Next), len(cp.Rebuild)))
		}
	}
	if len(held) > 0 {
		return "the state of " + strings.Join(held, ", "), nil
	}
	var (
		mu    sync.Mutex
		first string
	)
	err := scanKeys(ctx, rdb, globEscaper.Replace(prefix)+":*", func(_ *redis.Client, keys []string) (bool, error) {
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == markerKey(prefix) })
		if len(keys) == 0 {
			return true, nil
		}
		mu.Lock()
		defer mu.Unlock()
		first = keys[0]
		return false, nil
	})
	if first != "" {
		return fmt.Sprintf("keys such as %q", first), err
	}
	return "", err
}

// globEscaper escapes the characters SCAN's MATCH pattern treats specially.
var globEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`)

// scanKeys calls fn with each batch of the keys matching pattern, and the
// client of the node holding them, until it returns false or an error. The
// nodes of a cluster are scanned concurrently: fn must be safe for that.
func scanKeys(ctx context.Context, rdb redis.UniversalClient, pattern string, fn func(c *redis.Client, keys []string) (bool, error)) error {
	return redisstore.ForEachNode(ctx, rdb, func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return fmt.Errorf("scanning keys %s on %s: %w", pattern, c.Options().Addr, err)
			}
			if len(keys) > 0 {
				if more, err := fn(c, keys); err != nil || !more {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	})
}

// unlinkAll deletes every key under prefix but the replay marker, a batch
// at a time, and returns how many it deleted. The keys of a batch are unlinked one by one in a
// pipeline: on a cluster they lie in different slots.
func unlinkAll(ctx context.Context, rdb redis.UniversalClient, prefix string) (int64, error) {
	var n atomic.Int64
	err := scanKeys(ctx, rdb, globEscaper.Replace(prefix)+":*", func(c *redis.Client, keys []string) (bool, error) {
		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				if k != markerKey(prefix) {
					p.Unlink(ctx, k)
				}
			}
			return nil
		})
		for _, cmd := range cmds {
			n.Add(cmd.(*redis.IntCmd).Val())
		}
		return true, err
	})
	return n.Load(), err
}

// countKeys counts the keys matching pattern.
func countKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) (int64, error) {
	var n atomic.Int64
	err := scanKeys(ctx, rdb, pattern, func(_ *redis.Client, keys []string) (bool, error) {
		n.Add(int64(len(keys)))
		return true, nil
	})
	return n.Load(), err
}
