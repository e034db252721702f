// Package processor materializes the sessions topic into Redis.
//
// It consumes presence.sessions in a consumer group. Each poll's records
// are applied with one goroutine per partition, so one user's records are
// applied in order, while partitions proceed side by side. A batch counts
// as done only when Redis holds it; then the processor writes the
// partition's checkpoint to Redis and commits the offsets to Kafka.
//
// Where a partition starts is decided by the checkpoint in Redis, not by
// the group's committed offset: a partition Redis holds nothing of (a new
// Redis, or one that lost its data) is emptied of any debris and rebuilt
// from the beginning of the compacted topic, and one Redis holds a prefix
// of resumes after it. Applying is versioned by offset, so records applied
// twice change nothing.
//
// Checkpoints are fenced: the processor moves a checkpoint only from the
// value it last read or wrote. Finding another value means Redis lost
// state while the processor ran (a restart without persistence, a flush, a
// failover) or another processor owns the partition; the processor then
// stops with ErrStateLost, and its restart rebuilds what was lost. Redis
// also records the id and partition count of the topic its state was built
// from, and a processor refuses (ErrOtherTopic) to apply another topic's
// records on top of it.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// Errors that stop a processor.
var (
	// ErrStateLost: Redis no longer holds what the processor wrote.
	ErrStateLost = errors.New("redis lost state under the processor; restart it to rebuild")
	// ErrOtherTopic: Redis holds state built from another topic, or from
	// the same topic with another partition count (which moves users
	// between partitions and invalidates versions).
	ErrOtherTopic = errors.New("redis holds state built from another topic or partition count")
)

// DefaultGroup is the consumer group of processors.
const DefaultGroup = "presence-processor"

// Config configures a Processor. Zero values mean the documented defaults.
type Config struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Group is the consumer group (DefaultGroup).
	Group string
	// Store is where state is materialized. Required.
	Store *redisstore.Store
	// Partitions is the partition count of topics the processor creates
	// when they are missing (schemas.DefaultPartitions).
	Partitions int32
	// Logger receives the processor's logs (slog.Default()).
	Logger *slog.Logger
	// Registerer receives the processor's metrics (none when nil).
	Registerer prometheus.Registerer
	// KafkaOpts are added to the Kafka client's options (TLS, SASL, ...).
	KafkaOpts []kgo.Opt
}

// Processor consumes the sessions topic into Redis.
type Processor struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	joined  atomic.Bool
	cl      atomic.Pointer[kgo.Client]
	stop    context.CancelCauseFunc

	mu sync.Mutex
	// behind holds, per assigned partition not yet caught up, the end
	// offset it must reach: the partition's end when it was assigned.
	behind map[int32]int64
	// checkpoints holds, per assigned partition, its checkpoint as this
	// processor last read or wrote it.
	checkpoints map[int32]int64
}

// New checks cfg and registers the processor's metrics.
func New(cfg Config) (*Processor, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("processor: no brokers")
	}
	if cfg.Store == nil {
		return nil, errors.New("processor: no store")
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("processor: registering metrics: %w", err)
	}
	return &Processor{cfg: cfg, log: cfg.Logger.With("component", "processor"), metrics: m}, nil
}

// CaughtUp reports whether the processor has joined its group and caught
// up with the records its partitions held when they were assigned: until
// then Redis answers for only part of them (a rebuild is under way).
func (p *Processor) CaughtUp(context.Context) error {
	if !p.joined.Load() {
		return errors.New("processor has not joined its consumer group yet")
	}
	p.mu.Lock()
	behind := len(p.behind)
	p.mu.Unlock()
	if behind > 0 {
		return fmt.Errorf("processor is catching up: %d partitions behind", behind)
	}
	return nil
}

// Ready reports whether the processor has caught up and Redis answers.
func (p *Processor) Ready(ctx context.Context) error {
	if err := p.CaughtUp(ctx); err != nil {
		return err
	}
	return p.cfg.Store.Ping(ctx)
}

