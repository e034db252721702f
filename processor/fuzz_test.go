package processor

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// Fuzz tests of what the processor decodes from Kafka: records of the
// state topics and heartbeats, anyone with write access to the topics can
// write. `go test` runs their seeds; `make fuzz` explores.

// fuzzTopics are the topics FuzzBatchAdd writes to, by its topic number.
var fuzzTopics = []string{schemas.SessionsTopic, schemas.FriendsTopic, schemas.SubscriptionsTopic, schemas.GatewaysTopic}

// mustMarshal is the encoding of a seed record's value.
func mustMarshal(f *testing.F, m proto.Message) []byte {
	f.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// Whatever a record holds, batch.add never panics, adds at most one
// change, and every change it adds is made of valid ids under the
// canonical key of the record, with the record's offset and partition.
func FuzzBatchAdd(f *testing.F) {
	const ms = 1_800_000_000_000
	connect := &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CONNECT, App: "chat", User: "alice", Session: "s1",
		Device: &pb.Device{Type: "ios", Id: "d1"}, Gateway: "gw-1", GatewayEpoch: "boot-1", TimestampMs: ms}
	disconnect := &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_DISCONNECT, App: "chat", User: "alice", Session: "s1",
		Gateway: "gw-1", GatewayEpoch: "boot-1", TimestampMs: ms, Reason: pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_LOST}
	custom := &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CUSTOM_STATUS, App: "chat", User: "alice",
		Custom: &pb.CustomStatus{Status: 2, Text: "at the doctor"}, TimestampMs: ms}
	privacy := &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_PRIVACY, App: "chat", User: "alice",
		Privacy: &pb.Privacy{Invisible: true, LastSeen: pb.LastSeenRule_LAST_SEEN_RULE_FRIENDS}, TimestampMs: ms}
	badRule := proto.Clone(privacy).(*pb.SessionEvent)
	badRule.Privacy.LastSeen = 9
	activity := proto.Clone(connect).(*pb.SessionEvent)
	activity.Type, activity.Activity = pb.EventType_EVENT_TYPE_ACTIVITY, pb.Activity_ACTIVITY_IDLE
	badActivity := proto.Clone(activity).(*pb.SessionEvent)
	badActivity.Activity = 7
	friend := &pb.FriendEdge{App: "chat", User: "a/b%c", Friend: "bob", TimestampMs: ms}
	sub := &pb.Subscription{App: "chat", User: "alice", Subscriber: "bob", ExpiresAtMs: ms + 60_000, TimestampMs: ms}
	farFuture := proto.Clone(connect).(*pb.SessionEvent)
	farFuture.TimestampMs = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).UnixMilli()
	// A valid connect made 1 MB long by a field no version of the schema
	// has: it decodes.
	big := protowire.AppendTag(mustMarshal(f, connect), 1000, protowire.BytesType)
	big = protowire.AppendBytes(big, bytes.Repeat([]byte("x"), 1<<20))
	// Invalid UTF-8 in a string field, which proto.Marshal refuses to
	// write: written as "XX", then replaced.
	badUTF8 := proto.Clone(custom).(*pb.SessionEvent)
	badUTF8.Custom.Text = "bad XX utf-8"
	badUTF8Value := bytes.Replace(mustMarshal(f, badUTF8), []byte("XX"), []byte("\xff\xfe"), 1)

	for _, s := range []struct {
		topic     uint8
		key       string
		value     []byte
		partition int32
	}{
		{0, "chat/alice/s1", mustMarshal(f, connect), 3},
		{0, "chat/alice/s1", mustMarshal(f, disconnect), 3},
		{0, "chat/alice", mustMarshal(f, custom), 3},
		{0, "chat/alice", nil, 3},    // clears the custom status
		{0, "chat/alice/s1", nil, 3}, // a session's tombstone
		{0, "chat/p%q", nil, 3},      // not canonical
		{0, "chat/alice/s1", mustMarshal(f, farFuture), 3},
		{0, "chat/alice/s1", big, 3},
		{0, "chat/alice", badUTF8Value, 3},
		{0, "chat/alice/s1", []byte("\x0a\xff\xff\xff\xff\x0f"), 3},
		{0, "chat/alice/s1", mustMarshal(f, activity), 3},
		{0, "chat/alice/s1", mustMarshal(f, badActivity), 3},
		{0, "chat/alice", mustMarshal(f, activity), 3}, // under the custom status's key
		{0, "chat/alice//privacy", mustMarshal(f, privacy), 3},
		{0, "chat/alice//privacy", nil, 3},                   // restores the default
		{0, "chat/alice", mustMarshal(f, privacy), 3},        // under the custom status's key
		{0, "chat/bob//privacy", mustMarshal(f, privacy), 3}, // another user's key
		{0, "chat/alice//privacy", mustMarshal(f, badRule), 3},
		{0, "chat/p%q//privacy", nil, 3}, // not canonical
		{0, "chat/a/b//privacy", nil, 3}, // a session's key, suffixed
		{1, "chat/a%2Fb%25c/bob", mustMarshal(f, friend), 0},
		{1, "chat/a%2Fb%25c/bob", nil, 0},
		{1, "chat/p%q/r", nil, 0}, // the tombstone that removed a live friendship
		{1, "chat/alice/alice", nil, 0},
		{2, "chat/alice/bob", mustMarshal(f, sub), 5},
		{2, "chat/alice/bob", nil, 5},
		{2, "chat//bob", nil, -1},
		{3, "gw-1", mustMarshal(f, connect), 0},
	} {
		f.Add(s.topic, []byte(s.key), s.value, s.partition, int64(42), "h", []byte("v"))
	}
	p, err := New(Config{Brokers: []string{"127.0.0.1:1"},
		Store: redisstore.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), redisstore.Options{})})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic uint8, key, value []byte, partition int32, offset int64, header string, headerValue []byte) {
		r := &kgo.Record{
			Topic: fuzzTopics[int(topic)%len(fuzzTopics)], Key: key, Value: value,
			Headers:   []kgo.RecordHeader{{Key: header, Value: headerValue}},
			Partition: partition, Offset: offset, Timestamp: time.UnixMilli(1_800_000_000_000),
		}
		b := batch{clamp: p.clampTime}
		err := b.add(r)
		if err != nil {
			if b.len() != 0 {
				t.Fatalf("record %q refused (%v) but added %d changes", key, err, b.len())
			}
			return
		}
		if b.len() > 1 {
			t.Fatalf("record %q added %d changes", key, b.len())
		}
		if r.Topic == schemas.GatewaysTopic {
			t.Fatalf("a record of %s was accepted as a state change", r.Topic)
		}
		for _, c := range b.sessions {
			checkSessionChange(t, r, c)
		}
		for _, c := range b.friends {
			checkIDs(t, r, c.App, c.User, c.Friend)
			if got := schemas.FriendKey(c.App, c.User, c.Friend); got != string(key) {
				t.Fatalf("friend change of key %q, whose canonical key is %q", key, got)
			}
			if !c.Remove && c.User == c.Friend {
				t.Fatalf("record %q makes %q their own friend", key, c.User)
			}
		}
		for _, c := range b.subscriptions {
			checkIDs(t, r, c.App, c.User, c.Subscriber)
			if got := schemas.SubscriptionKey(c.App, c.User, c.Subscriber); got != string(key) {
				t.Fatalf("subscription change of key %q, whose canonical key is %q", key, got)
			}
			if c.Partition != partition || !c.Remove && (c.ExpiresAt.UnixMilli() <= 0 || c.User == c.Subscriber) {
				t.Fatalf("subscription change %+v from record %q in partition %d", c, key, partition)
			}
		}
	})
}

