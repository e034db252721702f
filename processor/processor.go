// Package processor materializes the Presence topics into Redis and tells
// each change of a user's visible state to those it concerns.
//
// It consumes the compacted topics presence.sessions, presence.friends and
// presence.subscriptions in a consumer group. Each poll's records are
// applied with one goroutine per partition, so one user's records are
// applied in order, while partitions proceed side by side. A batch counts
// as done only when Redis holds it and its notifications are in Kafka;
// then the processor writes the partition's checkpoint to Redis and
// commits the offsets to Kafka.
//
// The processor owns the users of its partitions of presence.sessions
// (owned.go): it keeps them in memory, applies records there, versioned
// by offset so that records applied twice change nothing, and writes
// Redis only the result, each changed user once per batch, fenced so that
// a processor that lost the partition cannot write. Friends and
// subscriptions are set operations, written through the same fence, which
// converge when a suffix is applied again in order.
//
// Where a partition starts applying is decided by the checkpoint in
// Redis, not by the group's committed offset: a partition Redis holds
// nothing of (a new Redis, or one that lost its data) is emptied of any
// debris and rebuilt from the beginning of the compacted topic, writing
// each user once; one Redis holds a prefix of resumes after it (a
// partition of presence.sessions is read from its beginning all the same,
// the prefix restoring its users in memory).
//
// Checkpoints are fenced: the processor moves a checkpoint only from the
// value it last read or wrote. Finding another value means Redis lost
// state while the processor ran (a restart without persistence, a flush, a
// failover), or, when the checkpoint went past this processor's, that
// another processor owns the partition now; either way the processor
// leaves the group and joins it again, which rebuilds what was lost.
// Redis also records the id and partition count of the topic its state
// was built from; state built from another topic is rebuilt whole.
//
// Group membership and failover are in group.go: Kafka's committed
// offsets are only a hint, committed in the background, so that a
// rebalance never stalls the partitions that stay.
//
// A rebuild is a mode: the checkpoint of each partition being rebuilt
// holds its target, the end of the history to apply, so that readiness,
// the query API (redisstore.Store.Rebuilding) and a processor that takes
// the partition over all know the state is incomplete, and no
// notification is sent for history.
//
// Notifications (see notify.go) go to presence.notify, one record per
// gateway holding recipients. Every processor also reads every gateway's
// heartbeats, outside the group (heartbeats.go), and ends the lost
// sessions its partitions hold (lease.go).
package processor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/records"
)

// errStateLost: Redis no longer holds what the processor wrote.
var errStateLost = errors.New("redis lost state under the processor")

// errMoved: another processor applied past this one's checkpoint of a
// partition this one still held: the partition moved while this
// processor was out of the group (its session had ended).
var errMoved = errors.New("partitions moved to another processor")

// DefaultGroup is the consumer group of processors.
const DefaultGroup = "presence-processor"

// DefaultOfflineGrace is how long a user must stay offline before their
// audience is told.
const DefaultOfflineGrace = 5 * time.Second

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
	// OfflineGrace is how long a user must stay offline before friends
	// and subscribers are told (DefaultOfflineGrace); a reconnect within
	// it is no news.
	OfflineGrace time.Duration
	// GatewayLease is the lease of a gateway that never heartbeats
	// (DefaultGatewayLease): its sessions end this long after they
	// connected. A gateway that heartbeats says its own lease.
	GatewayLease time.Duration
	// Limits bound what the processor takes from a record, and how long
	// a partition may stall.
	Limits
	// Quiet applies records and nothing else: no notifications, no
	// offline announcements, no gateway leases, no dead letters, no
	// tombstones (the quiet duties of duties.go). It is for presence
	// replay, which rebuilds a Redis no service reads yet.
	Quiet bool
	// Now is the clock (time.Now).
	Now func() time.Time
	// Logger receives the processor's logs (slog.Default()).
	Logger *slog.Logger
	// Registerer receives the processor's metrics (none when nil).
	Registerer prometheus.Registerer
	// InstanceID makes the processor a static member of its group (Kafka's
	// group.instance.id): a processor that died and restarts with the
	// same id within SessionTimeout takes its partitions back at once,
	// without a rebalance. Each running processor needs its own id.
	// Empty: a dynamic member. Either way a processor that stops (its
	// context ends) leaves the group, so its partitions move at once.
	InstanceID string
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating before its partitions go to the others
	// (DefaultSessionTimeout). Kafka bounds it by the brokers'
	// group.min.session.timeout.ms (6s by default).
	SessionTimeout time.Duration
	// KafkaOpts are added to the Kafka client's options (TLS, SASL, ...).
	KafkaOpts []kgo.Opt
}

