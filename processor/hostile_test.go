package processor_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// The size of the record that stopped the processor for good in issue 12.
const hugeRecordBytes = 1_040_033

// metricValue returns the sum of the samples of a metric in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// userOn returns a user, named after prefix, whose records are in
// partition partition (of the test topics) when in is true, and in
// another one when in is false.
func userOn(prefix string, partition int, in bool) string {
	for i := 0; ; i++ {
		user := fmt.Sprintf("%s-%d", prefix, i)
		if (schemas.Partition([]byte(schemas.UserKey("chat", user)), partitions) == partition) == in {
			return user
		}
	}
}

func partitionOf(user string) int {
	return schemas.Partition([]byte(schemas.UserKey("chat", user)), partitions)
}

// manualClient produces records to the partition they say, up to 2 MB.
func manualClient(t *testing.T, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(2<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// requireOnlineWith checks that user is online with exactly the given
// sessions.
func requireOnlineWith(t *testing.T, store *redisstore.Store, user string, sessions ...string) {
	t.Helper()
	st, err := store.Status(context.Background(), "chat", user)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if st != nil {
		for _, s := range st.Sessions {
			got = append(got, s.Session)
		}
	}
	slices.Sort(got)
	slices.Sort(sessions)
	if st == nil || st.State != redisstore.Online || !slices.Equal(got, sessions) {
		t.Fatalf("%s: %+v, want online with sessions %q", user, st, sessions)
	}
}

// deadLetterCount returns how many records presence.deadletter holds.
func deadLetterCount(t *testing.T, cl *kgo.Client) int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), schemas.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += max(o.Offset, 0) })
	return n
}

// A record that cannot be applied, whose dead letter cannot be written
// either (the dead-letter topic refuses it, or is gone), is counted and
// skipped: the records after it, in its partition and in others, are
// applied. A dead letter of a huge record is a bounded copy.
func TestDeadLetterNeverStalls(t *testing.T) {
	huge := func(key string) *kgo.Record {
		return &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(key), Value: []byte(strings.Repeat("x", hugeRecordBytes-len(key)))}
	}
	garbage := func(key string) *kgo.Record {
		return &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(key), Value: []byte("not protobuf \xff\xff")}
	}
	for _, tc := range []struct {
		name string
		// breakTopic makes presence.deadletter fail, if set.
		breakTopic func(t *testing.T, adm *kadm.Client)
		bad        func(key string) *kgo.Record
		failed     float64 // dead letters that could not be written
	}{
		{name: "huge record, its copy written truncated", bad: huge},
		{
			name: "huge record, dead-letter topic refuses even the copy", bad: huge, failed: 1,
			breakTopic: func(t *testing.T, adm *kadm.Client) {
				resps, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{
					{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("1000")}}, schemas.DeadLetterTopic)
				if err == nil {
					_, err = resps.On(schemas.DeadLetterTopic, nil)
				}
				if err != nil {
					t.Fatalf("setting max.message.bytes of the dead-letter topic: %v", err)
				}
			},
		},
		{
			name: "garbage, dead-letter topic deleted", bad: garbage, failed: 1,
			breakTopic: func(t *testing.T, adm *kadm.Client) {
				resps, err := adm.DeleteTopics(context.Background(), schemas.DeadLetterTopic)
				if err == nil {
					err = resps.Error()
				}
				if err != nil {
					t.Fatalf("deleting the dead-letter topic: %v", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cl := newCluster(t)
			store := newStore(t)
			reg := prometheus.NewRegistry()
			startWith(t, c, processor.Config{Store: store, Registerer: reg})
			produce(t, cl, connectEv("bob", "s1", t0))
			waitCaughtUp(t, cl, store)
			if tc.breakTopic != nil {
				tc.breakTopic(t, kadm.NewClient(cl))
			}

			bad := tc.bad(schemas.SessionKey("chat", "bob", "s-bad"))
			bad.Partition = int32(partitionOf("bob"))
			produceRecords(t, manualClient(t, c), bad)
			other := userOn("ann", partitionOf("bob"), false)
			produce(t, cl, connectEv("bob", "s2", t0.Add(time.Second)), connectEv(other, "a1", t0.Add(time.Second)))
			waitCaughtUp(t, cl, store)
			requireOnlineWith(t, store, "bob", "s1", "s2")
			requireOnlineWith(t, store, other, "a1")
			if got := metricValue(t, reg, "presence_processor_dead_letters_failed_total"); got != tc.failed {
				t.Errorf("dead letters failed: %v, want %v", got, tc.failed)
			}
			if got := metricValue(t, reg, "presence_processor_records_total"); got < 4 {
				t.Errorf("records counted: %v, want the 3 good ones applied and the bad one invalid", got)
			}
			if tc.failed > 0 {
				if tc.breakTopic != nil && strings.Contains(tc.name, "refuses") && deadLetterCount(t, cl) != 0 {
					t.Errorf("the dead-letter topic holds %d records, want none", deadLetterCount(t, cl))
				}
				return
			}
			dl := readAll(t, c, schemas.DeadLetterTopic, 1)[0]
			headers := map[string]string{}
			for _, h := range dl.Headers {
				headers[h.Key] = string(h.Value)
			}
			if len(dl.Value) >= len(bad.Value) || len(dl.Value) > 64<<10 || string(dl.Value) != string(bad.Value[:len(dl.Value)]) {
				t.Errorf("dead letter of a %d-byte record: %d bytes, want a prefix of at most 64 KiB", len(bad.Value), len(dl.Value))
			}
			if want := strconv.Itoa(len(bad.Key) + len(bad.Value)); headers[schemas.DeadLetterTruncated] != want {
				t.Errorf("header %s = %q, want %q", schemas.DeadLetterTruncated, headers[schemas.DeadLetterTruncated], want)
			}
			if !strings.Contains(headers[schemas.DeadLetterReason], "too large") {
				t.Errorf("reason %q, want too large", headers[schemas.DeadLetterReason])
			}
			if want := fmt.Sprintf("%s/%d/%d", schemas.SessionsTopic, bad.Partition, bad.Offset); headers[schemas.DeadLetterSource] != want {
				t.Errorf("source %q, want %q", headers[schemas.DeadLetterSource], want)
			}
		})
	}
}

