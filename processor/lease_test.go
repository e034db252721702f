package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

func heartbeat(t *testing.T, cl *kgo.Client, gateway, epoch string, lease time.Duration) {
	t.Helper()
	value, _ := proto.Marshal(&pb.GatewayHeartbeat{Gateway: gateway, Epoch: epoch, LeaseMs: lease.Milliseconds(), TimestampMs: time.Now().UnixMilli()})
	produceRecords(t, cl, &kgo.Record{Topic: schemas.GatewaysTopic, Key: []byte(gateway), Value: value})
}

// keepLease heartbeats for a gateway every lease/4 until the test ends.
func keepLease(t *testing.T, cl *kgo.Client, gateway, epoch string, lease time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			value, _ := proto.Marshal(&pb.GatewayHeartbeat{Gateway: gateway, Epoch: epoch, LeaseMs: lease.Milliseconds(), TimestampMs: time.Now().UnixMilli()})
			cl.ProduceSync(ctx, &kgo.Record{Topic: schemas.GatewaysTopic, Key: []byte(gateway), Value: value})
			select {
			case <-ctx.Done():
			case <-time.After(lease / 4):
			}
		}
	}()
}

func onEpoch(gateway, epoch string, ev *pb.SessionEvent) *pb.SessionEvent {
	ev = on(gateway, ev)
	ev.GatewayEpoch = epoch
	return ev
}

// lostDisconnects reads presence.sessions from its beginning and returns
// the sessions ("user/session") ended with reason gateway_lost.
func lostDisconnects(t *testing.T, cl *kgo.Client, want int) []string {
	t.Helper()
	var lost []string
	deadline := time.Now().Add(20 * time.Second)
	for len(lost) < want {
		if time.Now().After(deadline) {
			t.Fatalf("gateway_lost disconnects after 20s: %q, want %d", lost, want)
		}
		lost = lost[:0]
		for _, r := range readTopic(t, cl, schemas.SessionsTopic) {
			var ev pb.SessionEvent
			if proto.Unmarshal(r.Value, &ev) == nil && ev.Reason == pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_LOST {
				lost = append(lost, ev.User+"/"+ev.Session)
			}
		}
	}
	return lost
}

// A gateway killed without sending disconnects: once its lease lapses the
// processor ends its sessions with gateway_lost disconnects, and after the
// grace period their friends are told; the sessions of a gateway that
// keeps its lease are untouched.
func TestLostGatewaySessionsEnd(t *testing.T) {
	const lease, grace = time.Second, 500 * time.Millisecond
	c, cl := newCluster(t)
	store := newStore(t)
	startWith(t, c, processor.Config{Store: store, OfflineGrace: grace, GatewayLease: lease})
	produceRecords(t, cl, friendRecords("ann", "bob")...)
	keepLease(t, cl, "gw-b", "b1", lease)
	heartbeat(t, cl, "gw-a", "a1", lease)
	now := time.Now()
	produce(t, cl, onEpoch("gw-a", "a1", connectEv("ann", "a1", now)), onEpoch("gw-b", "b1", connectEv("bob", "b1", now)))
	waitCaughtUp(t, cl, store)
	r := readNotifications(t, c, cl)

	// gw-a dies: no heartbeat, no disconnect.
	killed := time.Now()
	r.expect(t, "presence ann->gw-b [bob/b1] offline - []")
	t.Logf("ann's ghost session lasted %s (lease %s + grace %s)", time.Since(killed).Round(time.Millisecond), lease, grace)
	if lost := lostDisconnects(t, cl, 1); len(lost) != 1 || lost[0] != "ann/a1" {
		t.Fatalf("gateway_lost disconnects: %q, want ann/a1 only", lost)
	}
	if st, _ := store.Status(context.Background(), "chat", "ann"); st == nil || st.State != redisstore.Offline {
		t.Fatalf("ann after gw-a was lost: %+v, want offline", st)
	}
	if st, _ := store.Status(context.Background(), "chat", "bob"); st == nil || st.State != redisstore.Online {
		t.Fatalf("bob on gw-b, which keeps its lease: %+v, want online", st)
	}
	// gw-a, gone with nothing left, has its heartbeat tombstoned: the
	// topic keeps only gateways alive.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		tombstoned := map[string]bool{}
		for _, r := range readTopic(t, cl, schemas.GatewaysTopic) {
			tombstoned[string(r.Key)] = r.Value == nil
		}
		if tombstoned["gw-a"] && !tombstoned["gw-b"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeats tombstoned after 20s: %v, want gw-a's only", tombstoned)
		}
	}
}

// A gateway that comes back with a new epoch: the sessions of its old
// epoch end at once, those of the new one stay.
func TestGatewayNewEpoch(t *testing.T) {
	const lease = time.Hour // no lease lapses in this test
	c, cl := newCluster(t)
	store := newStore(t)
	startWith(t, c, processor.Config{Store: store, OfflineGrace: 100 * time.Millisecond, GatewayLease: lease})
	heartbeat(t, cl, "gw-b", "b1", lease)
	produce(t, cl, onEpoch("gw-b", "b1", connectEv("bob", "b1", time.Now())), onEpoch("gw-b", "b1", connectEv("cid", "c1", time.Now())))
	waitCaughtUp(t, cl, store)

	// gw-b restarts: cid reconnects on the new epoch, before and after
	// its first heartbeat.
	produce(t, cl, onEpoch("gw-b", "b2", connectEv("cid", "c2", time.Now())))
	heartbeat(t, cl, "gw-b", "b2", lease)
	produce(t, cl, onEpoch("gw-b", "b2", connectEv("dan", "d1", time.Now())))
	lost := lostDisconnects(t, cl, 2)
	waitCaughtUp(t, cl, store)
	if len(lost) != 2 || lost[0] == lost[1] || (lost[0] != "bob/b1" && lost[0] != "cid/c1") || (lost[1] != "bob/b1" && lost[1] != "cid/c1") {
		t.Fatalf("gateway_lost disconnects: %q, want bob/b1 and cid/c1", lost)
	}
	for user, want := range map[string][]string{"bob": nil, "cid": {"c2"}, "dan": {"d1"}} {
		st, _ := store.Status(context.Background(), "chat", user)
		var got []string
		for _, s := range st.Sessions {
			got = append(got, s.Session)
		}
		if len(got) != len(want) || (len(want) == 1 && got[0] != want[0]) {
			t.Errorf("%s's sessions after gw-b's new epoch: %q, want %q", user, got, want)
		}
	}
}