// topicPartition names one partition of one topic.
type topicPartition struct {
	topic     string
	partition int32
}

// span is how far an assigned partition has to go: from its checkpoint
// when assigned to its end then; next is the offset applied up to, high
// the partition's end as of the last fetch. moved is when next last moved,
// or when records arrived at a partition that had none waiting.
type span struct {
	from, end, next, high int64
	moved                 time.Time
}

// Processor consumes the state topics into Redis.
type Processor struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	joined  atomic.Bool
	// leaving is set once the consuming loop has returned: partitions
	// revoked then are released, not moved.
	leaving atomic.Bool
	// polled is when the consuming loop last began an iteration (Unix
	// nanoseconds of Config.Now); see stall.go.
	polled atomic.Int64
	// adm is the admin client of the current membership, which the
	// group's callbacks use: it exists before the consumer joins.
	adm  atomic.Pointer[kadm.Client]
	stop context.CancelCauseFunc

	mu sync.Mutex
	// spans holds, per assigned partition, how far it has to go to catch
	// up with the end it had when assigned.
	spans map[topicPartition]*span
	// checkpoints holds, per topic and assigned partition, its checkpoint
	// as this processor last read or wrote it.
	checkpoints map[string]map[int32]int64
	// rebuilding holds, per partition being rebuilt, the end offset of its
	// history: records before it are applied quietly.
	rebuilding map[topicPartition]int64
	// counts holds the partition count of each consumed topic, as of
	// the assignment, which says the partition of a record's key.
	counts map[string]int
	// owners holds this processor's hold on each assigned partition of
	// the state topics, and owned the users of each of presence.sessions
	// (see owned.go).
	owners map[topicPartition]redisstore.Owner
	owned  map[int32]*owned
	// oldGraces are the offline announcements an older release had
	// pending in Redis for a partition being taken, until own queues
	// them (owned.go).
	oldGraces map[int32][]redisstore.Pending

	// announcer announces the partitions applied side by side together
	// (see announcer.go).
	announcer announcer
	// leases are what the processor knows of the gateways, behind a lock
	// of their own (lease.go); a new membership starts them afresh.
	leases *leases
	// duties are what the processor does beside applying records: all a
	// live one does, or none (duties.go).
	duties duties
}

