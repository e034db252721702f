package main

// Fault tests of the real processor binary: killed with SIGKILL at random
// points of a long stream, or left without Redis for a while, it must end
// with Redis holding exactly what the records say. A test supervises the
// binary as a service manager would, starting it again whenever it exits,
// and compares Redis, read through redisstore, with a model computed from
// the records produced.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// A point of a chunk of records at which the test kills the processor.
type killPoint int

const (
	noKill       killPoint = iota
	midChunk               // between two parts of the chunk's records
	midApply               // once Redis holds a record of the chunk
	afterProduce           // once the chunk is in Kafka
	whenIdle               // once Redis holds every record
)

var killPointNames = map[killPoint]string{midChunk: "mid-chunk", midApply: "mid-apply", afterProduce: "after produce", whenIdle: "when idle"}

// The processor killed with SIGKILL at random points of a long stream, and
// started again each time, leaves Redis holding exactly what the records
// say: every session, custom status, last seen, friend and subscription.
func TestKilledProcessorLosesNothing(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	cl := newKafka(t)
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	store := openStore(t, url, prefix)
	gen := newStream(rng)
	produce(t, cl, gen.heartbeats())
	p := supervise(t, buildProcessor(t), cl, url, prefix)

	var sizes []int
	for total := 0; total < 6000; total += sizes[len(sizes)-1] {
		sizes = append(sizes, 150+rng.IntN(400))
	}
	// Five kills at distinct random chunks, at every kind of point.
	kills := make([]killPoint, len(sizes))
	points := []killPoint{midChunk, midApply, afterProduce, whenIdle, killPoint(1 + rng.IntN(4))}
	for i, chunk := range rng.Perm(len(sizes))[:len(points)] {
		kills[chunk] = points[i]
	}
	var produced []*kgo.Record
	for i, n := range sizes {
		recs := gen.next(n)
		switch kills[i] {
		case midChunk:
			split := 1 + rng.IntN(n-1)
			produce(t, cl, recs[:split])
			p.kill(t)
			produce(t, cl, recs[split:])
		case midApply:
			produce(t, cl, recs)
			user, version := firstConnect(recs)
			waitFor(t, "the processor to apply a record of the chunk", func() error {
				st, err := store.Status(context.Background(), app, user)
				if err == nil && (st == nil || st.Version < version) {
					err = fmt.Errorf("%s is at %+v, not yet at version %d", user, st, version)
				}
				return err
			})
			p.kill(t)
		case afterProduce:
			produce(t, cl, recs)
			p.kill(t)
		case whenIdle:
			produce(t, cl, recs)
			waitApplied(t, cl, store)
			p.kill(t)
		default:
			produce(t, cl, recs)
		}

		produced = append(produced, recs...)
		if kills[i] != noKill {
			t.Logf("killed the processor %s of chunk %d of %d; checkpoints at %d of %d records",
				killPointNames[kills[i]], i+1, len(sizes), appliedSum(t, store), len(produced))
		}
	}

	waitApplied(t, cl, store)
	requireModel(t, store, gen.users, model(produced))
	p.waitReady(t)
	p.requireCleanStop(t)
}

// Redis killed with SIGKILL in the middle of a stream, and started again
// after more records arrived, loses nothing: with an append-only file it
// keeps its state, without persistence it comes back empty and the
// processor rebuilds it from the topics. While Redis is down, the
// processor says it is not ready.
func TestRedisRestartLosesNothing(t *testing.T) {
	bin := buildProcessor(t)
	for _, tc := range []struct {
		name       string
		appendOnly bool
		seed       uint64
	}{
		{"append-only", true, 21},
		{"no persistence", false, 22},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.NewServer(t, redistest.Options{AppendOnly: tc.appendOnly})
			cl := newKafka(t)
			prefix := redistest.Prefix(t)
			store := openStore(t, srv.URL(), prefix)
			gen := newStream(rand.New(rand.NewPCG(tc.seed, tc.seed)))
			produce(t, cl, gen.heartbeats())
			p := supervise(t, bin, cl, srv.URL(), prefix)

			var produced []*kgo.Record
			stream := func(chunks, size int) {
				for range chunks {
					recs := gen.next(size)
					produce(t, cl, recs)
					produced = append(produced, recs...)
				}
			}
			// Redis holds the first records, then dies while the processor
			// applies the next.
			stream(3, 400)
			waitApplied(t, cl, store)
			p.waitReady(t)
			stream(1, 400)
			srv.Kill()
			p.waitNotReady(t)
			stream(3, 300)
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			stream(2, 300)

			waitApplied(t, cl, store)
			requireModel(t, store, gen.users, model(produced))
			p.waitReady(t)
			p.requireCleanStop(t)
		})
	}
}

const (
	partitions = 4
	app        = "app"
)

// newKafka starts an in-process Kafka with the Presence topics, and
// returns a client that partitions records as the producers of Presence
// do.
func newKafka(t *testing.T) *kgo.Client {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.RecordPartitioner(records.Partitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := processor.EnsureTopics(context.Background(), cl, partitions); err != nil {
		t.Fatal(err)
	}
	return cl
}

func openStore(t *testing.T, url, prefix string) *redisstore.Store {
	t.Helper()
	store, err := redisstore.Open(context.Background(), url, redisstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// produce writes recs to Kafka, which sets their partitions and offsets.
func produce(t *testing.T, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

// firstConnect returns the user and offset of the first connect in recs.
func firstConnect(recs []*kgo.Record) (string, int64) {
	for _, r := range recs {
		var ev pb.SessionEvent
		if r.Topic == schemas.SessionsTopic && r.Value != nil {
			mustUnmarshal(r.Value, &ev)
			if ev.Type == pb.EventType_EVENT_TYPE_CONNECT {
				return ev.User, r.Offset
			}
		}
	}
	panic("no connect in the chunk")
}

// waitFor polls cond until it returns nil, at most 30 seconds.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s: %v", what, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// appliedSum is the sum of the checkpoints of the state topics in Redis:
// it grows as the processor applies records.
func appliedSum(t *testing.T, store *redisstore.Store) int64 {
	t.Helper()
	var sum int64
	for _, topic := range schemas.StateTopics {
		cp, err := store.Checkpoint(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, next := range cp.Next {
			sum += next
		}
	}
	return sum
}

// waitApplied waits until the checkpoints in Redis reach the end of every
// partition of the state topics: Redis holds every record produced.
func waitApplied(t *testing.T, cl *kgo.Client, store *redisstore.Store) {
	t.Helper()
	ctx := context.Background()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, schemas.StateTopics...)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redis to hold every record", func() error {
		var behind []string
		for _, topic := range schemas.StateTopics {
			cp, err := store.Checkpoint(ctx, topic)
			if err != nil {
				return err
			}
			for _, end := range ends[topic] {
				if end.Offset > 0 && cp.Next[end.Partition] < end.Offset {
					behind = append(behind, fmt.Sprintf("%s/%d at %d of %d", topic, end.Partition, cp.Next[end.Partition], end.Offset))
				}
			}
		}
		if len(behind) > 0 {
			return fmt.Errorf("checkpoints behind: %s", strings.Join(behind, ", "))
		}
		return nil
	})
}