// A record in a partition its key does not belong to is a dead letter: its
// user's records in the right partition, at lower offsets, are applied as
// if it were not there (it once froze the user: they counted as
// duplicates of its offset).
func TestWrongPartitionRecord(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	start(t, c, store, "g")
	wrong := (partitionOf("bob") + 1) % partitions
	pad := userOn("pad", wrong, true)
	evs := produce(t, cl, connectEv(pad, "p1", t0), connectEv(pad, "p2", t0), connectEv(pad, "p3", t0))
	evil := record(connectEv("bob", "evil", t0))
	evil.Partition = int32(wrong)
	produceRecords(t, manualClient(t, c), evil)
	evs = append(evs, produce(t, cl, connectEv("bob", "s1", t0.Add(time.Second)))...)
	evs = append(evs, produce(t, cl, connectEv("bob", "s2", t0.Add(2*time.Second)))...)
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(evs))
	requireOnlineWith(t, store, "bob", "s1", "s2")

	dl := readAll(t, c, schemas.DeadLetterTopic, 1)[0]
	if string(dl.Key) != string(evil.Key) || string(dl.Value) != string(evil.Value) {
		t.Errorf("dead letter %q, want the record in the wrong partition", dl.Key)
	}
	for _, h := range dl.Headers {
		if h.Key == schemas.DeadLetterReason && !strings.Contains(string(h.Value), "wrong partition") {
			t.Errorf("reason %q, want the wrong partition", h.Value)
		}
	}
}

