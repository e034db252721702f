// Package bench measures Presence against the raw tools it is built on.
//
// Each scenario runs the project's path (the gateway library, Kafka, the
// processor, the query API, redisstore's layout) and a baseline doing the
// same work with the raw tools (go-redis pipelines, a plain franz-go
// client), one after the other in the same run on the same machine, and
// reports both and their ratio:
//
//   - ingest: session records per second from gateway.Publisher through
//     Kafka and the processor into Redis, against the same records
//     through a plain franz-go producer, the same Kafka and a plain
//     consumer writing them as pipelined HSET/HDEL (ingest.go,
//     ingestraw.go).
//   - query: user ids per second, and latency, of 500-id batch lookups
//     through the query API, against pipelined HGETALL of the same keys at
//     the same concurrency (query.go).
//   - replay: sessions per second rebuilt from the compacted sessions topic
//     by a quiet processor in a throwaway group (as presence replay does),
//     against pipelined HSET of the same sessions (replay.go).
//   - fanout: notifications per second, and latency from a user's connect
//     to a friend's gateway reading the notification, against the same
//     reads, writes and records done by hand (fanout.go).
//   - memory: Redis bytes per online session and per offline user, applied
//     by the processor, against plain HSET (memory.go).
//   - restore: users per second, CPU and heap per user, of a processor's
//     state restored from the sessions topic (project column) against the
//     same state restored from Redis (raw column): no raw baseline, the
//     two ways compared (restore.go).
//
// The scenarios run one after the other; within one, the project's path
// and the baseline run one after the other too, so that they never compete
// for the machine. Every timing is wall-clock on a shared machine: treat
// it as rough, and compare the ratios, which both sides share.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// Scenarios returns the scenarios a run can choose, in the order they run.
func Scenarios() []string {
	return []string{"ingest", "query", "replay", "fanout", "memory", "restore"}
}

// Defaults of Config: the standard set, which takes a few minutes on two
// cores.
const (
	DefaultWriters        = 8
	DefaultIngestUsers    = 500_000
	DefaultQueryUsers     = 150_000
	DefaultQueryClients   = 8
	DefaultQueryDuration  = 20 * time.Second
	DefaultReplaySessions = 1_000_000
	DefaultFanoutUsers    = 8_000
	DefaultFanoutFriends  = 200
	DefaultFanoutOnline   = 0.2
	DefaultFanoutClients  = 16
	// DefaultFanoutProcessors is 1: one processor owns every partition,
	// so an announcement reads every audience member's sessions from its
	// memory.
	DefaultFanoutProcessors = 1
	DefaultMemoryUsers      = 200_000
	DefaultRestoreUsers     = 500_000
)

// Config configures Run. Zero values mean the documented defaults.
type Config struct {
	// Scenarios are the scenarios to run, among Scenarios() (all of them).
	Scenarios []string
	// RedisURL is the Redis to measure: one server or a Redis Cluster,
	// as redisstore.Dial takes them. Empty starts a redis-server of the
	// run's own on a free loopback port. A Redis given must hold nothing
	// in its database (on any master of a cluster): the run flushes it
	// between phases. On a cluster, Redis CPU and memory are the totals
	// of its masters.
	RedisURL string
	// Brokers is the Kafka to measure. Empty starts an in-process Kafka
	// (kfake), a fresh one per scenario. A Kafka given must not hold the
	// Presence topics: each scenario creates them and deletes them when
	// it ends.
	Brokers []string
	// KafkaOpts are added to every client of an external Kafka (SASL,
	// TLS; see service/kafkaconn).
	KafkaOpts []kgo.Opt `json:"-"`
	// Partitions is the partition count of the topics
	// (schemas.DefaultPartitions).
	Partitions int32
	// Writers is how many goroutines write at once: gateway publishers on
	// the project's side, pipelines on the raw side (DefaultWriters).
	Writers int
	// IngestUsers connect once each, then every other one disconnects:
	// 1.5 records per user (DefaultIngestUsers).
	IngestUsers int
	// QueryUsers is the pool of ids looked up: a third online, a third
	// offline, a third never seen (DefaultQueryUsers).
	QueryUsers int
	// QueryClients is how many clients look up at once
	// (DefaultQueryClients).
	QueryClients int
	// QueryDuration is how long each side of the query scenario runs
	// (DefaultQueryDuration).
	QueryDuration time.Duration
	// ReplaySessions is how many sessions, two per user, the replay
	// rebuilds (DefaultReplaySessions).
	ReplaySessions int
	// FanoutUsers is how many users come online in the fanout scenario,
	// each announced to its online friends (DefaultFanoutUsers).
	FanoutUsers int
	// FanoutFriends is how many friends each of them has
	// (DefaultFanoutFriends), FanoutOnline the share of those online
	// (DefaultFanoutOnline).
	FanoutFriends int
	FanoutOnline  float64
	// FanoutClients is how many users come online at once, each waiting
	// for its friends to be told before the next (DefaultFanoutClients).
	FanoutClients int
	// FanoutProcessors is how many processors share the partitions
	// (DefaultFanoutProcessors): each reads the sessions of the audience
	// members of others' partitions from Redis.
	FanoutProcessors int
	// MemoryUsers is how many users the memory scenario loads
	// (DefaultMemoryUsers).
	MemoryUsers int
	// RestoreUsers is how many users the restore scenario restores, half
	// of them online (DefaultRestoreUsers).
	RestoreUsers int
	// Progress receives progress lines while the run goes (none when
	// nil).
	Progress io.Writer `json:"-"`
	// Logger receives the logs of the components measured (none when
	// nil).
	Logger *slog.Logger `json:"-"`
}