// New checks cfg and registers the processor's metrics.
func New(cfg Config) (*Processor, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("processor: no brokers")
	}
	if cfg.Store == nil {
		return nil, errors.New("processor: no store")
	}
	cfg.Group = cmp.Or(cfg.Group, DefaultGroup)
	cfg.OfflineGrace = cmp.Or(cfg.OfflineGrace, DefaultOfflineGrace)
	cfg.GatewayLease = cmp.Or(cfg.GatewayLease, DefaultGatewayLease)
	cfg.MaxRecordBytes = cmp.Or(cfg.MaxRecordBytes, DefaultMaxRecordBytes)
	cfg.MaxClockSkew = cmp.Or(cfg.MaxClockSkew, DefaultMaxClockSkew)
	cfg.MaxGatewayLease = max(cmp.Or(cfg.MaxGatewayLease, DefaultMaxGatewayLease), cfg.GatewayLease)
	cfg.StallTimeout = cmp.Or(cfg.StallTimeout, DefaultStallTimeout)
	cfg.SessionTimeout = cmp.Or(cfg.SessionTimeout, DefaultSessionTimeout)
	if cfg.MaxRecordBytes < 0 || cfg.MaxClockSkew < 0 || cfg.MaxGatewayLease < 0 || cfg.StallTimeout < 0 || cfg.SessionTimeout < 0 {
		return nil, errors.New("processor: negative MaxRecordBytes, MaxClockSkew, MaxGatewayLease, StallTimeout or SessionTimeout")
	}
	if err := CheckInstanceID(cfg.InstanceID); err != nil {
		return nil, fmt.Errorf("processor: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	p := &Processor{cfg: cfg, log: cfg.Logger.With("component", "processor")}
	p.duties = newDuties(p)
	m, err := newMetrics(cfg.Registerer, func() float64 { return float64(len(p.stalled())) })
	if err != nil {
		return nil, fmt.Errorf("processor: registering metrics: %w", err)
	}
	p.metrics = m
	return p, nil
}

// Progress is how far the processor is from having caught up with the
// records its partitions held when they were assigned.
type Progress struct {
	// Done and Total count offsets (records, and the gaps compaction left)
	// of the partitions whose start is known.
	Done, Total int64
	// Behind counts partitions not caught up; Rebuilding, those of them
	// being rebuilt.
	Behind, Rebuilding int
}

// Progress returns how far the processor is from having caught up.
func (p *Processor) Progress() Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pr Progress
	for tp, s := range p.spans {
		if s.end != math.MaxInt64 { // not yet started: its end is unknown
			pr.Total += max(s.end-s.from, 0)
			pr.Done += max(min(s.next, s.end)-s.from, 0)
		}
		if s.next < s.end {
			pr.Behind++
			if _, ok := p.rebuilding[tp]; ok {
				pr.Rebuilding++
			}
		}
	}
	return pr
}

// CaughtUp reports whether the processor has joined its group and caught
// up with the records its partitions held when they were assigned: until
// then Redis answers for only part of them.
func (p *Processor) CaughtUp(context.Context) error {
	if !p.joined.Load() {
		return errors.New("processor has not joined its consumer group yet")
	}
	switch pr := p.Progress(); {
	case pr.Rebuilding > 0:
		return fmt.Errorf("processor is rebuilding redis from the topics: %d partitions to go, %d of %d records applied",
			pr.Behind, pr.Done, pr.Total)
	case pr.Behind > 0:
		return fmt.Errorf("processor is catching up: %d partitions behind, %d of %d records applied", pr.Behind, pr.Done, pr.Total)
	}
	return nil
}

// Ready reports whether the processor has caught up, no partition is
// stalled (see stall.go) and Redis answers.
func (p *Processor) Ready(ctx context.Context) error {
	if err := p.stallError(); err != nil {
		return err
	}
	if err := p.CaughtUp(ctx); err != nil {
		return err
	}
	return p.cfg.Store.Ping(ctx)
}

// sweepEvery is how often pending offline announcements are looked at,
// whether records arrive or not (so a busy processor does not ask Redis
// after every batch); sweepSlowEvery, how often lapsed gateway leases and
// dead keys are.
const (
	sweepEvery     = 250 * time.Millisecond
	sweepSlowEvery = time.Second
)

// Run creates missing topics, then consumes until ctx ends. When Redis
// loses what the processor wrote, or its partitions moved to another
// processor while it was out of the group, it leaves its group and joins
// again, which rebuilds what was lost. It returns an error when another
// processor joins with its instance id, or the brokers refuse its session
// timeout. Records fetched but not yet in Redis when it stops are read
// again by whichever processor owns their partition next.
func (p *Processor) Run(ctx context.Context) error {
	for {
		err := p.consume(ctx)
		switch {
		case errors.Is(err, errMoved):
			p.metrics.moved.WithLabelValues("lost").Inc()
			p.log.Warn("partitions moved to another processor while this one was out of the group; joining it again", "err", err)
		case errors.Is(err, errStateLost):
			p.metrics.stateLost.Inc()
			p.log.Warn("redis lost state; joining the group again to rebuild it", "err", err)
		default:
			return err
		}
	}
}

