// Package records is how the Go services write the Presence topics with
// franz-go: where a record goes (Partitioner), how it is built from its key
// and Protobuf value (Encode, Tombstone), and how a write waits for Kafka
// (Produce). The gateway library, the query API and the processor share it,
// so that they cannot disagree on any of it.
package records

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
)

// Partitioner places records as schemas.Partition says: by the
// "<app>/<user>" of their key, so that every record about a user (a
// session's connect, a friend edge, a gateway_lost disconnect, a
// tombstone) lands in the partition of the user's other records.
func Partitioner() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return func(r *kgo.Record, n int) int { return schemas.Partition(r.Key, n) }
	})
}

// Encode returns the record of topic with key whose value is msg, stamped
// at (zero: when franz-go produces it). A nil msg makes a tombstone.
func Encode(topic, key string, msg proto.Message, at time.Time) (*kgo.Record, error) {
	if msg == nil {
		return Tombstone(topic, key, at), nil
	}
	value, err := proto.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encoding record %s: %w", key, err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Timestamp: at}, nil
}

// Tombstone returns the record of topic that removes key, stamped at
// (zero: when franz-go produces it).
func Tombstone(topic, key string, at time.Time) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(key), Timestamp: at}
}

// Produce produces recs with cl and waits until Kafka has acknowledged them
// all, or ctx ends. It returns how many failed and the first failure's
// error: all of them, with ctx's error, when ctx ended first.
//
// It does not wait for franz-go to fail the records of an ended context:
// franz-go does so only when it next looks at their partition, which, while
// brokers are unreachable, can be seconds later (at the next metadata
// refresh). Until then they count against the client's buffer
// (kgo.MaxBufferedRecords), and may still be written, but the caller has
// its answer. A record already sent to a broker that stops answering fails
// at all only with kgo.AllowIdempotentProduceCancellation.
func Produce(ctx context.Context, cl *kgo.Client, recs ...*kgo.Record) (failed int, err error) {
	done := make(chan kgo.ProduceResults, 1)
	go func() { done <- cl.ProduceSync(ctx, recs...) }()
	var results kgo.ProduceResults
	select {
	case results = <-done:
	case <-ctx.Done():
		select {
		case results = <-done:
		default:
			return len(recs), ctx.Err()
		}
	}
	for _, r := range results {
		if r.Err != nil {
			failed++
			err = cmp.Or(err, r.Err)
		}
	}
	return failed, err
}
