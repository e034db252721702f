package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

const notifyPartitions = 12

// notifier writes notify records where the processor writes them.
type notifier struct {
	t  *testing.T
	cl *kgo.Client
}

func newNotifier(t *testing.T, c *kfake.Cluster) *notifier {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &notifier{t: t, cl: cl}
}

// send writes value under the key of gatewayID, in its partition.
func (n *notifier) send(gatewayID string, value []byte) {
	n.t.Helper()
	key := schemas.NotifyKey(gatewayID)
	r := &kgo.Record{Topic: schemas.NotifyTopic, Key: []byte(key), Value: value,
		Partition: int32(schemas.Partition([]byte(key), notifyPartitions))}
	if err := n.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		n.t.Fatal(err)
	}
}

func (n *notifier) notify(gatewayID string, version int64) {
	n.t.Helper()
	value, err := proto.Marshal(&pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat",
		Gateway: gatewayID, Subject: &pb.UserStatus{User: "bob", Version: version},
		Recipients: []*pb.Recipient{{User: "alice", Session: "s1"}}})
	if err != nil {
		n.t.Fatal(err)
	}
	n.send(gatewayID, value)
}

// neighbour returns a gateway id other than id whose notifications share
// its partition.
func neighbour(id string) string {
	want := schemas.Partition([]byte(schemas.NotifyKey(id)), notifyPartitions)
	for i := 0; ; i++ {
		other := fmt.Sprintf("other-%d", i)
		if schemas.Partition([]byte(schemas.NotifyKey(other)), notifyPartitions) == want {
			return other
		}
	}
}

// reader runs Notifications until the test ends.
type reader struct {
	got         chan *pb.Notification
	reading     chan int32
	undecodable chan int64
	readErrors  chan error
	done        chan error
}

func startReader(t *testing.T, p *gateway.Publisher) *reader {
	t.Helper()
	r := &reader{
		got:         make(chan *pb.Notification, 100),
		reading:     make(chan int32, 1),
		undecodable: make(chan int64, 10),
		readErrors:  make(chan error, 100),
		done:        make(chan error, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		r.done <- p.Notifications(ctx, func(n *pb.Notification) { r.got <- n },
			gateway.OnReading(func(partition int32, _ int64) { r.reading <- partition }),
			gateway.OnUndecodable(func(offset int64, _ error) { r.undecodable <- offset }),
			gateway.OnReadError(func(err error) {
				select {
				case r.readErrors <- err:
				default:
				}
			}))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Notifications returned %v when its context ended", err)
		}
	})
	return r
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}

func TestNotificationsReadOwnKeyFromTheEnd(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(notifyPartitions, schemas.NotifyTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := newPublisher(t, c)
	n := newNotifier(t, c)
	n.notify("gw-1", 1) // before the reader: history, never delivered

	r := startReader(t, p)
	partition := receive(t, r.reading, "start")
	if want := int32(schemas.Partition([]byte(schemas.NotifyKey("gw-1")), notifyPartitions)); partition != want {
		t.Fatalf("reading partition %d, want %d", partition, want)
	}
	n.notify(neighbour("gw-1"), 2)
	n.send("gw-1", []byte{0xff, 0xff, 0xff}) // not a Notification
	n.notify("gw-1", 3)
	n.notify("gw-1", 4)

	for _, want := range []int64{3, 4} {
		got := receive(t, r.got, "notification")
		if got.GetSubject().GetVersion() != want || got.GetGateway() != "gw-1" {
			t.Fatalf("got notification %v, want version %d of gw-1", got, want)
		}
	}
	receive(t, r.undecodable, "undecodable record")
	select {
	case extra := <-r.got:
		t.Fatalf("an extra notification was delivered: %v", extra)
	default:
	}
}

func TestNotificationsWaitForTheTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := newPublisher(t, c)
	r := startReader(t, p)
	if err := receive(t, r.readErrors, "error while the topic is missing"); err == nil {
		t.Fatal("nil error")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), notifyPartitions, 1, nil, schemas.NotifyTopic); err != nil {
		t.Fatal(err)
	}
	receive(t, r.reading, "start after the topic was created")
	newNotifier(t, c).notify("gw-1", 7)
	if got := receive(t, r.got, "notification"); got.GetSubject().GetVersion() != 7 {
		t.Fatalf("got %v", got)
	}
}

func TestNotificationsStopWhileWaiting(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := newPublisher(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	waiting := make(chan struct{}, 1)
	go func() {
		errc <- p.Notifications(ctx, func(*pb.Notification) { t.Error("a notification from a missing topic") },
			gateway.OnReadError(func(error) {
				select {
				case waiting <- struct{}{}:
				default:
				}
			}))
	}()
	receive(t, waiting, "error while the topic is missing")
	cancel()
	if err := receive(t, errc, "return after cancel"); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Notifications returned %v", err)
	}
}

func TestKeepLease(t *testing.T) {
	c := newCluster(t)
	p := newPublisher(t, c, gateway.Epoch("boot-2"), gateway.Lease(300*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// A failed heartbeat is retried at the next tick; what counts is that
	// they keep coming.
	go func() { done <- p.KeepLease(ctx, nil) }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(schemas.GatewaysTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	seen := 0
	for seen < 3 {
		fetches := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("%d heartbeats within 10s, want 3", seen)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var hb pb.GatewayHeartbeat
			if err := proto.Unmarshal(r.Value, &hb); err != nil || hb.Gateway != "gw-1" || hb.Epoch != "boot-2" || hb.LeaseMs != 300 {
				t.Errorf("heartbeat %v (%v)", &hb, err)
			}
			seen++
		})
	}
	cancel()
	if err := receive(t, done, "KeepLease to return"); err != nil {
		t.Fatalf("KeepLease returned %v", err)
	}
}
