package processor_test

import (
	"context"
	"errors"
	"fmt"
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
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
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

// A poison record (one that does not decode, or is invalid) goes to the
// dead-letter topic as it was, with the reason and where it came from; the
// records around it are applied.
func TestPoisonRecordsGoToDeadLetters(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	start(t, c, store, "g")

	good := produce(t, cl, connectEv("bob", "s1", t0))
	garbage := record(connectEv("bob", "s2", t0))
	garbage.Value = []byte("not protobuf \xff\xff")
	invalid := record(connectEv("bob", "s3", t0))
	invalid.Key = []byte(schemas.SessionKey("chat", "bob", "other")) // not its value's key
	produceRecords(t, cl, garbage, invalid)
	good = append(good, produce(t, cl, connectEv("bob", "s4", t0.Add(time.Second)))...)
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(good))

	dead := readAll(t, c, schemas.DeadLetterTopic, 2)
	for i, want := range []*kgo.Record{garbage, invalid} {
		got := dead[i]
		headers := map[string]string{}
		for _, h := range got.Headers {
			headers[h.Key] = string(h.Value)
		}
		source := fmt.Sprintf("%s/%d/%d", schemas.SessionsTopic, want.Partition, want.Offset)
		if string(got.Key) != string(want.Key) || string(got.Value) != string(want.Value) ||
			headers[schemas.DeadLetterSource] != source || headers[schemas.DeadLetterReason] == "" {
			t.Errorf("dead letter %d: key %q, source %q, reason %q; want key %q, source %q and a reason",
				i, got.Key, headers[schemas.DeadLetterSource], headers[schemas.DeadLetterReason], want.Key, source)
		}
	}
}

// readAll reads n records of topic from its beginning, in offset order
// within each partition.
func readAll(t *testing.T, c *kfake.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	reader, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fetches := reader.PollRecords(ctx, n-len(recs))
		if ctx.Err() != nil {
			t.Fatalf("read %d records of %s in 20s, want %d", len(recs), topic, n)
		}
		recs = append(recs, fetches.Records()...)
	}
	return recs
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
// the gap, finds its checkpoint gone, rejoins its group, deletes the
// debris and rebuilds from the topics: it ends equal to the model, and
// tells no one about the history it replayed.
func TestRedisLosesStateWhileRunning(t *testing.T) {
	c, cl, store := world(t, time.Second)
	produce(t, cl, on("gw-1", connectEv("ann", "a1", t0)))
	evs := produce(t, cl, churn(3, 100, 3, 1000)...)
	waitCaughtUp(t, cl, store)
	r := readNotifications(t, c, cl)

	redistest.Flush(t, redistest.URL(t)) // as a restart without persistence would
	evs = append(evs, produce(t, cl, churn(4, 100, 3, 1000)...)...)
	waitCaughtUp(t, cl, store)
	if st, _ := store.Status(context.Background(), "chat", "ann"); st == nil || st.State != redisstore.Online {
		t.Fatalf("ann after the rebuild: %+v, want online", st)
	}
	requireState(t, store, model(evs))
	requireOnline(t, model(evs), 1)
	// The first notifications after the flush are those of a new change.
	produceRecords(t, cl, customRecord("ann", 4, "after"))
	r.expect(t, "presence ann->gw-2 [bob/b1] online 4:after [android]", "presence ann->gw-3 [wes/w1] online 4:after [android]",
		"sync ann->gw-1 [ann/a1] online 4:after [android]")
}