// A tombstone under a key that is not in canonical form ("chat/p%q/r" for
// the friendship "chat/p%25q/r") removes nothing, wherever it lands; live
// state and a replay into an empty Redis agree. Canonical tombstones
// still remove.
func TestNonCanonicalTombstone(t *testing.T) {
	c, cl := newCluster(t)
	live := newStore(t)
	start(t, c, live, "live")
	produceRecords(t, cl, friendRecords("p%q", "r")...)
	produceRecords(t, cl, friendRecords("x", "y")...)
	waitCaughtUp(t, cl, live)

	canonical := schemas.FriendKey("chat", "p%q", "r")
	if canonical == "chat/p%q/r" {
		t.Fatalf("FriendKey does not escape %%: %q", canonical)
	}
	byKey := &kgo.Record{Topic: schemas.FriendsTopic, Key: []byte("chat/p%q/r")} // where a producer puts it
	inPlace := &kgo.Record{Topic: schemas.FriendsTopic, Key: []byte("chat/p%q/r"),
		Partition: int32(schemas.Partition([]byte(canonical), partitions))} // beside the friendship
	produceRecords(t, cl, byKey)
	produceRecords(t, manualClient(t, c), inPlace)
	produceRecords(t, cl, &kgo.Record{Topic: schemas.FriendsTopic, Key: []byte(schemas.FriendKey("chat", "x", "y"))},
		&kgo.Record{Topic: schemas.FriendsTopic, Key: []byte(schemas.FriendKey("chat", "y", "x"))})
	produceRecords(t, cl, friendRecords("p%q", "s")...)
	waitCaughtUp(t, cl, live)

	want := map[string][]string{"p%q": {"r", "s"}, "r": {"p%q"}, "s": {"p%q"}, "x": nil, "y": nil}
	requireFriends(t, live, want)
	if n := len(readAll(t, c, schemas.DeadLetterTopic, 2)); n != 2 {
		t.Errorf("dead letters: %d, want the 2 tombstones", n)
	}

	replayed := newStore(t)
	startWith(t, c, processor.Config{Store: replayed, Group: "replay", Quiet: true})
	waitCaughtUp(t, cl, replayed)
	requireFriends(t, replayed, want)
}

func requireFriends(t *testing.T, store *redisstore.Store, want map[string][]string) {
	t.Helper()
	for user, friends := range want {
		got, err := store.Friends(context.Background(), "chat", user)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, friends) && (len(got) > 0 || len(friends) > 0) {
			t.Errorf("friends of %s: %q, want %q", user, got, friends)
		}
	}
}

// A connect stamped in the year 9999 is taken as connected now: on a
// gateway that never heartbeats, it ends a lease later like any other.
func TestFutureConnectIsClamped(t *testing.T) {
	const lease = time.Second
	c, cl := newCluster(t)
	store := newStore(t)
	reg := prometheus.NewRegistry()
	startWith(t, c, processor.Config{Store: store, GatewayLease: lease, Registerer: reg})
	before := time.Now()
	produce(t, cl, connectEv("bob", "s1", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)))
	if lost := lostDisconnects(t, cl, 1); len(lost) != 1 || lost[0] != "bob/s1" {
		t.Fatalf("gateway_lost disconnects: %q, want bob/s1", lost)
	}
	waitCaughtUp(t, cl, store)
	st, err := store.Status(context.Background(), "chat", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if st == nil || st.State != redisstore.Offline || st.LastSeen == nil || st.LastSeen.Year() > before.Year()+1 {
		t.Fatalf("bob a lease after a connect stamped 9999: %+v, want offline, last seen about now", st)
	}
	if got := metricValue(t, reg, "presence_processor_clamped_total"); got < 1 {
		t.Errorf("clamped: %v, want at least 1", got)
	}
}

