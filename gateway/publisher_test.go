package gateway_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
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

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, schemas.SessionsTopic, schemas.GatewaysTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newPublisher(t *testing.T, c *kfake.Cluster, opts ...gateway.Opt) *gateway.Publisher {
	t.Helper()
	p, err := gateway.New(append([]gateway.Opt{gateway.Brokers(c.ListenAddrs()...), gateway.ID("gw-1")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// readAll reads every record of topic.
func readAll(t *testing.T, c *kfake.Cluster, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var recs []*kgo.Record
	for int64(len(recs)) < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(recs), total, ctx.Err())
		}
		recs = append(recs, fetches.Records()...)
	}
	return recs
}

func TestPublish(t *testing.T) {
	c := newCluster(t)
	at := time.UnixMilli(1_700_000_000_000)
	p := newPublisher(t, c, gateway.Epoch("boot-1"), gateway.Clock(func() time.Time { return at }))
	err := p.Publish(context.Background(),
		gateway.Event{Type: gateway.Connect, App: "chat", User: "alice", Session: "s1", Device: "ios", DeviceID: "imei"},
		gateway.Event{Type: gateway.Connect, App: "chat", User: "alice", Session: "s2", Device: "web"},
		gateway.Event{Type: gateway.Disconnect, App: "chat", User: "alice", Session: "s1", Reason: gateway.Timeout, At: at.Add(-time.Second)},
	)
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, c, schemas.SessionsTopic)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	partition := recs[0].Partition
	for i, r := range recs {
		var ev pb.SessionEvent
		if err := proto.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if r.Partition != partition {
			t.Errorf("record %d in partition %d, want every record of alice in %d", i, r.Partition, partition)
		}
		if string(r.Key) != schemas.SessionKey("chat", "alice", ev.Session) {
			t.Errorf("record %d key %q", i, r.Key)
		}
		wantAt := at
		if i == 2 {
			wantAt = at.Add(-time.Second) // the event's own time
		}
		if ev.Gateway != "gw-1" || ev.GatewayEpoch != "boot-1" || ev.TimestampMs != wantAt.UnixMilli() || ev.Sequence != uint64(i+1) {
			t.Errorf("record %d: %v", i, &ev)
		}
	}
	// Records of one user are in publish order within their partition.
	var last pb.SessionEvent
	if err := proto.Unmarshal(recs[2].Value, &last); err != nil {
		t.Fatal(err)
	}
	if last.Type != pb.EventType_EVENT_TYPE_DISCONNECT || last.Reason != pb.DisconnectReason_DISCONNECT_REASON_TIMEOUT {
		t.Errorf("last record: %v", &last)
	}
}

func TestPublishRejectsInvalidBatchWhole(t *testing.T) {
	c := newCluster(t)
	p := newPublisher(t, c)
	err := p.Publish(context.Background(),
		gateway.Event{Type: gateway.Connect, App: "chat", User: "alice", Session: "s1", Device: "ios"},
		gateway.Event{Type: gateway.Connect, App: "chat", User: "", Session: "s2", Device: "ios"},
	)
	if !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	// A valid record afterwards is the only one in the topic.
	if err := p.Publish(context.Background(), gateway.Event{Type: gateway.Disconnect, App: "chat", User: "bob", Session: "s9"}); err != nil {
		t.Fatal(err)
	}
	if recs := readAll(t, c, schemas.SessionsTopic); len(recs) != 1 || !strings.HasPrefix(string(recs[0].Key), "chat/bob/") {
		t.Fatalf("topic holds %d records, want only bob's", len(recs))
	}
}

func TestHeartbeat(t *testing.T) {
	c := newCluster(t)
	p := newPublisher(t, c, gateway.Epoch("boot-7"), gateway.Lease(10*time.Second))
	if err := p.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.HeartbeatFor(context.Background(), "external-1", "e-1"); err != nil {
		t.Fatal(err)
	}
	if err := p.HeartbeatFor(context.Background(), "", "e-1"); !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("heartbeat without gateway id: %v", err)
	}
	recs := readAll(t, c, schemas.GatewaysTopic)
	got := map[string]string{}
	for _, r := range recs {
		var hb pb.GatewayHeartbeat
		if err := proto.Unmarshal(r.Value, &hb); err != nil {
			t.Fatal(err)
		}
		if hb.LeaseMs != 10_000 || string(r.Key) != hb.Gateway {
			t.Errorf("heartbeat %v under key %q", &hb, r.Key)
		}
		got[hb.Gateway] = hb.Epoch
	}
	if len(got) != 2 || got["gw-1"] != "boot-7" || got["external-1"] != "e-1" {
		t.Fatalf("heartbeats: %v", got)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for name, opts := range map[string][]gateway.Opt{
		"no brokers":     {gateway.ID("gw")},
		"no id":          {gateway.Brokers("127.0.0.1:1")},
		"bad epoch":      {gateway.Brokers("127.0.0.1:1"), gateway.ID("gw"), gateway.Epoch("a\nb")},
		"negative lease": {gateway.Brokers("127.0.0.1:1"), gateway.ID("gw"), gateway.Lease(-time.Second)},
		"negative bound": {gateway.Brokers("127.0.0.1:1"), gateway.ID("gw"), gateway.MaxBuffered(-1)},
	} {
		if p, err := gateway.New(opts...); err == nil {
			p.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

// The library pulls in franz-go (with its compression codecs), protobuf and
// the schemas, nothing else.
func TestLibraryDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{
		"github.com/twmb/franz-go/", "github.com/klauspost/compress", "github.com/pierrec/lz4/",
		"google.golang.org/protobuf/", "github.com/presence-im/presence/schemas", "github.com/presence-im/presence/gateway",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 3 {
		t.Fatalf("go list found only %v", deps)
	}
	for _, d := range deps {
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(d, a)
		}
		if !ok {
			t.Errorf("the gateway library depends on %s", d)
		}
	}
}