// A Redis built from one topic is rebuilt from another topic it is
// pointed at (a recreated topic, or a new dev data dir on an old Redis),
// never mixed with it.
func TestRedisFromAnotherTopic(t *testing.T) {
	store := newStore(t)
	first, cl := newCluster(t)
	produce(t, cl, connectEv("alice", "s1", t0))
	p := start(t, first, store, "g")
	waitCaughtUp(t, cl, store)
	p.Stop(t)

	second, cl2 := newCluster(t) // same topic name, another topic id
	evs := produce(t, cl2, connectEv("bob", "s1", t0))
	start(t, second, store, "g")
	// The old checkpoints are at the new topic's ends too: wait for the
	// new topic's id.
	md, err := kadm.NewClient(cl2).Metadata(context.Background(), schemas.SessionsTopic)
	if err != nil {
		t.Fatal(err)
	}
	id := md.Topics[schemas.SessionsTopic].ID.String()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if cp, _ := store.Checkpoint(context.Background(), schemas.SessionsTopic); cp.TopicID == id {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis was not rebuilt from the second topic within 20s")
		}
	}
	waitCaughtUp(t, cl2, store)
	requireState(t, store, model(evs))
	if st, _ := store.Status(context.Background(), "chat", "alice"); st != nil {
		t.Fatalf("alice, of the first topic, after the rebuild: %+v", st)
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

// Records written in transactions: committed ones are applied, aborted
// ones are not, and a partition that ends in a commit marker is caught up
// (its checkpoint moves past the marker).
func TestTransactions(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	start(t, c, store, "g")
	txn, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("test-gateway"),
		kgo.RecordPartitioner(records.Partitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	write := func(commit kgo.TransactionEndTry, evs ...*pb.SessionEvent) []event {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		out := make([]event, len(evs))
		for i, ev := range evs {
			r := record(ev)
			if err := txn.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			out[i] = event{ev, r.Offset}
		}
		if err := txn.EndTransaction(context.Background(), commit); err != nil {
			t.Fatal(err)
		}
		return out
	}
	committed := write(kgo.TryCommit, connectEv("ann", "a1", t0), connectEv("bob", "b1", t0))
	write(kgo.TryAbort, connectEv("ghost", "g1", t0), disconnectEv("ann", "a1", t0.Add(time.Second)))
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(committed))
	if st, _ := store.Status(context.Background(), "chat", "ghost"); st != nil {
		t.Fatalf("a user of an aborted transaction: %+v", st)
	}
}

// Redis loses everything while no record arrives: the processor notices
// at its next sweep and rebuilds, rather than waiting for a record.
func TestRedisLosesStateWhileIdle(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	start(t, c, store, "g")
	evs := produce(t, cl, churn(5, 50, 2, 300)...)
	waitCaughtUp(t, cl, store)

	redistest.Flush(t, redistest.URL(t))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if pending, err := store.Rebuilding(context.Background()); err == nil && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis not rebuilt within 30s of losing its state, with no record arriving")
		}
	}
	requireState(t, store, model(evs))
}

// A processor that takes a partition may find users in Redis newer than
// the partition's checkpoint: its former owner wrote records after it,
// then stopped before moving it. The taker writes the users those records
// change whole until it has passed them, so nothing of the newer state
// stays (here ann's last seen, on ann online again).
func TestTakeoverReplacesUsersWrittenPastTheCheckpoint(t *testing.T) {
	ctx := context.Background()
	c, cl := newCluster(t)
	store := newStore(t)
	first := start(t, c, store, "")
	produce(t, cl, connectEv("ann", "a1", t0))
	waitCaughtUp(t, cl, store)
	first.Stop(t)

	// Two records the next processor reads in one fetch; Redis holds the
	// first as the former owner wrote it, the checkpoint not moved.
	evs := produce(t, cl, disconnectEv("ann", "a1", t0.Add(time.Second)), connectEv("ann", "a2", t0.Add(2*time.Second)))
	rec := record(evs[0].SessionEvent)
	rec.Offset, rec.Partition = evs[0].offset, int32(schemas.Partition(rec.Key, partitions))
	change, _, err := processor.DecodeSession(rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(ctx, []redisstore.Change{change}, false); err != nil {
		t.Fatal(err)
	}
	if st, _ := store.Status(ctx, "chat", "ann"); st == nil || st.LastSeen == nil {
		t.Fatalf("ann as the former owner left her: %+v; want offline, last seen", st)
	}

	start(t, c, store, "")
	waitCaughtUp(t, cl, store)
	st, err := store.Status(ctx, "chat", "ann")
	if err != nil || st == nil || st.State != redisstore.Online || len(st.Sessions) != 1 || st.LastSeen != nil {
		t.Fatalf("ann after the takeover: %+v, %v; want online on a2 alone, no last seen", st, err)
	}
}
