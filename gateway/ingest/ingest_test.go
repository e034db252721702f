package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/ingest"
	"github.com/presence-im/presence/gateway/internal/kafkatest"
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
	h, err := ingest.New(pub, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
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
		{"type":"disconnect","user":"bob","session":"s2","reason":"timeout","at":"2026-11-22T10:00:00.123Z"},
		{"type":"activity","user":"alice","session":"s1","device":"ios","device_id":"imei-1","activity":"idle"},
		{"type":"connect","user":"carl","session":"s3","device":"web","activity":"background"}]}`)
	if code != http.StatusAccepted || !strings.Contains(body, `"accepted":4`) {
		t.Fatalf("status %d: %s", code, body)
	}
	want := []gateway.Event{
		{Type: gateway.Connect, App: "chat", User: "alice", Session: "s1", Device: "ios", DeviceID: "imei-1", Gateway: "gw-1", Epoch: "boot-1"},
		{Type: gateway.Disconnect, App: "chat", User: "bob", Session: "s2", Reason: gateway.Timeout, Gateway: "gw-1", Epoch: "boot-1",
			At: time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)},
		{Type: gateway.ActivityChange, App: "chat", User: "alice", Session: "s1", Device: "ios", DeviceID: "imei-1", Gateway: "gw-1", Epoch: "boot-1", Activity: "idle"},
		{Type: gateway.Connect, App: "chat", User: "carl", Session: "s3", Device: "web", Gateway: "gw-1", Epoch: "boot-1", Activity: "background"},
	}
	if len(rec.events) != 4 || rec.events[0] != want[0] || rec.events[1].At.Compare(want[1].At) != 0 ||
		rec.events[2] != want[2] || rec.events[3] != want[3] {
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
		{"activity without activity", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `,{"type":"activity","user":"a","session":"s","device":"ios"}]}`},
		{"unknown activity", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `,{"type":"activity","user":"a","session":"s","device":"ios","activity":"asleep"}]}`},
		{"activity without device", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `,{"type":"activity","user":"a","session":"s","activity":"idle"}]}`},
		{"disconnect with activity", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"disconnect","user":"a","session":"s","activity":"idle"}]}`},
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
// holds it once. The gateway server publishes atomically; the endpoint
// behaves the same with a publisher that does not.
func TestKafkaDown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		atomic  bool
		message string
	}{
		{"atomic", true, "it is written whole or not at all"},
		{"not atomic", false, "some of it may be written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, schemas.SessionsTopic, schemas.GatewaysTopic))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			// The delivery timeout fails a batch sooner than
			// PublishTimeout; the short metadata age lets the
			// publisher see Kafka back sooner.
			opts := []gateway.Opt{gateway.Brokers(c.ListenAddrs()...), gateway.ID("ingest"),
				gateway.KafkaOpts(kgo.RecordDeliveryTimeout(time.Second), kgo.MetadataMinAge(100*time.Millisecond))}
			if tc.atomic {
				opts = append(opts, gateway.Atomic())
			}
			pub, err := gateway.New(opts...)
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
			start := time.Now()
			code, body := post(t, srv.URL+"/v1/apps/chat/events", batch)
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusServiceUnavailable || e.Error.Code != "unavailable" {
				t.Fatalf("events with Kafka down: %d %s, want 503 unavailable", code, body)
			}
			if took := time.Since(start); took > ingest.PublishTimeout+5*time.Second {
				t.Errorf("503 after %s, want it within PublishTimeout (%s)", took, ingest.PublishTimeout)
			}
			if !strings.Contains(e.Error.Message, tc.message) || !strings.Contains(e.Error.Message, "posting it again is safe") {
				t.Errorf("message %q does not say what was written and what to do", e.Error.Message)
			}
			if code, body := post(t, srv.URL+"/v1/gateways/gw/heartbeat", `{"epoch":"e"}`); code != http.StatusServiceUnavailable {
				t.Errorf("heartbeat with Kafka down: %d %s, want 503", code, body)
			}

			down.Store(false)
			if code, body := post(t, srv.URL+"/v1/apps/chat/events", batch); code != http.StatusAccepted {
				t.Fatalf("events once Kafka is back: %d %s, want 202", code, body)
			}
			if recs := kafkatest.ReadCommitted(t, c.ListenAddrs(), schemas.SessionsTopic); len(recs) != 2 {
				t.Fatalf("%s holds %d committed records, want the 2 of the batch accepted, none of the one refused", schemas.SessionsTopic, len(recs))
			}
		})
	}
}

