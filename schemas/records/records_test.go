package records_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
)

// The partitioner agrees with schemas.Partition on keys of every kind and
// partition counts, and puts a record where Kafka's own default partitioner
// puts a record keyed by the "<app>/<user>" prefix, so that a Java producer
// can do the same.
func TestPartitioner(t *testing.T) {
	ours := records.Partitioner().ForTopic(schemas.SessionsTopic)
	kafkas := kgo.StickyKeyPartitioner(nil).ForTopic(schemas.SessionsTopic)
	for i := range 1000 {
		app, user := "app", fmt.Sprintf("user-%d", i)
		keys := []string{
			schemas.SessionKey(app, user, fmt.Sprintf("session-%d", i%7)),
			schemas.FriendKey(app, user, "friend"),
			schemas.SubscriptionKey(app, user, "watcher"),
			schemas.CustomStatusKey(app, user),
			fmt.Sprintf("gw-%d", i), // a gateway id: its own partition key
		}
		for _, n := range []int{1, 3, 12, 64} {
			for _, key := range keys {
				if got, want := ours.Partition(&kgo.Record{Key: []byte(key)}, n), schemas.Partition([]byte(key), n); got != want {
					t.Fatalf("key %q, %d partitions: partition %d, schemas.Partition says %d", key, n, got, want)
				}
			}
		}
		key := []byte(keys[0])
		want := kafkas.Partition(&kgo.Record{Key: []byte(schemas.UserKey(app, user))}, 12)
		if got := ours.Partition(&kgo.Record{Key: key}, 12); got != want {
			t.Fatalf("key %q: partition %d, Kafka's default partitioner on the user key says %d", key, got, want)
		}
	}
}

// Encode builds the record from its topic, key and message; a nil message
// makes a tombstone.
func TestEncode(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	hb := &pb.GatewayHeartbeat{Gateway: "gw", Epoch: "e1", LeaseMs: 30_000, TimestampMs: at.UnixMilli()}
	r, err := records.Encode(schemas.GatewaysTopic, "gw", hb, at)
	if err != nil {
		t.Fatal(err)
	}
	var got pb.GatewayHeartbeat
	if err := proto.Unmarshal(r.Value, &got); err != nil {
		t.Fatal(err)
	}
	if r.Topic != schemas.GatewaysTopic || string(r.Key) != "gw" || !r.Timestamp.Equal(at) || !proto.Equal(&got, hb) {
		t.Errorf("record %s %q at %v holds %v; want %s %q at %v holding %v", r.Topic, r.Key, r.Timestamp, &got, schemas.GatewaysTopic, "gw", at, hb)
	}
	tomb, err := records.Encode(schemas.FriendsTopic, "app/a/b", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if tomb.Topic != schemas.FriendsTopic || string(tomb.Key) != "app/a/b" || tomb.Value != nil || !tomb.Timestamp.IsZero() {
		t.Errorf("tombstone %+v", tomb)
	}
	bad := &pb.SessionEvent{App: "\xff"} // proto3 strings must be UTF-8
	if _, err := records.Encode(schemas.SessionsTopic, "k", bad, at); err == nil {
		t.Error("a message proto.Marshal refuses was encoded")
	}
}

// newClient is a client of c, partitioning as records does, and failing
// records of an unknown topic at once; it is closed at the test's end.
func newClient(t *testing.T, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(records.Partitioner()), kgo.UnknownTopicRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(12, schemas.SessionsTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Produce returns nil once Kafka has acknowledged every record, each in
// its schemas.Partition.
func TestProduceAcknowledged(t *testing.T) {
	cl := newClient(t, newCluster(t))
	var recs []*kgo.Record
	for i := range 50 {
		recs = append(recs, records.Tombstone(schemas.SessionsTopic, schemas.SessionKey("app", fmt.Sprint("u", i), "s"), time.Time{}))
	}
	if failed, err := records.Produce(context.Background(), cl, recs...); failed != 0 || err != nil {
		t.Fatalf("Produce: %d failed: %v", failed, err)
	}
	for _, r := range recs {
		if want := int32(schemas.Partition(r.Key, 12)); r.Partition != want {
			t.Errorf("key %q written to partition %d, not %d", r.Key, r.Partition, want)
		}
	}
}

// Produce counts the records Kafka refused and returns the first's error.
func TestProduceRefused(t *testing.T) {
	cl := newClient(t, newCluster(t))
	failed, err := records.Produce(context.Background(), cl,
		records.Tombstone(schemas.SessionsTopic, "app/u1/s", time.Time{}),
		records.Tombstone("no.such.topic", "app/u2/s", time.Time{}),
		records.Tombstone(schemas.SessionsTopic, "app/u3/s", time.Time{}),
	)
	if failed != 1 || !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("Produce: %d failed: %v; want 1 failed: %v", failed, err, kerr.UnknownTopicOrPartition)
	}
}

// When its context ends while the broker holds the produce request
// unanswered, Produce returns at once with the context's error, all of the
// records failed, although franz-go cannot fail them yet (the client does
// not allow idempotent produce cancellation) and ProduceSync still waits.
func TestProduceReturnsWhenContextEnds(t *testing.T) {
	c := newCluster(t)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		once.Do(func() { close(held) })
		c.SleepControl(func() { <-release })
		return nil, nil, false // then answered as usual
	})
	cl := newClient(t, c)
	t.Cleanup(func() { close(release) }) // before the client and cluster close
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		failed int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		failed, err := records.Produce(ctx, cl, records.Tombstone(schemas.SessionsTopic, "app/u/s", time.Time{}),
			records.Tombstone(schemas.SessionsTopic, "app/u/t", time.Time{}))
		done <- result{failed, err}
	}()
	<-held
	cancel()
	select {
	case r := <-done:
		if r.failed != 2 || !errors.Is(r.err, context.Canceled) {
			t.Fatalf("Produce: %d failed: %v; want 2 failed: %v", r.failed, r.err, context.Canceled)
		}
	case <-time.After(time.Minute): // a watchdog, not a timing: it waits for the held request
		t.Fatal("Produce still waits for the request the broker holds")
	}
}
