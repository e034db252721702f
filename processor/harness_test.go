package processor_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/schemas/status"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const partitions = 4

// newCluster starts an in-process Kafka with the Presence topics created
// as the processor creates them.
func newCluster(t *testing.T) (*kfake.Cluster, *kgo.Client) {
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
	return c, cl
}

func newStore(t *testing.T) *redisstore.Store {
	return redisstore.New(redistest.Client(t), redisstore.Options{Prefix: redistest.Prefix(t)})
}

// running is a processor started by start.
type running struct {
	p       *processor.Processor
	stop    func()
	done    chan error
	stopped sync.Once
}

func start(t *testing.T, c *kfake.Cluster, store *redisstore.Store, group string) *running {
	t.Helper()
	return startWith(t, c, processor.Config{Store: store, Group: group})
}

// startWith starts a processor configured by cfg, on cluster c.
func startWith(t *testing.T, c *kfake.Cluster, cfg processor.Config) *running {
	t.Helper()
	cfg.Brokers, cfg.Partitions = c.ListenAddrs(), partitions
	// Test gateways do not heartbeat unless a test is about leases.
	cfg.GatewayLease = cmp.Or(cfg.GatewayLease, 1000*time.Hour)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Stop stops the processor and waits for it, at most 30 seconds; it must
// end without error.
func (r *running) Stop(t *testing.T) {
	r.stopped.Do(func() {
		r.stop()
		if err := r.wait(t); err != nil {
			t.Errorf("processor: %v", err)
		}
	})
}

// Failed waits, at most 60 seconds, for the processor to stop by itself,
// and returns its error.
func (r *running) Failed(t *testing.T) error {
	t.Helper()
	var err error
	r.stopped.Do(func() { err = r.wait(t) })
	return err
}

func (r *running) wait(t *testing.T) error {
	select {
	case err := <-r.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("processor did not stop within 60s")
		return nil
	}
}

// event is one generated record with the offset Kafka gave it.
type event struct {
	*pb.SessionEvent
	offset int64
}

func record(ev *pb.SessionEvent) *kgo.Record {
	value, err := proto.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(schemas.SessionKey(ev.App, ev.User, ev.Session)), Value: value}
}

func produce(t *testing.T, cl *kgo.Client, evs ...*pb.SessionEvent) []event {
	t.Helper()
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		recs[i] = record(ev)
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	out := make([]event, len(evs))
	for i, r := range recs {
		out[i] = event{evs[i], r.Offset}
	}
	return out
}

var t0 = time.Now().Add(-time.Hour).Truncate(time.Millisecond)

func connectEv(user, session string, at time.Time) *pb.SessionEvent {
	return &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CONNECT, App: "chat", User: user, Session: session,
		Device: &pb.Device{Type: "android", Id: "dev-" + session}, Gateway: "gw-1", GatewayEpoch: "e1", TimestampMs: at.UnixMilli()}
}

func disconnectEv(user, session string, at time.Time) *pb.SessionEvent {
	return &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_DISCONNECT, App: "chat", User: user, Session: session,
		Gateway: "gw-1", GatewayEpoch: "e1", TimestampMs: at.UnixMilli(),
		Reason: pb.DisconnectReason_DISCONNECT_REASON_CLIENT_CLOSED}
}

// churn generates n connects and disconnects of users with several
// devices each, in a random but reproducible order.
func churn(seed uint64, users, devices, n int) []*pb.SessionEvent {
	rng := rand.New(rand.NewPCG(seed, seed))
	online := map[string]bool{}
	var evs []*pb.SessionEvent
	for i := range n {
		user := fmt.Sprintf("user-%d", rng.IntN(users))
		session := fmt.Sprintf("%s-dev-%d", user, rng.IntN(devices))
		at := t0.Add(time.Duration(i) * time.Millisecond)
		if online[session] {
			evs = append(evs, disconnectEv(user, session, at))
		} else {
			evs = append(evs, connectEv(user, session, at))
		}
		online[session] = !online[session]
	}
	return evs
}

// model computes from the records what Redis must hold.
func model(evs []event) map[string]*redisstore.Status {
	out := map[string]*redisstore.Status{}
	for _, ev := range evs {
		st := out[ev.User]
		if st == nil {
			st = &redisstore.Status{User: ev.User, Sessions: []redisstore.Session{}}
			out[ev.User] = st
		}
		st.Version = ev.offset
		at := time.UnixMilli(ev.TimestampMs).UTC()
		kept := st.Sessions[:0]
		for _, s := range st.Sessions {
			if s.Session != ev.Session {
				kept = append(kept, s)
			}
		}
		st.Sessions = kept
		if ev.Type == pb.EventType_EVENT_TYPE_CONNECT {
			st.Sessions = append(st.Sessions, redisstore.Session{Session: ev.Session, Device: ev.Device.Type,
				DeviceID: ev.Device.Id, Gateway: ev.Gateway, ConnectedAt: redisstore.Time{Time: at}, Activity: status.Active})
			st.LastSeen = nil
		} else if len(st.Sessions) == 0 {
			st.LastSeen = &redisstore.Time{Time: at} // the disconnect that left no session
		}
	}
	for _, st := range out {
		st.State = redisstore.Offline
		if len(st.Sessions) > 0 {
			st.State, st.Activity = redisstore.Online, status.Active
		}
		slices.SortFunc(st.Sessions, func(a, b redisstore.Session) int {
			return cmp.Or(a.ConnectedAt.Compare(b.ConnectedAt.Time), cmp.Compare(a.Session, b.Session))
		})
	}
	return out
}

// waitCaughtUp waits until the store's checkpoints reach the end of every
// partition of the state topics.
func waitCaughtUp(t *testing.T, cl *kgo.Client, store *redisstore.Store) {
	t.Helper()
	for _, topic := range schemas.StateTopics {
		waitTopicCaughtUp(t, cl, store, topic)
	}
}

func waitTopicCaughtUp(t *testing.T, cl *kgo.Client, store *redisstore.Store, topic string) {
	t.Helper()
	ctx := context.Background()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cp, err := store.Checkpoint(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		cps := cp.Next
		behind := 0
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 && cps[o.Partition] < o.Offset {
				behind++
			}
		})
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processor not caught up after 60s: checkpoints %v, ends %v", cps, ends)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireState compares the store with the expected statuses, user by user.
func requireState(t *testing.T, store *redisstore.Store, want map[string]*redisstore.Status) {
	t.Helper()
	users := make([]string, 0, len(want))
	for u := range want {
		users = append(users, u)
	}
	got, err := store.Statuses(context.Background(), "chat", users)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[u])
		if string(g) != string(w) {
			t.Errorf("user %s:\n got  %s\n want %s", u, g, w)
		}
	}
}

// countRecords reads the sessions topic from its beginning to its end and
// counts the records left in it.
func countRecords(t *testing.T, cl *kgo.Client) int {
	t.Helper()
	return len(readTopic(t, cl, schemas.SessionsTopic))
}

// readTopic reads topic from its beginning to its end.
func readTopic(t *testing.T, cl *kgo.Client, topic string) []*kgo.Record {
	t.Helper()
	ctx := context.Background()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			offsets[o.Partition] = kgo.NewOffset().AtStart()
			remaining[o.Partition] = o.Offset
		}
	})
	reader, err := kgo.NewClient(kgo.SeedBrokers(cl.OptValue(kgo.SeedBrokers).([]string)...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(remaining) > 0 {
		fetches := reader.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %v", topic, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			if r.Offset+1 >= remaining[r.Partition] {
				delete(remaining, r.Partition)
			}
		})
	}
	return recs
}