// Run creates missing topics, then consumes until ctx ends (and returns
// nil) or the state in Redis cannot be trusted (and returns an error
// wrapping ErrStateLost or ErrOtherTopic). Records fetched but not yet in
// Redis when it stops are read again by whichever processor owns their
// partition next.
func (p *Processor) Run(ctx context.Context) (err error) {
	ctx, p.stop = context.WithCancelCause(ctx)
	defer func() {
		switch cause := context.Cause(ctx); {
		case cause != nil && !errors.Is(cause, context.Canceled):
			err = cause // stopped by p.stop
		case cause != nil:
			err = nil // ctx ended: whatever failed on the way out is no error
		}
		p.stop(nil)
	}()
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(schemas.SessionsTopic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(p.startAtCheckpoints),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.revoked),
	}, p.cfg.KafkaOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	p.cl.Store(cl)
	defer cl.Close()
	// Leaving the group on Close waits for rebalances to be allowed.
	defer cl.AllowRebalance()
	if err := EnsureTopics(ctx, cl, p.cfg.Partitions); err != nil {
		return err
	}
	p.log.Info("consuming", "topic", schemas.SessionsTopic, "group", p.cfg.Group)
	for {
		fetches := cl.PollRecords(ctx, 10000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.log.Warn("fetch failed", "topic", topic, "partition", partition, "err", err)
		})
		p.applyFetches(ctx, cl, fetches)
		cl.AllowRebalance()
	}
}

// applyFetches applies each partition's records in its own goroutine, then
// checkpoints and commits the partitions Redis now holds.
func (p *Processor) applyFetches(ctx context.Context, cl *kgo.Client, fetches kgo.Fetches) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done = map[int32]int64{}
		last []*kgo.Record
	)
	p.mu.Lock()
	from := maps.Clone(p.checkpoints)
	p.mu.Unlock()
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		wg.Go(func() {
			if err := p.applyPartition(ctx, fp.Records); err != nil {
				return
			}
			end := fp.Records[len(fp.Records)-1]
			p.caughtUp(fp.Partition, end.Offset+1)
			p.metrics.lag.WithLabelValues(strconv.Itoa(int(fp.Partition))).Set(float64(max(fp.HighWatermark-end.Offset-1, 0)))
			mu.Lock()
			done[fp.Partition] = end.Offset + 1
			last = append(last, end)
			mu.Unlock()
		})
	})
	wg.Wait()
	if len(done) == 0 {
		return
	}
	// Records are applied; what follows only saves work on a restart, so
	// it is finished even when ctx has ended.
	finish, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.cfg.Store.Advance(finish, schemas.SessionsTopic, from, done); err != nil {
		if errors.Is(err, redisstore.ErrCheckpointMoved) {
			p.log.Error("stopping: redis no longer holds what this processor wrote", "err", err)
			p.stop(fmt.Errorf("%w: %w", ErrStateLost, err))
			return
		}
		p.log.Warn("checkpoint failed; the batch will be re-applied after a restart", "err", err)
		return
	}
	p.mu.Lock()
	for partition, next := range done {
		if _, owned := p.checkpoints[partition]; owned {
			p.checkpoints[partition] = next
		}
	}
	p.mu.Unlock()
	if err := cl.CommitRecords(finish, last...); err != nil {
		p.log.Warn("commit failed", "err", err)
	}
}

// maxChunk is the most changes applied in one pipelined attempt, so that
// an attempt's time is bounded whatever the size of a fetch.
const maxChunk = 1000

// applyPartition applies one partition's records to Redis, in order, in
// chunks of at most maxChunk, each retried with backoff until Redis takes
// it or ctx ends. An attempt under way when ctx ends is given a few
// seconds to finish.
func (p *Processor) applyPartition(ctx context.Context, recs []*kgo.Record) error {
	changes := make([]redisstore.Change, 0, len(recs))
	for _, r := range recs {
		c, ok, err := decode(r)
		if err != nil {
			p.metrics.invalid.Inc()
			p.log.Warn("skipping invalid record", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if ok {
			changes = append(changes, c)
		}
	}
	for chunk := range slices.Chunk(changes, maxChunk) {
		if err := p.applyChunk(ctx, chunk); err != nil {
			return err
		}
	}
	return nil
}

func (p *Processor) applyChunk(ctx context.Context, changes []redisstore.Change) error {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		attempt, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		applied, err := p.cfg.Store.Apply(attempt, changes)
		cancel()
		if err == nil {
			p.metrics.applyTime.Observe(time.Since(start).Seconds())
			p.metrics.applied.Add(float64(applied))
			p.metrics.duplicate.Add(float64(len(changes) - applied))
			return nil
		}
		p.metrics.applyErrors.Inc()
		p.log.Warn("applying to redis failed; retrying", "records", len(changes), "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
