package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/ingest"
	"github.com/presence-im/presence/schemas"
)

// recorder is a publisher that keeps what it is given, or fails.
type recorder struct {
	events     []gateway.Event
	heartbeats []string
	fail       error
}

func (r *recorder) Publish(_ context.Context, events ...gateway.Event) error {
	if r.fail != nil {
		return r.fail
	}
	r.events = append(r.events, events...)
	return nil
}

func (r *recorder) HeartbeatFor(_ context.Context, gw, epoch string) error {
	if r.fail != nil {
		return r.fail
	}
	r.heartbeats = append(r.heartbeats, gw+"@"+epoch)
	return nil
}

func serve(t *testing.T, pub ingest.Publisher) *httptest.Server {
	t.Helper()
	h, err := ingest.New(pub, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEvents(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, rec)
	code, body := post(t, srv.URL+"/v1/apps/chat/events", `{"gateway":"gw-1","epoch":"boot-1","events":[
		{"type":"connect","user":"alice","session":"s1","device":"ios","device_id":"imei-1"},
		{"type":"disconnect","user":"bob","session":"s2","reason":"timeout","at":"2026-11-22T10:00:00.123Z"}]}`)
	if code != http.StatusAccepted || !strings.Contains(body, `"accepted":2`) {
		t.Fatalf("status %d: %s", code, body)
	}
	want := []gateway.Event{
		{Type: gateway.Connect, App: "chat", User: "alice", Session: "s1", Device: "ios", DeviceID: "imei-1", Gateway: "gw-1", Epoch: "boot-1"},
		{Type: gateway.Disconnect, App: "chat", User: "bob", Session: "s2", Reason: gateway.Timeout, Gateway: "gw-1", Epoch: "boot-1",
			At: time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)},
	}
	if len(rec.events) != 2 || rec.events[0] != want[0] || rec.events[1].At.Compare(want[1].At) != 0 {
		t.Fatalf("published %+v, want %+v", rec.events, want)
	}
}

func TestMalformedBatchWritesNothing(t *testing.T) {
	valid := `{"type":"connect","user":"alice","session":"s1","device":"ios"}`
	for _, c := range []struct{ name, path, body string }{
		{"bad app", "/v1/apps/bad%20app/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `]}`},
		{"no gateway", "/v1/apps/chat/events", `{"epoch":"e","events":[` + valid + `]}`},
		{"no epoch", "/v1/apps/chat/events", `{"gateway":"gw","events":[` + valid + `]}`},
		{"unknown type", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `,{"type":"away","user":"a","session":"s"}]}`},
		{"empty user", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `,{"type":"connect","user":"","session":"s","device":"ios"}]}`},
		{"connect without device", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `,{"type":"connect","user":"a","session":"s"}]}`},
		{"bad reason", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"disconnect","user":"a","session":"s","reason":"bored"}]}`},
		{"control character", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"connect","user":"a\u0000","session":"s","device":"ios"}]}`},
		{"unknown field", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[],"extra":true}`},
		{"not json", "/v1/apps/chat/events", `connect alice`},
		{"no events field", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e"}`},
		{"time before 1970", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"disconnect","user":"a","session":"s","at":"1960-01-01T00:00:00Z"}]}`},
		{"bad time", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"disconnect","user":"a","session":"s","at":"yesterday"}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			code, body := post(t, serve(t, rec).URL+c.path, c.body)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", code, body)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "invalid" || e.Error.Message == "" {
				t.Fatalf("error body %s", body)
			}
			if len(rec.events) != 0 {
				t.Fatalf("published %d events of a malformed batch", len(rec.events))
			}
		})
	}
}

func TestKafkaFailureIs503(t *testing.T) {
	srv := serve(t, &recorder{fail: errors.New("broker down")})
	code, body := post(t, srv.URL+"/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"disconnect","user":"a","session":"s"}]}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"unavailable"`) || strings.Contains(body, "broker down") {
		t.Fatalf("status %d: %s", code, body)
	}
}

func TestHeartbeatEndpoint(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, rec)
	if code, body := post(t, srv.URL+"/v1/gateways/gw-9/heartbeat", `{"epoch":"boot-3"}`); code != http.StatusAccepted {
		t.Fatalf("status %d: %s", code, body)
	}
	if code, _ := post(t, srv.URL+"/v1/gateways/gw-9/heartbeat", `{}`); code != http.StatusBadRequest {
		t.Fatalf("heartbeat without epoch: status %d", code)
	}
	if len(rec.heartbeats) != 1 || rec.heartbeats[0] != "gw-9@boot-3" {
		t.Fatalf("heartbeats %v", rec.heartbeats)
	}
}

// With Kafka down, a batch answers 503 unavailable and writes nothing;
// once Kafka is back, the same batch posted again is accepted, and Kafka
// holds it once.
func TestKafkaDown(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, schemas.SessionsTopic, schemas.GatewaysTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// The delivery timeout fails a batch sooner than PublishTimeout; the
	// short metadata age lets the publisher see Kafka back sooner.
	pub, err := gateway.New(gateway.Brokers(c.ListenAddrs()...), gateway.ID("ingest"),
		gateway.KafkaOpts(kgo.RecordDeliveryTimeout(time.Second), kgo.MetadataMinAge(100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	srv := serve(t, pub)
	batch := `{"gateway":"gw","epoch":"e","events":[
		{"type":"connect","user":"alice","session":"s1","device":"ios","at":"2026-11-22T10:00:00Z"},
		{"type":"connect","user":"bob","session":"s2","device":"web","at":"2026-11-22T10:00:00Z"}]}`

	var down atomic.Bool
	down.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !down.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		return nil, errors.New("broker down"), true // drops the connection
	})
	code, body := post(t, srv.URL+"/v1/apps/chat/events", batch)
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusServiceUnavailable || e.Error.Code != "unavailable" {
		t.Fatalf("events with Kafka down: %d %s, want 503 unavailable", code, body)
	}
	if !strings.Contains(e.Error.Message, "posting it again is safe") {
		t.Errorf("message %q does not say what to do", e.Error.Message)
	}
	if code, body := post(t, srv.URL+"/v1/gateways/gw/heartbeat", `{"epoch":"e"}`); code != http.StatusServiceUnavailable {
		t.Errorf("heartbeat with Kafka down: %d %s, want 503", code, body)
	}

	down.Store(false)
	if code, body := post(t, srv.URL+"/v1/apps/chat/events", batch); code != http.StatusAccepted {
		t.Fatalf("events once Kafka is back: %d %s, want 202", code, body)
	}
	if n := records(t, c, schemas.SessionsTopic); n != 2 {
		t.Fatalf("%s holds %d records, want the 2 of the batch accepted, none of the one refused", schemas.SessionsTopic, n)
	}
}

// records counts the records of topic.
func records(t *testing.T, c *kfake.Cluster, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}
