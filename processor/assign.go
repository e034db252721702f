package processor

// What happens when partitions are assigned to or taken from this
// processor: where each starts (its checkpoint in Redis, after a reset
// when Redis holds nothing of it), and how far behind each is.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// caughtUp notes that the partition is applied up to next, and ends at
// high.
func (p *Processor) caughtUp(tp topicPartition, next, high int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.spans[tp]; ok {
		if next > s.next {
			s.moved = p.cfg.Now()
		}
		s.next, s.high = max(s.next, next), max(s.high, high)
	}
}

// startAtCheckpoints starts each assigned partition at its checkpoint in
// Redis. A partition Redis has no checkpoint for is first reset (what was
// materialized from it deleted, its checkpoint set to 0) and read from its
// beginning. Redis built from another topic (or partition count) is
// rebuilt whole. It also notes how far behind each partition is, for
// readiness, and which partitions are rebuilt, for quiet.
func (p *Processor) startAtCheckpoints(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, partitions := range assigned {
		if err := p.startTopic(ctx, topic, partitions); err != nil {
			return nil, err
		}
	}
	return assigned, nil
}

// startTopic sets the start offset of each assigned partition of topic.
func (p *Processor) startTopic(ctx context.Context, topic string, partitions map[int32]kgo.Offset) error {
	var (
		cp     redisstore.Checkpoint
		layout kadm.TopicDetail
		ends   kadm.ListedOffsets
		err    error
		b      backoff
	)
	for {
		if err = p.take(ctx, topic, partitions); err == nil {
			cp, err = p.cfg.Store.Checkpoint(ctx, topic)
		}
		if err == nil {
			layout, ends, err = p.describe(ctx, topic, partitions)
		}
		if err == nil {
			break
		}
		p.log.Warn("reading checkpoints and topic failed; retrying", "topic", topic, "backoff", b.delay(), "err", err)
		if !b.wait(ctx) {
			return err
		}
	}
	id, n := layout.ID.String(), len(layout.Partitions)
	if cp.TopicID != "" && (cp.TopicID != id || cp.Partitions != n) {
		p.log.Warn("redis holds state built from another topic or partition count; rebuilding it",
			"topic", topic, "redis_topic_id", cp.TopicID, "redis_partitions", cp.Partitions, "topic_id", id, "partitions", n)
		if err := p.cfg.Store.Forget(ctx, topic); err != nil {
			return err
		}
		if err := p.take(ctx, topic, partitions); err != nil { // the tokens went with the checkpoints
			return err
		}
		cp = redisstore.Checkpoint{}
	}
	fresh := map[int32]int64{}
	for partition := range partitions {
		if _, ok := cp.Next[partition]; !ok && p.isAssigned(topic, partition) {
			end, _ := ends.Lookup(topic, partition)
			fresh[partition] = end.Offset
		}
	}
	if err := p.cfg.Store.Reset(ctx, topic, id, n, fresh); err != nil {
		return err
	}

	if topic == schemas.SessionsTopic {
		for partition := range partitions {
			_, reset := fresh[partition]
			told, pending := cp.Told[partition]
			if !pending {
				told = noneTold
			}
			p.own(partition, cp.Next[partition], reset, told)
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	// A new rebalance may have taken some of them meanwhile (the group
	// can balance again while this runs): those are not this processor's.
	for partition := range partitions {
		if _, ok := p.spans[topicPartition{topic, partition}]; !ok {
			delete(p.owners, topicPartition{topic, partition})
			if topic == schemas.SessionsTopic {
				delete(p.owned, partition)
			}
		}
	}
	p.counts[topic] = n
	if p.checkpoints[topic] == nil {
		p.checkpoints[topic] = map[int32]int64{}
	}
	behind := 0
	for partition := range partitions {
		if _, ok := p.spans[topicPartition{topic, partition}]; !ok {
			continue // taken by a rebalance since (see above)
		}
		next := cp.Next[partition] // 0 for a fresh partition
		start := next
		partitions[partition] = kgo.NewOffset().At(next).WithEpoch(-1)
		if topic == schemas.SessionsTopic {
			// Read from the beginning: what precedes the checkpoint
			// restores the users in memory (owned.go).
			start = 0
			partitions[partition] = kgo.NewOffset().AtStart()
		}
		p.checkpoints[topic][partition] = next
		tp := topicPartition{topic, partition}
		end, _ := ends.Lookup(topic, partition)
		p.spans[tp] = &span{from: start, end: end.Offset, next: start, moved: p.cfg.Now()}
		if end.Offset > next {
			behind++
		}
		// The history of a partition being rebuilt is applied quietly.
		target, rebuilding := fresh[partition]
		if !rebuilding {
			target, rebuilding = cp.Rebuild[partition]
		}
		if rebuilding {
			p.rebuilding[tp] = target
		}
	}
	p.log.Info("partitions assigned", "topic", topic, "partitions", listPartitions(map[string][]int32{topic: slices.Collect(maps.Keys(partitions))}),
		"rebuilt", len(fresh), "behind", behind)
	return nil
}

// describe returns the topic's id and partitions, and the end offsets of
// the given partitions.
func (p *Processor) describe(ctx context.Context, topic string, partitions map[int32]kgo.Offset) (kadm.TopicDetail, kadm.ListedOffsets, error) {
	adm := p.adm.Load()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return kadm.TopicDetail{}, nil, err
	}
	layout, ok := md.Topics[topic]
	if !ok || layout.Err != nil {
		return kadm.TopicDetail{}, nil, fmt.Errorf("describing topic %s: %w", topic, cmp.Or(layout.Err, errors.New("not found")))
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic) // read committed: the last stable offset
	if err != nil {
		return kadm.TopicDetail{}, nil, err
	}
	for partition := range partitions {
		if end, ok := ends.Lookup(topic, partition); !ok || end.Err != nil {
			return kadm.TopicDetail{}, nil, fmt.Errorf("end offset of %s/%d: %w", topic, partition, cmp.Or(end.Err, errors.New("not found")))
		}
	}
	return layout, ends, nil
}

// assigned counts new partitions as behind until startAtCheckpoints, which
// runs next, knows how far they are.
func (p *Processor) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for topic, partitions := range assigned {
		for _, partition := range partitions {
			p.spans[topicPartition{topic, partition}] = &span{end: math.MaxInt64}
		}
	}
	p.joined.Store(true)
}