// A processor that cannot read for longer than a lease (here Redis stalls
// it) does not take the heartbeats it missed for silence: the sessions of
// a gateway that kept its lease all along stay.
func TestStalledProcessorKeepsLiveGateways(t *testing.T) {
	const lease = time.Second
	c, cl := newCluster(t)
	store := newStore(t)
	startWith(t, c, processor.Config{Store: store, OfflineGrace: 100 * time.Millisecond, GatewayLease: lease})
	keepLease(t, cl, "gw-b", "b1", lease)
	produce(t, cl, onEpoch("gw-b", "b1", connectEv("bob", "b1", time.Now())), onEpoch("gw-b", "b1", connectEv("cid", "c1", time.Now())))
	waitCaughtUp(t, cl, store)

	// Every Redis client waits 3 leases; a record makes the processor
	// block on it.
	rdb := redistest.Client(t)
	if err := rdb.Do(context.Background(), "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, onEpoch("gw-b", "b1", connectEv("dan", "d1", time.Now())))
	waitCaughtUp(t, cl, store) // after the pause
	// Give the processor a few sweeps with the heartbeats it has now read.
	for range 3 {
		produce(t, cl, onEpoch("gw-b", "b1", connectEv("dan", "d1", time.Now())))
		waitCaughtUp(t, cl, store)
		time.Sleep(lease / 2)
	}
	for _, user := range []string{"bob", "cid"} {
		if st, _ := store.Status(context.Background(), "chat", user); st == nil || st.State != redisstore.Online {
			t.Errorf("%s on gw-b, which kept its lease while the processor was stalled: %+v, want online", user, st)
		}
	}
	for _, r := range readTopic(t, cl, schemas.SessionsTopic) {
		var ev pb.SessionEvent
		if proto.Unmarshal(r.Value, &ev) == nil && ev.Reason == pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_LOST {
			t.Errorf("gateway_lost disconnect of %s/%s written", ev.User, ev.Session)
		}
	}
}

// A client that reconnects with its session id to its restarted gateway
// before the old epoch's gateway_lost disconnect is applied keeps its
// session: the disconnect applies only to the epoch it names, and its
// connect is written again, so the session survives compaction and
// replay too.
func TestReconnectBeforeGatewayLost(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	startWith(t, c, processor.Config{Store: store, OfflineGrace: 100 * time.Millisecond})
	// Once the processor has applied a first record, what follows is
	// live, not the history of a rebuild (applied quietly, written
	// again by nobody).
	at := time.Now()
	produce(t, cl, connectEv("ann", "a1", at))
	waitCaughtUp(t, cl, store)
	produce(t, cl, onEpoch("gw-b", "b1", connectEv("bob", "b1", at)), onEpoch("gw-b", "b2", connectEv("bob", "b1", at.Add(time.Second))))
	lost := disconnectEv("bob", "b1", at.Add(2*time.Second))
	lost.Gateway, lost.GatewayEpoch, lost.Reason = "gw-b", "b1", pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_LOST
	produce(t, cl, lost)
	waitCaughtUp(t, cl, store)

	// The connect written again is applied too.
	var last *pb.SessionEvent
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var recs []*kgo.Record
		for _, r := range readTopic(t, cl, schemas.SessionsTopic) {
			if strings.HasPrefix(string(r.Key), "chat/bob/") {
				recs = append(recs, r)
			}
		}
		last = &pb.SessionEvent{}
		if err := proto.Unmarshal(recs[len(recs)-1].Value, last); err != nil {
			t.Fatal(err)
		}
		if len(recs) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records of bob in presence.sessions after 20s, want the connect written again as the 4th", len(recs))
		}
	}
	if last.Type != pb.EventType_EVENT_TYPE_CONNECT || last.GatewayEpoch != "b2" {
		t.Fatalf("last record: %v, want bob's connect on epoch b2", last)
	}
	waitCaughtUp(t, cl, store)
	if st, _ := store.Status(context.Background(), "chat", "bob"); st == nil || len(st.Sessions) != 1 {
		t.Fatalf("bob after a gateway_lost disconnect of his old epoch: %+v, want online on b2", st)
	}

	// Compacted and replayed, he is online still.
	c.Compact()
	rebuilt := newStore(t)
	startWith(t, c, processor.Config{Store: rebuilt, Group: "rebuild", Quiet: true})
	waitCaughtUp(t, cl, rebuilt)
	if st, _ := rebuilt.Status(context.Background(), "chat", "bob"); st == nil || len(st.Sessions) != 1 {
		t.Fatalf("bob replayed from the compacted topic: %+v, want online", st)
	}
}