// A batch spanning several partitions, one of which Kafka refuses (its
// broker answers the produce with a non-retriable error; the others
// write), answers 503. With an atomic publisher, as the gateway server's,
// nothing of it is visible to a read_committed consumer, and posting it
// again writes it whole, once. A publisher that is not atomic leaves the
// records of the other partitions written.
func TestPartialFailureWritesNothing(t *testing.T) {
	const partitions = 3
	var events []string
	spanned := map[int]bool{}
	for i := range 12 {
		user, session := fmt.Sprintf("u%d", i), fmt.Sprintf("s%d", i)
		events = append(events, fmt.Sprintf(`{"type":"connect","user":%q,"session":%q,"device":"ios","at":"2026-11-22T10:00:00Z"}`, user, session))
		spanned[schemas.Partition([]byte(schemas.SessionKey("chat", user, session)), partitions)] = true
	}
	if len(spanned) != partitions {
		t.Fatalf("the batch spans %d partitions, want all %d", len(spanned), partitions)
	}
	batch := `{"gateway":"gw","epoch":"e","events":[` + strings.Join(events, ",") + `]}`

	for _, tc := range []struct {
		name   string
		atomic bool
	}{{"atomic", true}, {"not atomic", false}} {
		t.Run(tc.name, func(t *testing.T) {
			c, refusing := clusterRefusingOnePartition(t, partitions)
			opts := []gateway.Opt{gateway.Brokers(c.ListenAddrs()...), gateway.ID("ingest")}
			if tc.atomic {
				opts = append(opts, gateway.Atomic())
			}
			pub, err := gateway.New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pub.Close)
			srv := serve(t, pub)

			code, body := post(t, srv.URL+"/v1/apps/chat/events", batch)
			if code != http.StatusServiceUnavailable {
				t.Fatalf("a batch one partition of which is refused: %d %s, want 503", code, body)
			}
			refusing.Store(false)
			written := len(kafkatest.ReadCommitted(t, c.ListenAddrs(), schemas.SessionsTopic))
			if !tc.atomic {
				// What Atomic is for: the other partitions' records are there.
				if written == 0 || written == len(events) {
					t.Fatalf("%d of the %d records of the refused batch are visible, want part of them", written, len(events))
				}
				return
			}
			if written != 0 {
				t.Fatalf("%d of the %d records of the refused batch are visible to a read_committed consumer, want none", written, len(events))
			}

			if code, body := post(t, srv.URL+"/v1/apps/chat/events", batch); code != http.StatusAccepted {
				t.Fatalf("the batch posted again: %d %s, want 202", code, body)
			}
			keys := map[string]int{}
			for _, r := range kafkatest.ReadCommitted(t, c.ListenAddrs(), schemas.SessionsTopic) {
				keys[string(r.Key)]++
			}
			for i := range events {
				if key := schemas.SessionKey("chat", fmt.Sprintf("u%d", i), fmt.Sprintf("s%d", i)); keys[key] != 1 {
					t.Errorf("%s is visible %d times, want once", key, keys[key])
				}
			}
			if len(keys) != len(events) {
				t.Errorf("%d keys visible, want the %d of the batch", len(keys), len(events))
			}
		})
	}
}

// clusterRefusingOnePartition starts a cluster of one broker per
// partition of the sessions topic, the last of which leads only the last
// partition and refuses every record produced to it with INVALID_RECORD
// (not retriable) while refusing is true.
func clusterRefusingOnePartition(t *testing.T, partitions int32) (*kfake.Cluster, *atomic.Bool) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(int(partitions)), kfake.SeedTopics(partitions, schemas.SessionsTopic, schemas.GatewaysTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	bad := partitions - 1
	for p := range partitions {
		if err := errors.Join(c.MoveTopicPartition(schemas.SessionsTopic, p, p), c.MoveTopicPartition(schemas.GatewaysTopic, p, 0)); err != nil {
			t.Fatal(err)
		}
	}
	refusing := new(atomic.Bool)
	refusing.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		if !refusing.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		if c.CurrentNode() != bad {
			return nil, nil, false // written as usual
		}
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return c, refusing
}
