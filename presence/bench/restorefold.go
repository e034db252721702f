package bench

// The restore scenario's topic side: the users of every partition folded
// from the records of presence.sessions, read by a plain consumer.

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// foldTopic reads every partition of presence.sessions from its beginning
// up to its end in ends with a plain franz-go consumer (no group), and
// folds each record quietly into the state of its partition in parts, as
// a processor restores a partition from its records. done counts the
// users that gained a first record.
func foldTopic(ctx context.Context, k *kafka, ends map[int32]int64, parts []*state.Partition, done *atomic.Int64) error {
	from := map[int32]kgo.Offset{}
	left := 0
	for p, end := range ends {
		if end > 0 {
			from[p] = kgo.NewOffset().AtStart()
			left++
		}
	}
	if left == 0 {
		return nil
	}
	cl, err := k.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.SessionsTopic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, stallLimit)
	defer cancel()
	for left > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading %s: %d partitions not read to their end: %w", schemas.SessionsTopic, left, err)
		}
		if err := fetches.Err(); err != nil {
			return fmt.Errorf("polling %s: %w", schemas.SessionsTopic, err)
		}
		var bad error
		fetches.EachPartition(func(f kgo.FetchTopicPartition) {
			part := parts[f.Partition]
			for _, r := range f.Records {
				c, ok, err := decodeSession(r)
				if err != nil {
					bad = err
					return
				}
				if ok {
					before := part.Len()
					part.Apply(c, true)
					done.Add(int64(part.Len() - before))
				}
				if r.Offset+1 == ends[f.Partition] {
					left--
				}
			}
			part.DropDirty() // Redis holds these already: nothing to write
		})
		if bad != nil {
			return bad
		}
	}
	return nil
}

// decodeSession returns the change a record of presence.sessions makes,
// decoded and checked as the processor does; ok is false for a record
// that makes none (a session's tombstone, a transaction's marker).
func decodeSession(r *kgo.Record) (c redisstore.Change, ok bool, err error) {
	if r.Attrs.IsControl() {
		return c, false, nil
	}
	c, ok, err = processor.DecodeSession(r, nil)
	if err != nil {
		err = fmt.Errorf("record %s/%d at %d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return c, ok, err
}