// A heartbeat asking for a lease of a day (a valid one, far above the
// cap) gets the longest allowed: its gateway's sessions outlive the
// default lease but end the cap after it went silent. A gateway that
// keeps heartbeating keeps its sessions.
func TestHugeLeaseIsCapped(t *testing.T) {
	const lease, maxLease = 500 * time.Millisecond, 3 * time.Second
	c, cl := newCluster(t)
	store := newStore(t)
	reg := prometheus.NewRegistry()
	startWith(t, c, processor.Config{Store: store, GatewayLease: lease, Registerer: reg,
		Limits: processor.Limits{MaxGatewayLease: maxLease}})
	keepLease(t, cl, "gw-b", "b1", lease)
	sent := time.Now()
	value, _ := proto.Marshal(&pb.GatewayHeartbeat{Gateway: "gw-h", Epoch: "h1", LeaseMs: (24 * time.Hour).Milliseconds(), TimestampMs: sent.UnixMilli()})
	produceRecords(t, cl, &kgo.Record{Topic: schemas.GatewaysTopic, Key: []byte("gw-h"), Value: value})
	produce(t, cl, onEpoch("gw-h", "h1", connectEv("ann", "a1", sent)), onEpoch("gw-b", "b1", connectEv("bob", "b1", sent)))
	if lost := lostDisconnects(t, cl, 1); len(lost) != 1 || lost[0] != "ann/a1" {
		t.Fatalf("gateway_lost disconnects: %q, want ann/a1 only", lost)
	}
	// Ended by the cap, not by the default lease nor the day asked for.
	if took := time.Since(sent); took < maxLease {
		t.Errorf("ann's session ended %s after the heartbeat, before the %s cap: the lease asked was not taken", took, maxLease)
	}
	if got := metricValue(t, reg, "presence_processor_clamped_total"); got < 1 {
		t.Errorf("clamped: %v, want the lease counted", got)
	}
	waitCaughtUp(t, cl, store)
	requireOnlineWith(t, store, "bob", "b1")
	if st, _ := store.Status(context.Background(), "chat", "ann"); st == nil || st.State != redisstore.Offline {
		t.Fatalf("ann on the silent gateway with a capped lease: %+v, want offline", st)
	}
}

// A partition with records that makes no progress (Redis is down) fails
// readiness once the stall timeout has passed, and counts in
// presence_processor_stalled_partitions; both recover when Redis is back.
func TestStallFailsReadiness(t *testing.T) {
	srv := redistest.NewServer(t, redistest.Options{AppendOnly: true})
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	store := redisstore.New(rdb, redisstore.Options{Prefix: redistest.Prefix(t)})
	c, cl := newCluster(t)
	reg := prometheus.NewRegistry()
	r := startWith(t, c, processor.Config{Store: store, Registerer: reg, Limits: processor.Limits{StallTimeout: 300 * time.Millisecond}})
	produce(t, cl, connectEv("bob", "s1", t0))
	waitCaughtUp(t, cl, store)
	waitReady(t, r.p, func(err error) bool { return err == nil }, "ready")

	srv.Kill()
	produce(t, cl, connectEv("bob", "s2", t0.Add(time.Second)))
	stalled := fmt.Sprintf("%s/%d (1 records waiting", schemas.SessionsTopic, partitionOf("bob"))
	waitReady(t, r.p, func(err error) bool { return err != nil && strings.Contains(err.Error(), stalled) }, "stalled on "+stalled)
	if got := metricValue(t, reg, "presence_processor_stalled_partitions"); got != 1 {
		t.Errorf("stalled partitions: %v, want 1", got)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, r.p, func(err error) bool { return err == nil }, "ready again")
	requireOnlineWith(t, store, "bob", "s1", "s2")
	if got := metricValue(t, reg, "presence_processor_stalled_partitions"); got != 0 {
		t.Errorf("stalled partitions after recovery: %v, want 0", got)
	}
}

// waitReady waits, at most 60 seconds, until the processor's readiness
// error satisfies ok.
func waitReady(t *testing.T, p *processor.Processor, ok func(error) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := p.Ready(context.Background())
		if ok(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processor not %s after 60s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A huge record already in the topic when the processor starts (a restart
// after it was written) is skipped like a live one: the processor becomes
// ready, and a replay into an empty Redis builds the same state.
func TestHugeRecordInHistory(t *testing.T) {
	c, cl := newCluster(t)
	resps, err := kadm.NewClient(cl).AlterTopicConfigs(context.Background(), []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("1000")}}, schemas.DeadLetterTopic)
	if err == nil {
		_, err = resps.On(schemas.DeadLetterTopic, nil)
	}
	if err != nil {
		t.Fatalf("setting max.message.bytes of the dead-letter topic: %v", err)
	}
	evs := produce(t, cl, connectEv("bob", "s1", t0))
	key := schemas.SessionKey("chat", "bob", "s-bad")
	produceRecords(t, manualClient(t, c), &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(key),
		Partition: int32(partitionOf("bob")), Value: []byte(strings.Repeat("x", hugeRecordBytes-len(key)))})
	evs = append(evs, produce(t, cl, connectEv("bob", "s2", t0.Add(time.Second)), disconnectEv("bob", "s1", t0.Add(2*time.Second)))...)

	live := newStore(t)
	reg := prometheus.NewRegistry()
	r := startWith(t, c, processor.Config{Store: live, Registerer: reg})
	waitReady(t, r.p, func(err error) bool { return err == nil }, "ready")
	requireState(t, live, model(evs))
	if got := metricValue(t, reg, "presence_processor_dead_letters_failed_total"); got != 1 {
		t.Errorf("dead letters failed: %v, want 1", got)
	}

	replayed := newStore(t)
	startWith(t, c, processor.Config{Store: replayed, Group: "replay", Quiet: true})
	waitCaughtUp(t, cl, replayed)
	requireState(t, replayed, model(evs))
}