// checkIDs fails t unless app and ids are valid.
func checkIDs(t *testing.T, r *kgo.Record, app string, ids ...string) {
	t.Helper()
	errs := []error{schemas.ValidateApp(app)}
	for _, id := range ids {
		errs = append(errs, schemas.ValidateID("id", id))
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("record %q of %s accepted with invalid ids: %v", r.Key, r.Topic, err)
	}
}

// checkSessionChange fails t unless c is a change a record of
// presence.sessions may make.
func checkSessionChange(t *testing.T, r *kgo.Record, c redisstore.Change) {
	t.Helper()
	if c.Version != r.Offset || c.Partition != r.Partition {
		t.Fatalf("change of record %q at %d/%d has version %d, partition %d", r.Key, r.Partition, r.Offset, c.Version, c.Partition)
	}
	switch c.Op {
	case redisstore.Connect, redisstore.Disconnect:
		checkIDs(t, r, c.App, c.User, c.Session, c.Gateway, c.Epoch)
		if c.Op == redisstore.Connect {
			checkIDs(t, r, c.App, c.Device)
		}
		if c.DeviceID != "" {
			checkIDs(t, r, c.App, c.DeviceID)
		}
		if got := schemas.SessionKey(c.App, c.User, c.Session); got != string(r.Key) {
			t.Fatalf("session change of key %q, whose canonical key is %q", r.Key, got)
		}
		if c.At.UnixMilli() <= 0 {
			t.Fatalf("session change of key %q at %v", r.Key, c.At)
		}
	case redisstore.SetCustom, redisstore.ClearCustom:
		checkIDs(t, r, c.App, c.User)
		if c.Session != "" || c.Gateway != "" {
			t.Fatalf("custom status change of key %q has a session %q or gateway %q", r.Key, c.Session, c.Gateway)
		}
		if got := schemas.CustomStatusKey(c.App, c.User); got != string(r.Key) {
			t.Fatalf("custom status change of key %q, whose canonical key is %q", r.Key, got)
		}
		if c.Op == redisstore.SetCustom {
			if err := schemas.ValidateCustomText(c.Custom.Text); err != nil || c.Custom.Status < math.MinInt32 || c.Custom.Status > math.MaxInt32 {
				t.Fatalf("custom status %+v of key %q: %v", c.Custom, r.Key, err)
			}
		}
	case redisstore.SetPrivacy, redisstore.ClearPrivacy:
		checkIDs(t, r, c.App, c.User)
		if got := schemas.PrivacyKey(c.App, c.User); got != string(r.Key) {
			t.Fatalf("privacy change of key %q, whose canonical key is %q", r.Key, got)
		}
		if p := c.Privacy; c.Op == redisstore.SetPrivacy && p.LastSeen != "everyone" && p.LastSeen != "friends" && p.LastSeen != "nobody" {
			t.Fatalf("privacy %+v of key %q", p, r.Key)
		}
	default:
		t.Fatalf("record %q made a change of op %v", r.Key, c.Op)
	}
}

