package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/auth"
)

// noHooks is a Source of no webhooks.
type noHooks struct{}

func (noHooks) Webhooks() ([]auth.Webhook, <-chan struct{}) { return nil, nil }

// benchDeliverer delivers to url the change of a user online on two
// devices with a custom status, as a record of presence.changes.
func benchDeliverer(b *testing.B, url string) (*deliverer, *kgo.Record) {
	b.Helper()
	s, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Webhooks: noHooks{}})
	if err != nil {
		b.Fatal(err)
	}
	h := auth.Webhook{App: "chat", URL: url, Secret: []byte("bench-webhook-secret-01"), ID: "bench"}
	e := &endpoint{s: s, hook: h, log: s.log, counts: s.metrics.app("chat")}
	at := time.Now().UnixMilli()
	change := &pb.StatusChange{App: "chat", TimestampMs: at, Status: &pb.UserStatus{
		User: "alice", Online: true, Version: 123456,
		Custom: &pb.CustomStatus{Status: 2, Text: "in a meeting"},
		Sessions: []*pb.Session{
			{Session: "s-phone", Device: &pb.Device{Type: "ios", Id: "d-1"}, Gateway: "gw-eu-1", ConnectedAtMs: at - 60000},
			{Session: "s-web", Device: &pb.Device{Type: "web", Id: "d-2"}, Gateway: "gw-eu-2", ConnectedAtMs: at - 1000},
		},
	}}
	value, err := proto.Marshal(change)
	if err != nil {
		b.Fatal(err)
	}
	return e.newDeliverer(), &kgo.Record{Topic: schemas.ChangesTopic, Key: []byte(schemas.UserKey("chat", "alice")), Value: value}
}

// BenchmarkPrepare is the sender's own work per change: decode the
// record, write the JSON body, sign it.
func BenchmarkPrepare(b *testing.B) {
	d, r := benchDeliverer(b, "http://127.0.0.1:1/")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := d.prepare(r); !ok {
			b.Fatal("not a change")
		}
	}
}

// BenchmarkDeliver is one delivered change, the HTTP round trip to a
// local endpoint included (its server side too: the allocations and CPU
// are of both ends).
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	d, r := benchDeliverer(b, srv.URL)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if !d.deliver(ctx, r) {
			b.Fatal("not delivered")
		}
	}
}