func (c *Config) defaults() {
	if len(c.Scenarios) == 0 {
		c.Scenarios = Scenarios()
	}
	c.Partitions = cmp.Or(c.Partitions, schemas.DefaultPartitions)
	c.Writers = cmp.Or(c.Writers, DefaultWriters)
	c.IngestUsers = cmp.Or(c.IngestUsers, DefaultIngestUsers)
	c.QueryUsers = cmp.Or(c.QueryUsers, DefaultQueryUsers)
	c.QueryClients = cmp.Or(c.QueryClients, DefaultQueryClients)
	c.QueryDuration = cmp.Or(c.QueryDuration, DefaultQueryDuration)
	c.ReplaySessions = cmp.Or(c.ReplaySessions, DefaultReplaySessions)
	c.FanoutUsers = cmp.Or(c.FanoutUsers, DefaultFanoutUsers)
	c.FanoutFriends = cmp.Or(c.FanoutFriends, DefaultFanoutFriends)
	c.FanoutOnline = cmp.Or(c.FanoutOnline, DefaultFanoutOnline)
	c.FanoutClients = cmp.Or(c.FanoutClients, DefaultFanoutClients)
	c.FanoutProcessors = cmp.Or(c.FanoutProcessors, DefaultFanoutProcessors)
	c.MemoryUsers = cmp.Or(c.MemoryUsers, DefaultMemoryUsers)
	c.RestoreUsers = cmp.Or(c.RestoreUsers, DefaultRestoreUsers)
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrConfig is wrapped by the errors of a Config that cannot run.
var ErrConfig = errors.New("invalid bench configuration")

func (c *Config) validate() error {
	var errs []error
	for _, s := range c.Scenarios {
		if !slices.Contains(Scenarios(), s) {
			errs = append(errs, fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(Scenarios(), ", ")))
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"partitions", int(c.Partitions)}, {"writers", c.Writers}, {"ingest users", c.IngestUsers},
		{"query users", c.QueryUsers}, {"query clients", c.QueryClients}, {"replay sessions", c.ReplaySessions},
		{"fanout users", c.FanoutUsers}, {"fanout friends", c.FanoutFriends}, {"fanout clients", c.FanoutClients},
		{"fanout processors", c.FanoutProcessors}, {"memory users", c.MemoryUsers}, {"restore users", c.RestoreUsers},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %d", f.name, f.v))
		}
	}
	if c.FanoutProcessors > int(c.Partitions) {
		errs = append(errs, fmt.Errorf("fanout processors (%d) must not outnumber the partitions (%d): some would own none", c.FanoutProcessors, c.Partitions))
	}
	switch {
	case c.QueryDuration < 0:
		errs = append(errs, fmt.Errorf("query duration must not be negative, got %s", c.QueryDuration))
	case c.FanoutOnline < 0 || c.FanoutOnline > 1:
		errs = append(errs, fmt.Errorf("the share of friends online must be between 0 and 1, got %g", c.FanoutOnline))
	case c.ReplaySessions%2 != 0:
		errs = append(errs, fmt.Errorf("replay sessions must be even (two per user), got %d", c.ReplaySessions))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// Report is what a run measured.
type Report struct {
	Started time.Time `json:"started"`
	// Seconds is the run's wall time, setup included.
	Seconds float64 `json:"seconds"`
	Machine Machine `json:"machine"`
	// Config is what the run was asked to do, defaults filled in and the
	// Redis URL without its password.
	Config  Config   `json:"config"`
	Results []Result `json:"results"`
}

// Machine describes where the run ran.
type Machine struct {
	CPUs  int    `json:"cpus"`
	Go    string `json:"go"`
	Redis string `json:"redis"`
	// RedisMasters is the master count of a Redis Cluster (0 for one
	// server), whose Redis CPU and memory figures are the total.
	RedisMasters int    `json:"redis_masters,omitempty"`
	Kafka        string `json:"kafka"`
}

// Result is what one scenario measured.
type Result struct {
	Scenario string `json:"scenario"`
	// Metrics come headline first: the target, if any, is about it.
	Metrics []Metric `json:"metrics"`
	// Latency of one operation (a lookup, a notification), when the
	// scenario has one.
	ProjectLatency *Latency `json:"project_latency,omitempty"`
	RawLatency     *Latency `json:"raw_latency,omitempty"`
	// Target is what the headline metric must reach ("" when none), Met
	// whether it did (nil when there is no target).
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Checks are what was verified of the work done, such as the users
	// found in Redis afterwards.
	Checks map[string]int64 `json:"checks"`
	// Seconds is the scenario's wall time, setup included.
	Seconds float64 `json:"seconds"`

	// latency samples, for the chart
	projectSamples, rawSamples []time.Duration
}

// Metric is one quantity measured on both sides.
type Metric struct {
	Name    string  `json:"name"`
	Project float64 `json:"project"`
	Raw     float64 `json:"raw"`
	// Ratio is Project / Raw.
	Ratio float64 `json:"ratio"`
}

func metric(name string, project, raw float64) Metric {
	m := Metric{Name: name, Project: project, Raw: raw}
	if raw > 0 {
		m.Ratio = project / raw
	}
	return m
}

// target is what a scenario's headline metric must reach: a ratio to the
// raw side at least minRatio, or a project value at most maxValue.
type target struct {
	minRatio, maxValue float64
	unit               string
}

func (t target) String() string {
	switch {
	case t.minRatio > 0:
		return fmt.Sprintf("≥ %.1f× raw", t.minRatio)
	case t.maxValue > 0:
		return fmt.Sprintf("≤ %g %s", t.maxValue, t.unit)
	}
	return ""
}

func (t target) met(m Metric) *bool {
	var ok bool
	switch {
	case t.minRatio > 0:
		ok = m.Ratio >= t.minRatio
	case t.maxValue > 0:
		ok = m.Project <= t.maxValue
	default:
		return nil
	}
	return &ok
}

// scenario is one scenario: how to run it and what it must reach.
type scenario struct {
	run    func(ctx context.Context, r *runner) (Result, error)
	target target
}

// scenarioNamed returns the scenario of a name among Scenarios(), with
// the targets of the design: ingest ≥ 0.5× raw writes, query ≥ 0.6× raw
// reads, replay ≥ 0.5× raw writes, fanout ≥ 0.8× raw, memory ≤ 200 bytes
// per online session; restore has none.
func scenarioNamed(name string) scenario {
	switch name {
	case "ingest":
		return scenario{run: runIngest, target: target{minRatio: 0.5}}
	case "query":
		return scenario{run: runQuery, target: target{minRatio: 0.6}}
	case "replay":
		return scenario{run: runReplay, target: target{minRatio: 0.5}}
	case "fanout":
		return scenario{run: runFanout, target: target{minRatio: 0.8}}
	case "restore":
		return scenario{run: runRestore}
	default:
		return scenario{run: runMemory, target: target{maxValue: 200, unit: "bytes/online session"}}
	}
}

// runner is what a scenario runs with.
type runner struct {
	cfg Config
	env *env
	log *slog.Logger
	out *progress
}

// Run runs the scenarios cfg chooses, in the order of Scenarios(), and
// returns what they measured. The first scenario that fails ends the run.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	out := &progress{w: cfg.Progress, start: start}
	env, err := newEnv(ctx, cfg, out)
	if err != nil {
		return nil, err
	}
	defer env.close()
	rep := &Report{Started: start, Config: cfg, Machine: Machine{
		CPUs: runtime.NumCPU(), Go: runtime.Version(), Redis: env.redisVersion, RedisMasters: env.masters, Kafka: env.kafkaKind(),
	}}
	rep.Config.RedisURL = redisstore.RedactURL(cfg.RedisURL)
	r := &runner{cfg: cfg, env: env, log: cfg.Logger, out: out}
	for _, name := range Scenarios() {
		if !slices.Contains(cfg.Scenarios, name) {
			continue
		}
		sc := scenarioNamed(name)
		out.in(name)
		out.printf("starting")
		began := time.Now()
		res, err := sc.run(ctx, r)
		if err != nil {
			return rep, fmt.Errorf("scenario %s: %w", name, err)
		}
		res.Scenario, res.Seconds = name, time.Since(began).Seconds()
		if len(res.Metrics) > 0 {
			res.Target, res.Met = sc.target.String(), sc.target.met(res.Metrics[0])
		}
		out.printf("done in %.1fs", res.Seconds)
		rep.Results = append(rep.Results, res)
	}
	out.in("")
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}