// A subscription record asking to last until 9999 lasts
// schemas.MaxSubscriptionTTL from its time, as one the query API writes;
// one within it keeps its expiry.
func TestSubscriptionExpiryIsCapped(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	startWith(t, c, processor.Config{Store: store})
	forever := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	soon := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	before := time.Now()
	produceRecords(t, cl, subscriptionRecord("alice", "mallory", forever), subscriptionRecord("bob", "mallory", soon))
	waitCaughtUp(t, cl, store)
	after := time.Now()
	watching, err := store.Watching(context.Background(), "chat", "mallory", after)
	if err != nil {
		t.Fatal(err)
	}
	if got, latest := watching["alice"], after.Add(schemas.MaxSubscriptionTTL); got.Before(before.Add(schemas.MaxSubscriptionTTL).Add(-time.Second)) || got.After(latest) {
		t.Errorf("a subscription asking for 9999 expires at %s, want %s after its time (by %s)", got, schemas.MaxSubscriptionTTL, latest)
	}
	if got := watching["bob"]; !got.Equal(soon) {
		t.Errorf("a subscription of an hour expires at %s, want %s", got, soon)
	}
}

// A record refused under the canonical key of a live session, custom
// status, friendship or subscription, in its own partition, will be the
// only record of that key once compaction runs, and a replay refuses it:
// the live processor takes it as the end of what the key held, so that
// the state it keeps is the state a replay of the compacted topics builds.
func TestRefusedRecordEndsItsKey(t *testing.T) {
	c, cl := newCluster(t)
	live := newStore(t)
	start(t, c, live, "live")
	now := time.Now()
	produce(t, cl, connectEv("alice", "s1", now), connectEv("alice", "s2", now), connectEv("bob", "b1", now))
	produceRecords(t, cl, customRecord("frank", 1, "here"), subscriptionRecord("bob", "mallory", now.Add(time.Hour)))
	produceRecords(t, cl, append(friendRecords("carol", "dave"), friendRecords("carol", "erin")...)...)
	waitCaughtUp(t, cl, live)

	garbage := []byte("\xff\xff not a record")
	large := make([]byte, processor.DefaultMaxRecordBytes+1)
	produceRecords(t, cl,
		&kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(schemas.SessionKey("chat", "alice", "s1")), Value: garbage},
		&kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(schemas.CustomStatusKey("chat", "frank")), Value: large},
		&kgo.Record{Topic: schemas.FriendsTopic, Key: []byte(schemas.FriendKey("chat", "carol", "dave")), Value: garbage},
		&kgo.Record{Topic: schemas.SubscriptionsTopic, Key: []byte(schemas.SubscriptionKey("chat", "bob", "mallory")), Value: garbage})
	produce(t, cl, connectEv("bob", "b2", now)) // the partitions go on
	waitCaughtUp(t, cl, live)

	users := []string{"alice", "bob", "frank"}
	state := func(store *redisstore.Store) string {
		t.Helper()
		ctx := context.Background()
		statuses, err := store.Statuses(ctx, "chat", users)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for i, st := range statuses {
			fmt.Fprintf(&out, "%s: %+v\n", users[i], st)
		}
		for _, u := range []string{"carol", "dave", "erin"} {
			friends, err := store.Friends(ctx, "chat", u)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(friends)
			fmt.Fprintf(&out, "friends of %s: %q\n", u, friends)
		}
		watching, err := store.Watching(ctx, "chat", "mallory", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "mallory watches %d\n", len(watching))
		return out.String()
	}
	got := state(live)
	for _, want := range []string{"alice: &{", "friends of carol: [\"erin\"]", "friends of dave: [\"carol\"]", "mallory watches 0"} {
		if !strings.Contains(got, want) {
			t.Errorf("live state lacks %q:\n%s", want, got)
		}
	}
	if st, _ := live.Status(context.Background(), "chat", "alice"); st == nil || len(st.Sessions) != 1 || st.Sessions[0].Session != "s2" {
		t.Errorf("alice after a refused record under s1's key: %+v, want s2 alone", st)
	}
	if st, _ := live.Status(context.Background(), "chat", "frank"); st != nil && st.Custom != nil {
		t.Errorf("frank after a refused record under his custom status's key: %+v, want no custom status", st)
	}
	if st, _ := live.Status(context.Background(), "chat", "bob"); st == nil || len(st.Sessions) != 2 {
		t.Errorf("bob: %+v, want b1 and b2", st)
	}

	c.Compact()
	s1 := 0
	for _, r := range readTopic(t, cl, schemas.SessionsTopic) {
		if string(r.Key) == schemas.SessionKey("chat", "alice", "s1") {
			s1++
		}
	}
	if s1 != 1 {
		t.Fatalf("after compaction %d records of alice's s1, want the refused one alone", s1)
	}
	rebuilt := newStore(t)
	start(t, c, rebuilt, "rebuild")
	waitCaughtUp(t, cl, rebuilt)
	if replayed := state(rebuilt); replayed != got {
		t.Errorf("replayed after compaction:\n%s\nlive:\n%s", replayed, got)
	}
}

