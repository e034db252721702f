package queryapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
)

// opsAnswer is GET /v1/ops as a client reads it.
type opsAnswer struct {
	Partitions []struct {
		Topic         string
		Partition     int32
		Checkpoint    *int64
		End           *int64
		Lag           *int64
		Rebuilding    bool
		RebuildTarget *int64 `json:"rebuild_target"`
		Processor     string
	}
	Gateways []struct {
		Gateway, Epoch     string
		Heartbeat, Expires time.Time
		LeaseMS            int64 `json:"lease_ms"`
		Expired            bool
	}
	GatewaysTruncated bool `json:"gateways_truncated"`
	Transitions       []struct{ At, Online, Offline int64 }
}

// produce writes recs to the harness's Kafka, each in the partition it
// names.
func (h *harness) produce(recs ...*kgo.Record) {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.kafka.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// produceInTransaction writes recs in one committed transaction, as a
// gateway writes its heartbeats: the partitions end with its marker.
func (h *harness) produceInTransaction(recs ...*kgo.Record) {
	h.t.Helper()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.kafka.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID("ops-test"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		h.t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		h.t.Fatal(err)
	}
}

// heartbeat is a record of presence.gateways, in the partition of its key.
func heartbeat(t *testing.T, gateway, epoch string, at time.Time, lease time.Duration) *kgo.Record {
	t.Helper()
	r, err := records.Encode(schemas.GatewaysTopic, gateway, &pb.GatewayHeartbeat{Gateway: gateway, Epoch: epoch,
		LeaseMs: lease.Milliseconds(), TimestampMs: at.UnixMilli()}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	r.Partition = int32(schemas.Partition(r.Key, partitions))
	return r
}

func (h *harness) ops() opsAnswer {
	h.t.Helper()
	code, body := h.do("GET", "/v1/ops", "")
	var a opsAnswer
	if err := json.Unmarshal(body, &a); code != http.StatusOK || err != nil {
		h.t.Fatalf("GET /v1/ops: %d %s (%v)", code, body, err)
	}
	return a
}

// TestOpsGatewaysAndPartitions: a gateway's latest heartbeat shows with
// its lease (read to the end of a partition that ends with a
// transaction's marker, without truncating), expired or not as the server's clock says; a gateway whose
// record is a tombstone, or whose record does not decode or names another
// gateway, is left out. A built partition shows its checkpoint, the
// topic's end and the lag; a partition being rebuilt its target; a topic
// never built has no checkpoints.
func TestOpsGatewaysAndPartitions(t *testing.T) {
	h := newHarness(t)
	h.built()
	lease := 30 * time.Second
	liar := heartbeat(t, "gw-liar", "e1", now, lease)
	liar.Key = []byte("gw-other")
	liar.Partition = int32(schemas.Partition(liar.Key, partitions))
	gone := records.Tombstone(schemas.GatewaysTopic, "gw-gone", time.Time{})
	gone.Partition = int32(schemas.Partition(gone.Key, partitions))
	garbage := heartbeat(t, "gw-garbage", "e1", now, lease)
	garbage.Value = []byte{0xff, 0xff}
	h.produce(heartbeat(t, "gw-a", "e1", now.Add(-time.Hour), lease),
		heartbeat(t, "gw-b", "e1", now.Add(-time.Minute), lease), heartbeat(t, "gw-gone", "e1", now, lease), gone, liar, garbage)
	h.produceInTransaction(heartbeat(t, "gw-a", "e2", now.Add(-time.Second), lease))
	sessions := make([]*kgo.Record, 4)
	for i := range sessions {
		sessions[i] = &kgo.Record{Topic: schemas.SessionsTopic, Partition: 2, Key: []byte("k"), Value: []byte("v")}
	}
	h.produce(sessions...)
	if err := h.store.Reset(context.Background(), schemas.FriendsTopic, schemas.FriendsTopic+"-id", partitions, map[int32]int64{3: 7}); err != nil {
		t.Fatal(err)
	}

	a := h.ops()
	if len(a.Gateways) != 2 || a.GatewaysTruncated {
		t.Fatalf("gateways %+v (truncated %v), want gw-a and gw-b", a.Gateways, a.GatewaysTruncated)
	}
	g := a.Gateways[0]
	if g.Gateway != "gw-a" || g.Epoch != "e2" || !g.Heartbeat.Equal(now.Add(-time.Second).Truncate(time.Millisecond)) ||
		g.LeaseMS != 30000 || !g.Expires.Equal(g.Heartbeat.Add(lease)) || g.Expired {
		t.Errorf("gw-a: %+v, want epoch e2, its latest heartbeat, a 30 s lease not expired", g)
	}
	if g := a.Gateways[1]; g.Gateway != "gw-b" || !g.Expired {
		t.Errorf("gw-b: %+v, want its lease expired", g)
	}
	if len(a.Partitions) != 3*partitions {
		t.Fatalf("%d partitions, want %d", len(a.Partitions), 3*partitions)
	}
	for _, p := range a.Partitions {
		switch {
		case p.Topic == schemas.SessionsTopic && p.Partition == 2:
			if p.Checkpoint == nil || *p.Checkpoint != 0 || p.End == nil || *p.End != 4 || p.Lag == nil || *p.Lag != 4 || p.Rebuilding {
				t.Errorf("sessions/2: %+v, want checkpoint 0, end 4, lag 4", p)
			}
		case p.Topic == schemas.FriendsTopic && p.Partition == 3:
			if !p.Rebuilding || p.RebuildTarget == nil || *p.RebuildTarget != 7 || p.Checkpoint == nil || *p.Checkpoint != 0 {
				t.Errorf("friends/3: %+v, want rebuilding from 0 to 7", p)
			}
		default:
			if p.Checkpoint == nil || *p.Checkpoint != 0 || p.Lag == nil || *p.Lag != 0 || p.Rebuilding {
				t.Errorf("%s/%d: %+v, want built, no lag", p.Topic, p.Partition, p)
			}
		}
	}

	unbuilt := newHarness(t).ops()
	for _, p := range unbuilt.Partitions {
		if p.Checkpoint != nil || p.Lag != nil || p.End == nil {
			t.Errorf("never built: %s/%d %+v, want no checkpoint nor lag, an end", p.Topic, p.Partition, p)
		}
	}
	if len(unbuilt.Gateways) != 0 {
		t.Errorf("no heartbeat: gateways %+v", unbuilt.Gateways)
	}
}

// TestOpsTransitions: users coming online and going offline, as
// presence.changes says, are counted in the second of their records; a
// change that leaves a user online counts nothing; the answer holds the
// last 60 seconds.
func TestOpsTransitions(t *testing.T) {
	h := newHarness(t)
	at := time.Now().Add(-5 * time.Second).Truncate(time.Second)
	change := func(user string, online bool) *kgo.Record {
		st := &pb.UserStatus{User: user, Online: online}
		if online {
			st.Sessions = []*pb.Session{{Session: "s-" + user, Device: &pb.Device{Type: "web"}, Gateway: "gw", ConnectedAtMs: at.UnixMilli()}}
		}
		r, err := records.Encode(schemas.ChangesTopic, schemas.UserKey("chat", user), &pb.StatusChange{App: "chat", Status: st, TimestampMs: at.UnixMilli()}, at)
		if err != nil {
			t.Fatal(err)
		}
		r.Partition = int32(schemas.Partition(r.Key, partitions))
		return r
	}
	h.produce(change("u1", true), change("u1", true), change("u2", true), change("u1", false), change("u3", false))
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := h.ops()
		if len(a.Transitions) != 60 {
			t.Fatalf("%d seconds of transitions, want 60", len(a.Transitions))
		}
		var got struct{ At, Online, Offline int64 }
		for _, s := range a.Transitions {
			if s.At == at.Unix() {
				got = s
			} else if s.Online != 0 || s.Offline != 0 {
				t.Fatalf("second %d: %+v, want nothing", s.At, s)
			}
		}
		if got.Online == 2 && got.Offline == 2 {
			return
		}
		if got.Online > 2 || got.Offline > 2 || time.Now().After(deadline) {
			t.Fatalf("second %d: %+v, want 2 online (u1, u2) and 2 offline (u1, u3)", at.Unix(), got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOpsBounds: a read of presence.gateways stops at
// queryapi.OpsMaxRecords records and says the list is partial; a method
// other than GET is 405 and changes nothing.
func TestOpsBounds(t *testing.T) {
	h := newHarness(t)
	recs := make([]*kgo.Record, queryapi.OpsMaxRecords+1)
	for i := range recs {
		recs[i] = heartbeat(t, fmt.Sprintf("gw-%d", i), "e1", now, time.Minute)
		recs[i].Partition = 0 // one partition, read in order: the last is past the bound
	}
	h.produce(recs...)
	a := h.ops()
	if !a.GatewaysTruncated || len(a.Gateways) != queryapi.OpsMaxRecords {
		t.Errorf("%d gateways, truncated %v; want %d and truncated", len(a.Gateways), a.GatewaysTruncated, queryapi.OpsMaxRecords)
	}
	for _, method := range []string{"POST", "PUT", "DELETE"} {
		code, body := h.do(method, "/v1/ops", "{}")
		wantError(t, code, body, http.StatusMethodNotAllowed, "method_not_allowed")
	}
}

// TestOpsWithoutTopics: before the processor has created the topics (a
// first start, or a state built from topics deleted since), the view
// answers with no gateways and the checkpoints without ends, not an error.
func TestOpsWithoutTopics(t *testing.T) {
	h := newHarness(t)
	h.built()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deleted, err := kadm.NewClient(cl).DeleteTopics(context.Background(), append([]string{schemas.GatewaysTopic}, schemas.StateTopics...)...)
	if err == nil {
		err = deleted.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	a := h.ops()
	if len(a.Gateways) != 0 || a.GatewaysTruncated {
		t.Errorf("gateways %+v (truncated %v), want none", a.Gateways, a.GatewaysTruncated)
	}
	if len(a.Partitions) != 3*partitions {
		t.Errorf("%d partitions, want the %d of the checkpoints", len(a.Partitions), 3*partitions)
	}
	for _, p := range a.Partitions {
		if p.End != nil || p.Lag != nil || p.Checkpoint == nil {
			t.Errorf("%s/%d: %+v, want its checkpoint, no end nor lag", p.Topic, p.Partition, p)
		}
	}
}

// Each partition names the member of the processors' consumer group that
// holds it: here one member, of client id proc-1, holds presence.sessions
// whole, and nobody holds the other state topics.
func TestOpsProcessors(t *testing.T) {
	h := newHarness(t)
	h.built()
	assigned := make(chan struct{}, 1)
	member, err := kgo.NewClient(kgo.SeedBrokers(h.kafka.ListenAddrs()...), kgo.ClientID("proc-1"),
		kgo.ConsumerGroup(queryapi.DefaultProcessorGroup), kgo.ConsumeTopics(schemas.SessionsTopic),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			select {
			case assigned <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			member.PollFetches(ctx)
		}
	}()
	select {
	case <-assigned:
	case <-ctx.Done():
		t.Fatal("the member was never assigned presence.sessions")
	}
	for _, p := range h.ops().Partitions {
		held := strings.HasPrefix(p.Processor, "proc-1 (")
		if p.Topic == schemas.SessionsTopic && !held || p.Topic != schemas.SessionsTopic && p.Processor != "" {
			t.Errorf("%s/%d is held by %q", p.Topic, p.Partition, p.Processor)
		}
	}
}
