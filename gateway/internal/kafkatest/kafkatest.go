// Package kafkatest helps the gateway's tests read what Kafka holds.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// SentinelKey marks the records ReadCommitted writes at the end of every
// partition to know it has read them all.
const SentinelKey = "sentinel"

// ReadCommitted reads every committed record of topic, as the processor
// does (isolation.level=read_committed). A consumer cannot tell from the
// records it gets whether it has read past the aborted ones at the end
// of a partition, so it first writes a sentinel record, outside any
// transaction, at the end of every partition, reads until it has met
// them all, and leaves them out.
func ReadCommitted(t testing.TB, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	var sentinels []*kgo.Record
	ends.Each(func(o kadm.ListedOffset) {
		sentinels = append(sentinels, &kgo.Record{Topic: topic, Partition: o.Partition, Key: []byte(SentinelKey)})
	})
	if err := cl.ProduceSync(ctx, sentinels...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for met := 0; met < len(sentinels); {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records and %d of %d sentinels of %s: %v", len(recs), met, len(sentinels), topic, ctx.Err())
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == SentinelKey {
				met++
			} else {
				recs = append(recs, r)
			}
		})
	}
	return recs
}