// consume runs one membership of the group, until ctx ends (it returns
// nil), Redis lost state (errStateLost), the partitions moved while this
// processor was out of the group (errMoved), or the group refuses it (a
// groupError).
func (p *Processor) consume(ctx context.Context) (err error) {
	p.joined.Store(false)
	p.leaving.Store(false)
	p.polled.Store(p.cfg.Now().UnixNano())
	p.mu.Lock()
	p.spans = map[topicPartition]*span{}
	p.checkpoints = map[string]map[int32]int64{}
	p.rebuilding = map[topicPartition]int64{}
	p.counts = map[string]int{}
	p.owners = map[topicPartition]redisstore.Owner{}
	p.owned = map[int32]*owned{}
	p.oldGraces = map[int32][]redisstore.Pending{}
	p.leases = newLeases(p.cfg.GatewayLease)
	p.mu.Unlock()
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
	// Topics first: a consumer that joined before they all exist would
	// be assigned the late ones seconds later, behind again.
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.cfg.Brokers...)}, p.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer admin.Close()
	if err := EnsureTopics(ctx, admin, p.cfg.Partitions); err != nil {
		return err
	}
	p.adm.Store(kadm.NewClient(admin))
	// Runs after the consumer closed: a static member does not leave
	// the group by closing.
	defer func() {
		if p.cfg.InstanceID != "" && errors.Is(context.Cause(ctx), context.Canceled) {
			p.leaveGroup(ctx)
		}
	}()
	opts := append(append([]kgo.Opt{
		kgo.SeedBrokers(p.cfg.Brokers...),
		// How the group's members (GET /v1/ops, kafka-consumer-groups)
		// name a processor, beside its host and instance id.
		kgo.ClientID("presence-processor"),
		kgo.ConsumeTopics(p.topics()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Gateways may write a batch in a transaction (all or nothing):
		// read only what was committed.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A transaction's commit marker takes an offset: read markers
		// (and skip them) so that a partition ending in one is caught
		// up, and its checkpoint moves past it.
		kgo.KeepControlRecords(),
		// A partition assigned while a fetch waits for records is read
		// once that fetch returns, and the first fetch after an
		// assignment returns only when the wait ends: wait 0.1s for
		// records, not 5s, so that a processor that joins (a takeover,
		// a replay) starts at once (with 0.5s, a replay of 1 M
		// sessions spent half a second waiting).
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(records.Partitioner()),
		// A poll must hold records of every busy partition, so that
		// they apply side by side: with franz-go's default of 1 MiB per
		// partition, a poll of maxPoll records held only 2 to 4 of 12.
		kgo.FetchMaxPartitionBytes(128 << 10),
	}, p.groupOpts()...), p.cfg.KafkaOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	// Leaving the group on Close waits for rebalances to be allowed.
	defer cl.AllowRebalance()
	defer p.leaving.Store(true)
	defer p.duties.watch(ctx, cl)()
	p.log.Info("consuming", "topics", p.topics(), "group", p.cfg.Group, "instance_id", p.cfg.InstanceID,
		"session_timeout", p.cfg.SessionTimeout)
	for {
		p.polled.Store(p.cfg.Now().UnixNano())
		poll, cancel := context.WithTimeout(ctx, sweepEvery)
		fetches := cl.PollRecords(poll, maxPoll)
		cancel()
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		var fatal error
		fetches.EachError(func(topic string, partition int32, err error) {
			if f := p.groupError(err); f != nil {
				fatal = f
			} else if !errors.Is(err, context.DeadlineExceeded) {
				p.log.Warn("fetch failed", "topic", topic, "partition", partition, "err", err)
			}
		})
		if fatal != nil {
			return fatal
		}
		p.applyFetches(ctx, cl, fetches)
		if err := p.duties.between(ctx, cl); err != nil {
			p.stop(err)
			return nil
		}
		cl.AllowRebalance()
	}
}

// checkCheckpoints reads the checkpoints of the state topics in Redis and
// compares them with those this processor last read or wrote, so that a
// Redis that lost state is noticed even on partitions that get no
// records, before anything acts on it (errStateLost). It returns how many
// partitions of the state topics are not yet built, by any processor.
func (p *Processor) checkCheckpoints(ctx context.Context) (unbuilt int, err error) {
	p.mu.Lock()
	mine := map[string]map[int32]int64{}
	for topic, cps := range p.checkpoints {
		mine[topic] = maps.Clone(cps)
	}
	p.mu.Unlock()
	for _, topic := range schemas.StateTopics {
		cp, err := p.cfg.Store.Checkpoint(ctx, topic)
		if err != nil {
			return 0, err
		}
		unbuilt += cp.Unbuilt()
		for partition, next := range mine[topic] {
			switch found, ok := cp.Next[partition]; {
			case ok && found > next:
				return 0, fmt.Errorf("%w: %s partition %d is at %d in redis, past the %d this processor wrote",
					errMoved, topic, partition, found, next)
			case !ok || found != next:
				return 0, fmt.Errorf("%w: %s partition %d is at %d in redis (present: %v), this processor wrote %d",
					errStateLost, topic, partition, found, ok, next)
			}
		}
	}
	return unbuilt, nil
}

// topics are the topics the processor consumes in its group: the state
// topics. (Unless it is quiet, it also reads every gateway's heartbeats,
// outside the group: heartbeats.go.)
func (p *Processor) topics() []string { return schemas.StateTopics }

// applyFetches applies each partition's records in its own goroutine, then
// checkpoints the partitions Redis now holds and marks them to be
// committed to Kafka in the background.
func (p *Processor) applyFetches(ctx context.Context, cl *kgo.Client, fetches kgo.Fetches) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done = map[string]map[int32]int64{}
		last = map[string][]*kgo.Record{}
	)
	p.mu.Lock()
	from := map[string]map[int32]int64{}
	for topic, cps := range p.checkpoints {
		from[topic] = maps.Clone(cps)
	}
	p.mu.Unlock()
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		end := fp.Records[len(fp.Records)-1]
		p.waiting(topicPartition{fp.Topic, fp.Partition}, max(fp.LastStableOffset, end.Offset+1))
		// An announcement waits for every sessions partition being
		// applied to join it or end (announcer.go): then none changes
		// while it reads their users in memory (notify.go).
		var applied func()
		if fp.Topic == schemas.SessionsTopic {
			applied = p.duties.begin()
		}
		wg.Go(func() {
			if applied != nil {
				defer applied()
			}
			err := p.applyPartition(ctx, cl, fp.Partition, fp.Records, fp.LastStableOffset)
			if err != nil && !errors.Is(err, errDeferred) {
				return
			}
			p.caughtUp(topicPartition{fp.Topic, fp.Partition}, end.Offset+1, fp.LastStableOffset)
			if err != nil {
				return // in memory only: the checkpoint stays
			}
			p.metrics.lag.WithLabelValues(fp.Topic, strconv.Itoa(int(fp.Partition))).Set(float64(max(fp.LastStableOffset-end.Offset-1, 0)))
			if cp, ok := from[fp.Topic][fp.Partition]; ok && end.Offset+1 <= cp {
				return // restored what Redis holds: the checkpoint stays
			}
			mu.Lock()
			if done[fp.Topic] == nil {
				done[fp.Topic] = map[int32]int64{}
			}
			done[fp.Topic][fp.Partition] = end.Offset + 1
			last[fp.Topic] = append(last[fp.Topic], end)
			mu.Unlock()
		})
	})
	wg.Wait()
	// Records are applied; what follows only saves work on a restart, so
	// it is finished even when ctx has ended.
	finish, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var commit []*kgo.Record
	owners := map[string]map[int32]redisstore.Owner{}
	p.mu.Lock()
	for tp, o := range p.owners {
		if owners[tp.topic] == nil {
			owners[tp.topic] = map[int32]redisstore.Owner{}
		}
		owners[tp.topic][tp.partition] = o
	}
	p.mu.Unlock()
	for topic, to := range done {
		var told map[int32]int64
		if topic == schemas.SessionsTopic {
			told = p.pendingFrom(to)
		}
		if err := p.cfg.Store.Advance(finish, topic, from[topic], to, owners[topic], told); err != nil {
			if errors.Is(err, redisstore.ErrCheckpointMoved) {
				// Tell a partition that moved from a Redis that lost
				// state by what Redis holds now.
				if _, why := p.checkCheckpoints(finish); errors.Is(why, errMoved) || errors.Is(why, errStateLost) {
					err = why
				} else {
					err = fmt.Errorf("%w: %w", errStateLost, err)
				}
				p.stop(err)
				return
			}
			p.log.Warn("checkpoint failed; the batch will be re-applied after a restart", "topic", topic, "err", err)
			continue
		}
		p.mu.Lock()
		for partition, next := range to {
			if _, owned := p.checkpoints[topic][partition]; owned {
				p.checkpoints[topic][partition] = next
			}
		}
		p.mu.Unlock()
		commit = append(commit, last[topic]...)
	}
	// Committed in the background (see group.go): a commit waits while
	// the group rebalances, the poll loop must not.
	cl.MarkCommitRecords(commit...)
}