// A privacy record is applied under its own key only: one under another
// user's privacy key, or under the custom status's key, is a dead letter
// that changes nobody's privacy; an undecodable record under a live
// privacy key is a dead letter and ends the setting, as compaction,
// which keeps only that record, makes a replay do.
func TestHostilePrivacyRecords(t *testing.T) {
	c, cl := newCluster(t)
	live := newStore(t)
	start(t, c, live, "live")
	privacy := func(key, user string) *kgo.Record {
		value, _ := proto.Marshal(&pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_PRIVACY, App: "chat", User: user,
			Privacy: &pb.Privacy{Invisible: true, LastSeen: pb.LastSeenRule_LAST_SEEN_RULE_NOBODY}, TimestampMs: time.Now().UnixMilli()})
		return &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(key), Value: value}
	}
	produce(t, cl, connectEv("alice", "s1", time.Now()), connectEv("bob", "b1", time.Now()))
	produceRecords(t, cl, privacy(schemas.PrivacyKey("chat", "alice"), "alice"))
	waitCaughtUp(t, cl, live)
	invisible := func(user string) bool {
		t.Helper()
		st, err := live.Status(context.Background(), "chat", user)
		if err != nil {
			t.Fatal(err)
		}
		return st != nil && st.Privacy != nil && st.Privacy.Invisible
	}
	if !invisible("alice") || invisible("bob") {
		t.Fatalf("alice invisible %v, bob %v; want alice only", invisible("alice"), invisible("bob"))
	}

	before := deadLetterCount(t, cl)
	produceRecords(t, cl,
		privacy(schemas.PrivacyKey("chat", "bob"), "alice"), // alice's value under bob's key
		privacy(schemas.CustomStatusKey("chat", "bob"), "bob"),
		&kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(schemas.PrivacyKey("chat", "alice")), Value: []byte("\xff\xff garbage")})
	produce(t, cl, connectEv("bob", "b2", time.Now())) // the partitions go on
	waitCaughtUp(t, cl, live)
	if n := deadLetterCount(t, cl) - before; n != 3 {
		t.Errorf("%d dead letters, want 3", n)
	}
	if invisible("alice") || invisible("bob") {
		t.Errorf("after the hostile records: alice invisible %v, bob %v; want neither", invisible("alice"), invisible("bob"))
	}
	requireOnlineWith(t, live, "bob", "b1", "b2")
}
