package socket_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/socket"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/httpapi"
)

const (
	gatewayID  = "gw-1"
	epoch      = "boot-1"
	partitions = 12
	wait       = 10 * time.Second
)

// harness is a gateway with a socket server on an in-process Kafka.
type harness struct {
	t        *testing.T
	cluster  *kfake.Cluster
	srv      *socket.Server
	reg      *prometheus.Registry
	base     string // ws://host:port
	sessions chan *kgo.Record
	producer *kgo.Client
}

type setup struct {
	cfg socket.Config
	// brokers replaces the cluster's address in the publisher.
	brokers []string
	// listener wraps the server's listener.
	listener func(net.Listener) net.Listener
	// limits, when set, serves through httpapi with these limits rather
	// than through httptest.
	limits *httpapi.Limits
}

func start(t *testing.T, s setup) *harness {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.SessionsTopic, schemas.NotifyTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	opts := []gateway.Opt{gateway.ID(gatewayID), gateway.Epoch(epoch)}
	if s.brokers != nil {
		brokers = s.brokers
		opts = append(opts, gateway.KafkaOpts(kgo.RecordDeliveryTimeout(time.Second)))
	}
	pub, err := gateway.New(append(opts, gateway.Brokers(brokers...))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)

	h := &harness{t: t, cluster: c, reg: prometheus.NewRegistry()}
	cfg := s.cfg
	cfg.Publisher, cfg.Registerer = pub, h.reg
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h.srv, err = socket.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.srv.Register(mux)
	if s.limits != nil {
		h.base = "ws://" + serveLimited(t, *s.limits, mux)
	} else {
		hs := httptest.NewUnstartedServer(mux)
		if s.listener != nil {
			hs.Listener = s.listener(hs.Listener)
		}
		hs.Start()
		t.Cleanup(hs.Close)
		h.base = "ws" + strings.TrimPrefix(hs.URL, "http")
	}

	if s.brokers == nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.srv.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		select {
		case <-h.srv.Reading():
		case <-time.After(wait):
			t.Fatal("the server did not start reading notifications")
		}
		h.sessions = tail(t, c, schemas.SessionsTopic)
		h.producer, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.producer.Close)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return h
}

// serveLimited serves h as the gateway command does, within lim, until
// the test ends; it returns the address.
func serveLimited(t *testing.T, lim httpapi.Limits, h http.Handler) string {
	t.Helper()
	l, err := httpapi.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lim.Serve(ctx, l, h, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// tail sends every record of topic, from the start, to the channel.
func tail(t *testing.T, c *kfake.Cluster, topic string) chan *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *kgo.Record, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out <- r })
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return out
}

// event is a session record as the tests compare it.
type event struct {
	Key, Type, Device, DeviceID, Gateway, Epoch, Reason, Activity string
}

// next returns the next record of presence.sessions.
func (h *harness) next() event {
	h.t.Helper()
	select {
	case r := <-h.sessions:
		return h.decode(r)
	case <-time.After(wait):
		h.t.Fatal("no record on presence.sessions within 10s")
		panic("unreachable")
	}
}

func (h *harness) decode(r *kgo.Record) event {
	h.t.Helper()
	var ev pb.SessionEvent
	if err := proto.Unmarshal(r.Value, &ev); err != nil {
		h.t.Fatalf("record %q: %v", r.Key, err)
	}
	e := event{Key: string(r.Key), Type: ev.GetType().String(), Gateway: ev.GetGateway(), Epoch: ev.GetGatewayEpoch()}
	switch ev.GetType() {
	case pb.EventType_EVENT_TYPE_CONNECT:
		e.Device, e.DeviceID = ev.GetDevice().GetType(), ev.GetDevice().GetId()
	case pb.EventType_EVENT_TYPE_ACTIVITY:
		e.Device, e.DeviceID, e.Activity = ev.GetDevice().GetType(), ev.GetDevice().GetId(), ev.GetActivity().String()
	default:
		e.Reason = ev.GetReason().String()
	}
	return e
}

// published is how many records presence.sessions holds.
func (h *harness) published() int64 {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cluster.ListenAddrs()...))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), schemas.SessionsTopic)
	if err != nil {
		h.t.Fatal(err)
	}
	n := int64(0)
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func connect(user, session, device, deviceID string) event {
	return event{Key: schemas.SessionKey("chat", user, session), Type: "EVENT_TYPE_CONNECT",
		Device: device, DeviceID: deviceID, Gateway: gatewayID, Epoch: epoch}
}

func disconnect(user, session string, reason pb.DisconnectReason) event {
	return event{Key: schemas.SessionKey("chat", user, session), Type: "EVENT_TYPE_DISCONNECT",
		Gateway: gatewayID, Epoch: epoch, Reason: reason.String()}
}

// dial opens a socket with the query q on app chat.
func (h *harness) dial(q url.Values, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, h.base+"/v1/apps/chat/ws?"+q.Encode(), opts)
	if ws != nil {
		h.t.Cleanup(func() { _ = ws.CloseNow() })
	}
	return ws, resp, err
}

// open opens a socket for user's session, which must succeed.
func (h *harness) open(user, session string) *websocket.Conn {
	h.t.Helper()
	ws, _, err := h.dial(url.Values{"user": {user}, "session": {session}, "device": {"web"}}, nil)
	if err != nil {
		h.t.Fatalf("opening %s/%s: %v", user, session, err)
	}
	return ws
}

// notify writes a notification under this gateway's key, or another's.
func (h *harness) notify(gw string, ns ...*pb.Notification) {
	h.t.Helper()
	key := schemas.NotifyKey(gw)
	recs := make([]*kgo.Record, len(ns))
	for i, n := range ns {
		value, err := proto.Marshal(n)
		if err != nil {
			h.t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: schemas.NotifyTopic, Key: []byte(key), Value: value,
			Partition: int32(schemas.Partition([]byte(key), partitions))}
	}
	if err := h.producer.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// receive reads the next message of ws, which must be JSON text.
func receive(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	typ, data, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("reading a notification: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("a %v message, want text", typ)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("message %s: %v", data, err)
	}
	return m
}

// sameJSON fails unless got decodes to the same value as want.
func sameJSON(t *testing.T, got map[string]any, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Fatalf("got  %s\nwant %s", g, want)
	}
}

// errorOf decodes the JSON error envelope of a refused handshake.
func errorOf(t *testing.T, resp *http.Response) (status int, code string) {
	t.Helper()
	if resp == nil {
		t.Fatal("no HTTP response")
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("status %d, body %q: not the error envelope", resp.StatusCode, body)
	}
	return resp.StatusCode, e.Error.Code
}

// metric is the value of a counter or gauge of reg with these labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