// fetchMaxWait is how long a fetch waits for records (see consume).
const fetchMaxWait = 100 * time.Millisecond

// maxPoll is the most records taken from Kafka at once: their partitions
// are applied side by side, then checkpointed together.
const maxPoll = 40000

// maxChunk is the most changes applied in one pipelined attempt, so that
// an attempt's time is bounded whatever the size of a fetch.
const maxChunk = 1000

// maxDeferred is the most users a rebuild changes in memory before it
// writes them: it writes each user once, when its partition is caught up,
// unless this many wait (then it writes them, so that the partition's
// checkpoint, and the progress read from it, moves).
const maxDeferred = 100_000

// errDeferred: the changes of a rebuild are applied in memory, not yet
// written: the partition's checkpoint must not move past them.
var errDeferred = errors.New("rebuild deferred: applied in memory only")

// applyPartition applies one partition's records to Redis, in order, in
// chunks of at most maxChunk, and announces the changes they make. Each
// step is retried with backoff until it succeeds or ctx ends.
func (p *Processor) applyPartition(ctx context.Context, cl *kgo.Client, partition int32, recs []*kgo.Record, high int64) error {
	b := batch{clamp: p.clampTime}
	if o := p.ownedPartition(partition); o != nil && recs[0].Topic == schemas.SessionsTopic {
		// The partition's changes are applied by one goroutine at a
		// time, and none is kept once applied: their slice serves again.
		b.sessions = slices.Grow(o.changes[:0], len(recs))
		defer func() {
			clear(b.sessions)
			o.changes = b.sessions[:0]
		}()
	}
	n := p.partitionCount(recs[0].Topic)
	var dead []*kgo.Record
	for _, r := range recs {
		err := p.admit(r, n)
		if err == nil {
			err = b.add(r)
		}
		if err != nil {
			dead = append(dead, p.deadLetter(r, err))
			if !errors.Is(err, errWrongPartition) {
				b.refuse(r)
			}
		}
	}
	if err := p.duties.deadLetters(ctx, cl, dead); err != nil {
		return err
	}
	start := time.Now()
	for chunk := range slices.Chunk(b.friends, maxChunk) {
		if err := p.retryOwned(ctx, "applying friendships", schemas.FriendsTopic, partition, func(ctx context.Context) error {
			return p.cfg.Store.ApplyFriends(ctx, p.ownerOf(schemas.FriendsTopic, partition), chunk)
		}); err != nil {
			return err
		}
	}
	for chunk := range slices.Chunk(b.subscriptions, maxChunk) {
		if err := p.retryOwned(ctx, "applying subscriptions", schemas.SubscriptionsTopic, partition, func(ctx context.Context) error {
			return p.cfg.Store.ApplySubscriptions(ctx, p.ownerOf(schemas.SubscriptionsTopic, partition), chunk, p.cfg.Now())
		}); err != nil {
			return err
		}
	}
	p.metrics.applied.Add(float64(len(b.friends) + len(b.subscriptions)))
	var deferred error
	if o := p.ownedPartition(partition); recs[0].Topic == schemas.SessionsTopic && o != nil && o.replaceUntil < 0 {
		o.replaceUntil = max(high, recs[len(recs)-1].Offset+1)
	}
	if o := p.ownedPartition(partition); recs[0].Topic == schemas.SessionsTopic && len(b.sessions) == 0 && o != nil && o.users.Dirty() > 0 {
		// Records that change no user (transaction markers, session
		// tombstones, dead letters) end a rebuild as well: what it
		// deferred is written once it is caught up, and the checkpoint
		// never moves past users it has not written.
		if recs[len(recs)-1].Offset+1 < high {
			return errDeferred
		}
		if err := p.write(ctx, o, partition, true); err != nil {
			return err
		}
	}
	for chunk := range slices.Chunk(b.sessions, maxChunk) {
		last := &chunk[len(chunk)-1] == &b.sessions[len(b.sessions)-1]
		err := p.applySessions(ctx, cl, partition, chunk, last && recs[len(recs)-1].Offset+1 >= high)
		switch {
		case errors.Is(err, errDeferred):
			deferred = err
		case err != nil:
			return err
		default:
			deferred = nil // written, with what earlier chunks deferred
		}
	}
	if b.len() > 0 {
		p.metrics.applyTime.Observe(time.Since(start).Seconds())
	}
	return deferred
}

