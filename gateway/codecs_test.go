package gateway_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/schemas"
)

// documentedCodecs decompresses only the codecs schemas/README.md tells a
// consumer to support ("Compression: what a consumer must support"), as a
// kafkajs consumer with kafkajs-snappy would, and refuses any other.
type documentedCodecs struct{ kgo.Decompressor }

func (d documentedCodecs) Decompress(src []byte, codec kgo.CompressionCodecType) ([]byte, error) {
	switch codec {
	case kgo.CodecNone, kgo.CodecSnappy:
		return d.Decompressor.Decompress(src, codec)
	default:
		return nil, fmt.Errorf("codec %d: not among the codecs the docs promise (none, snappy)", codec)
	}
}

// sessionEventType is presence.v1.SessionEvent as built from the .proto by
// protoc at test time: what a team without Go code has.
func sessionEventType(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	out := filepath.Join(t.TempDir(), "presence.pb")
	cmd := exec.Command("protoc", "-I", "../schemas/proto", "--descriptor_set_out="+out, "presence/v1/presence.proto")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc (make test installs it): %v: %s", err, msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		t.Fatal(err)
	}
	d, err := files.FindDescriptorByName("presence.v1.SessionEvent")
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.MessageDescriptor)
}

// The records the real publisher writes can be read by a consumer that
// supports only the documented codecs and decoded with the .proto alone.
func TestSessionsReadWithTheDocumentedCodecs(t *testing.T) {
	c := newCluster(t)
	p := newPublisher(t, c, gateway.Epoch("boot-1"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Publish(ctx,
		gateway.Event{Type: gateway.Connect, App: "chat", User: "alice", Session: "s1", Device: "ios", DeviceID: "iphone-1"},
		gateway.Event{Type: gateway.Connect, App: "chat", User: "bob", Session: "s3", Device: "android"},
		gateway.Event{Type: gateway.Disconnect, App: "chat", User: "bob", Session: "s3"},
	)
	if err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(schemas.SessionsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.WithDecompressor(documentedCodecs{kgo.DefaultDecompressor()}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	event := sessionEventType(t)
	fields := event.Fields()
	got := map[string]string{} // key → "type user device" of its latest record
	for n := 0; n < 3; {
		fetches := cl.PollFetches(ctx)
		fetches.EachError(func(topic string, partition int32, err error) {
			t.Fatalf("reading %s/%d: %v", topic, partition, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			if codec := kgo.CompressionCodecType(r.Attrs.CompressionType()); codec != kgo.CodecNone && codec != kgo.CodecSnappy {
				t.Errorf("record %q compressed with codec %d", r.Key, codec)
			}
			m := dynamicpb.NewMessage(event)
			if err := proto.Unmarshal(r.Value, m); err != nil {
				t.Fatalf("decoding %q with the .proto: %v", r.Key, err)
			}
			typ := fields.ByName("type")
			name := typ.Enum().Values().ByNumber(m.Get(typ).Enum()).Name()
			device := m.Get(fields.ByName("device")).Message()
			got[string(r.Key)] = fmt.Sprintf("%s %s %s", name, m.Get(fields.ByName("user")).String(),
				device.Get(device.Descriptor().Fields().ByName("type")).String())
		})
	}
	want := map[string]string{
		"chat/alice/s1": "EVENT_TYPE_CONNECT alice ios",
		"chat/bob/s3":   "EVENT_TYPE_DISCONNECT bob ", // bob's latest record: a disconnect carries no device
	}
	for key, w := range want {
		if got[key] != w {
			t.Errorf("%s: decoded %q, want %q", key, got[key], w)
		}
	}
}
