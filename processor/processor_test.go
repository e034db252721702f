package processor_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

func TestMultiDevice(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	start(t, c, store, "g")

	evs := produce(t, cl, connectEv("alice", "phone", t0), connectEv("alice", "laptop", t0.Add(time.Second)))
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(evs))
	if st, _ := store.Status(context.Background(), "chat", "alice"); st.State != redisstore.Online || len(st.Sessions) != 2 {
		t.Fatalf("alice after two connects: %+v", st)
	}

	evs = append(evs, produce(t, cl, disconnectEv("alice", "phone", t0.Add(2*time.Second)))...)
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(evs))
	if st, _ := store.Status(context.Background(), "chat", "alice"); st.State != redisstore.Online || len(st.Sessions) != 1 {
		t.Fatalf("alice after one disconnect: %+v", st)
	}

	evs = append(evs, produce(t, cl, disconnectEv("alice", "laptop", t0.Add(3*time.Second)))...)
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(evs))
	st, _ := store.Status(context.Background(), "chat", "alice")
	if st.State != redisstore.Offline || st.LastSeen == nil || !st.LastSeen.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("alice after both disconnects: %+v", st)
	}
}

// Invalid records are skipped; the records around them are applied.
func TestInvalidRecordsAreSkipped(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	start(t, c, store, "g")

	good := produce(t, cl, connectEv("bob", "s1", t0))
	bad := record(connectEv("bob", "s2", t0))
	bad.Value = []byte("not protobuf \xff\xff")
	if err := cl.ProduceSync(context.Background(), bad).FirstErr(); err != nil {
		t.Fatal(err)
	}
	good = append(good, produce(t, cl, connectEv("bob", "s3", t0.Add(time.Second)))...)
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(good))
}

// A processor stopped mid-stream and started again ends with the state of
// an uninterrupted run, and both equal the model of the records.
func TestRestartMidStream(t *testing.T) {
	c, cl := newCluster(t)
	evs := produce(t, cl, churn(1, 50, 3, 2000)...)

	interrupted := newStore(t)
	p := start(t, c, interrupted, "interrupted")
	deadline := time.Now().Add(60 * time.Second)
	for {
		cp, _ := interrupted.Checkpoint(context.Background(), schemas.SessionsTopic)
		if slices.ContainsFunc(slices.Collect(maps.Values(cp.Next)), func(o int64) bool { return o > 0 }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("processor applied nothing in 60s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Stop(t)
	evs = append(evs, produce(t, cl, churn(2, 50, 3, 2000)...)...)
	start(t, c, interrupted, "interrupted")
	waitCaughtUp(t, cl, interrupted)

	uninterrupted := newStore(t)
	start(t, c, uninterrupted, "uninterrupted")
	waitCaughtUp(t, cl, uninterrupted)

	want := model(evs)
	requireState(t, interrupted, want)
	requireState(t, uninterrupted, want)
}

// Replaying the compacted topic into an empty Redis rebuilds the state
// that existed before compaction, session for session.
func TestReplayAfterCompaction(t *testing.T) {
	c, cl := newCluster(t)
	var evs []event
	for i := range 20 { // many produce batches, so compaction has work
		evs = append(evs, produce(t, cl, churn(uint64(10+i), 200, 4, 500)...)...)
	}
	live := newStore(t)
	start(t, c, live, "live")
	waitCaughtUp(t, cl, live)
	want := model(evs)
	requireState(t, live, want)

	c.Compact()
	if n := countRecords(t, cl); n >= len(evs) {
		t.Fatalf("compaction removed nothing: %d records of %d", n, len(evs))
	} else {
		t.Logf("compaction kept %d of %d records", n, len(evs))
	}

	rebuilt := newStore(t)
	start(t, c, rebuilt, "rebuild")
	waitCaughtUp(t, cl, rebuilt)
	requireState(t, rebuilt, want)
	requireOnline(t, want, 1)
}

// requireOnline checks the model is not trivial: at least n users online,
// each with a session.
func requireOnline(t *testing.T, want map[string]*redisstore.Status, n int) {
	t.Helper()
	online, multi := 0, 0
	for _, st := range want {
		if st.State == redisstore.Online {
			online++
		}
		if len(st.Sessions) > 1 {
			multi++
		}
	}
	if online < n || multi == 0 {
		t.Fatalf("model has %d online users, %d with several devices: the test proves too little", online, multi)
	}
}

func TestEnsureTopics(t *testing.T) {
	_, cl := newCluster(t) // creates the topics
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	described, err := adm.DescribeTopicConfigs(ctx, schemas.SessionsTopic)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := described.On(schemas.SessionsTopic, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range policy.Configs {
		found = found || c.Key == "cleanup.policy" && c.MaybeValue() == "compact"
	}
	if !found {
		t.Fatalf("sessions topic created without cleanup.policy=compact: %+v", policy.Configs)
	}
	// A second call leaves the topics as they are.
	if err := processor.EnsureTopics(ctx, cl, partitions); err != nil {
		t.Fatal(err)
	}
}

// A sessions topic someone created without compaction is refused: its
// retention would delete live sessions.
func TestEnsureTopicsRefusesUncompactedTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, schemas.SessionsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = processor.EnsureTopics(context.Background(), cl, partitions)
	if !errors.Is(err, processor.ErrNotCompacted) || !strings.Contains(err.Error(), schemas.SessionsTopic) {
		t.Fatalf("got %v, want ErrNotCompacted naming %s", err, schemas.SessionsTopic)
	}
}

// Redis loses everything while the processor runs (a restart without
// persistence, a flush). The processor applies the next batch on top of
// the gap, finds its checkpoint gone, and stops; restarted, it deletes the
// debris, rebuilds from the topic, and ends equal to the model.
func TestRedisLosesStateWhileRunning(t *testing.T) {
	c, cl := newCluster(t)
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t)
	store := redisstore.New(rdb, redisstore.Options{Prefix: prefix})
	p := start(t, c, store, "g")
	evs := produce(t, cl, churn(3, 100, 3, 1000)...)
	waitCaughtUp(t, cl, store)

	deleteAll(t, rdb, prefix)
	evs = append(evs, produce(t, cl, churn(4, 100, 3, 1000)...)...)
	if err := p.Failed(t); !errors.Is(err, processor.ErrStateLost) {
		t.Fatalf("processor on a Redis that lost its state: %v, want ErrStateLost", err)
	}

	start(t, c, store, "g")
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(evs))
	requireOnline(t, model(evs), 1)
}

// A Redis built from one topic is not silently mixed with another topic's
// records (a recreated topic, or a new dev data dir on an old Redis).
func TestRedisFromAnotherTopic(t *testing.T) {
	store := newStore(t)
	first, cl := newCluster(t)
	produce(t, cl, connectEv("alice", "s1", t0))
	p := start(t, first, store, "g")
	waitCaughtUp(t, cl, store)
	p.Stop(t)

	second, _ := newCluster(t) // same topic name, another topic id
	err := start(t, second, store, "g").Failed(t)
	if !errors.Is(err, processor.ErrOtherTopic) {
		t.Fatalf("processor on another topic's state: %v, want ErrOtherTopic", err)
	}
}

// deleteAll deletes every key of prefix, as a flush would.
func deleteAll(t *testing.T, rdb *redis.Client, prefix string) {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 10 {
		t.Fatalf("only %d keys under %s: nothing to lose", len(keys), prefix)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
}