// Whatever a heartbeat record holds, renew never panics; a heartbeat it
// accepts is its key's gateway's, with a valid epoch, a lease that is
// positive and no longer than it asks (exactly what it asks up to
// DefaultGatewayLease), from no later than the heartbeat says.
func FuzzRenew(f *testing.F) {
	const ms = 1_800_000_000_000
	hb := func(lease int64) []byte {
		return mustMarshal(f, &pb.GatewayHeartbeat{Gateway: "gw-1", Epoch: "boot-1", LeaseMs: lease, TimestampMs: ms})
	}
	f.Add([]byte("gw-1"), hb(30_000))
	f.Add([]byte("gw-1"), hb(0))
	f.Add([]byte("gw-1"), hb(-1))
	f.Add([]byte("gw-1"), hb(math.MaxInt64)) // a huge lease_ms
	f.Add([]byte("gw-1"), hb(1<<53))
	f.Add([]byte("gw-2"), hb(30_000))
	f.Add([]byte("gw-1"), []byte(nil)) // forgets the gateway
	f.Add([]byte("gw-1"), []byte("\x12\x80"))
	f.Add([]byte("gw-1"), mustMarshal(f, &pb.GatewayHeartbeat{Gateway: "gw-1", Epoch: "attacker", LeaseMs: 1000,
		TimestampMs: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).UnixMilli()}))
	// The processor as New makes it (its defaults, its clock); its store
	// and brokers are never used here.
	p, err := New(Config{Brokers: []string{"127.0.0.1:1"},
		Store: redisstore.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), redisstore.Options{})})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		p.leases = newLeases(p.cfg.GatewayLease)
		r := &kgo.Record{Topic: schemas.GatewaysTopic, Key: key, Value: value, Offset: 7}
		if err := p.renew(r); err != nil {
			if len(p.leases.byGateway) != 0 {
				t.Fatalf("heartbeat %q refused (%v) but leased", key, err)
			}
			return
		}
		if len(value) == 0 {
			return
		}
		var hb pb.GatewayHeartbeat
		if err := proto.Unmarshal(value, &hb); err != nil {
			t.Fatalf("accepted heartbeat does not decode: %v", err)
		}
		l, ok := p.leases.byGateway[string(key)]
		if !ok || len(p.leases.byGateway) != 1 {
			t.Fatalf("heartbeat of key %q accepted, leases %v", key, p.leases.byGateway)
		}
		if err := schemas.ValidateID("epoch", l.epoch); err != nil || l.epoch != hb.Epoch {
			t.Fatalf("lease of %q has epoch %q: %v", key, l.epoch, err)
		}
		exact := hb.LeaseMs <= DefaultGatewayLease.Milliseconds()
		if l.length <= 0 || l.length.Milliseconds() > hb.LeaseMs || exact && l.length.Milliseconds() != hb.LeaseMs ||
			l.at.After(time.UnixMilli(hb.TimestampMs)) || !l.expires.Equal(l.at.Add(l.length)) {
			t.Fatalf("heartbeat of %q at %d ms with lease_ms %d: lease %s from %v to %v", key, hb.TimestampMs, hb.LeaseMs, l.length, l.at, l.expires)
		}
	})
}