// applySessions applies session changes to the users of the partition in
// memory, quietly for the history of a partition being rebuilt and for
// the records that restore what Redis holds, writes the users they
// changed, then announces what changed.
func (p *Processor) applySessions(ctx context.Context, cl *kgo.Client, partition int32, changes []redisstore.Change, caughtUp bool) error {
	o := p.ownedPartition(partition)
	if o == nil {
		return fmt.Errorf("%w: %s partition %d is not this processor's", errMoved, schemas.SessionsTopic, partition)
	}
	p.mu.Lock()
	quiet := p.duties.newsFrom(p.rebuilding[topicPartition{schemas.SessionsTopic, partition}])
	p.mu.Unlock()
	// The records before the checkpoint restore what Redis holds: in
	// memory only. (They all come before any other of the partition.)
	if split := firstAtOrPast(changes, o.restored); split > 0 {
		for _, c := range changes[:split] {
			o.users.Apply(c, true)
		}
		o.users.DropDirty()
		p.duties.restored(o, changes[:split])
		changes = changes[split:]
		if len(changes) == 0 {
			return nil
		}
	}
	outcomes := make([]redisstore.Outcome, len(changes))
	for i, c := range changes {
		o.users.SetReplace(o.replaceUntil < 0 || c.Version < o.replaceUntil)
		outcomes[i] = o.users.Apply(c, c.Version < quiet)
	}
	if err := p.duties.late(ctx, cl, changes, outcomes); err != nil {
		return err
	}
	// A rebuild writes each user once, when the partition is caught up,
	// or sooner when too many wait.
	if changes[len(changes)-1].Version < quiet && !caughtUp && o.users.Dirty() < maxDeferred {
		return errDeferred
	}
	if err := p.write(ctx, o, partition, changes[len(changes)-1].Version < quiet); err != nil {
		return err
	}
	for _, out := range outcomes {
		switch {
		case out.Applied:
			p.metrics.applied.Inc()
		default:
			p.metrics.duplicate.Inc()
		}
	}
	return p.duties.changed(ctx, cl, partition, changes, outcomes, firstAtOrPast(changes, quiet))
}
