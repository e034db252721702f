package processor

// Bounded topics: compaction keeps the latest record of every key forever,
// so a key whose record no longer shows in the state must be tombstoned
// for the topic to stay bounded: the latest disconnect of an offline
// user once the user is forgotten (its last seen comes from it), any
// other ended session the offline TTL after it ended; the custom status
// of a user forgotten; subscriptions once they expire. Removed friends and cleared custom statuses are tombstones
// already, written by the query API. The users of a partition of
// presence.sessions are in this processor's memory, which knows their
// dead keys (processor/state); subscriptions are scheduled in Redis
// (redisstore.DeadKeys).
//
// A partition's keys are swept only while it is caught up, as of its last
// fetch, and not being rebuilt, so that the state they are checked against
// is the latest the topic says; its offline users past their deadline are
// forgotten then. What remains is a write to the same key between that
// fetch and the tombstone: a subscription renewed then is ended by the
// tombstone, in the log and in the state alike; a session reconnected
// then with the id of one that ended an offline TTL ago (ids are meant to
// be new for each connection) would stay live in the state while
// compaction removes its connect from the log.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/records"
)

// boundedTopics are the topics whose dead keys the processor tombstones.
var boundedTopics = []string{schemas.SessionsTopic, schemas.SubscriptionsTopic}

// sweepDeadKeys tombstones the dead keys of the caught-up partitions this
// processor owns. One that fails is tried again at the next sweep.
func (p *Processor) sweepDeadKeys(ctx context.Context, cl *kgo.Client) {
	now := p.cfg.Now()
	for _, tp := range p.settled(boundedTopics) {
		dead, buried, err := p.deadKeys(ctx, tp, now)
		if err != nil || len(dead) == 0 {
			if err != nil {
				p.log.Warn("reading dead keys failed; retrying at the next sweep", "topic", tp.topic, "err", err)
			}
			continue
		}
		recs := make([]*kgo.Record, len(dead))
		for i, key := range dead {
			recs[i] = records.Tombstone(tp.topic, key, time.Time{})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			p.log.Warn("writing tombstones failed; retrying at the next sweep", "topic", tp.topic, "err", err)
			continue
		}
		p.metrics.tombstones.WithLabelValues(tp.topic).Add(float64(len(recs)))
		if err := buried(); err != nil {
			p.log.Warn("unscheduling tombstoned keys failed", "topic", tp.topic, "err", err)
		}
	}
}

// deadKeys returns up to maxChunk dead keys of a partition this processor
// owns, and what to call once they are tombstoned. The offline users of a
// partition of presence.sessions whose deadline has passed are forgotten
// first; its keys are found in memory, those of other topics in Redis.
func (p *Processor) deadKeys(ctx context.Context, tp topicPartition, now time.Time) ([]string, func() error, error) {
	if tp.topic != schemas.SessionsTopic {
		dead, err := p.cfg.Store.DeadKeys(ctx, tp.topic, tp.partition, now, maxChunk)
		return dead, func() error { return p.cfg.Store.Buried(ctx, tp.topic, tp.partition, dead) }, err
	}
	o := p.ownedPartition(tp.partition)
	if o == nil {
		return nil, nil, nil
	}
	o.users.Expire(now, 0)
	return o.users.DeadKeys(now, maxChunk), func() error { o.users.Buried(); return nil }, nil
}

// settled returns the partitions of topics this processor owns that are
// caught up with their end as of the last fetch (and so rebuilt, if they
// were being rebuilt).
func (p *Processor) settled(topics []string) []topicPartition {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []topicPartition
	for tp, s := range p.spans {
		if s.next >= s.end && s.next >= s.high && slices.Contains(topics, tp.topic) {
			out = append(out, tp)
		}
	}
	return out
}
