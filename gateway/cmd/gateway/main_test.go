package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

const wait = 10 * time.Second

// logLines sends each JSON log line run writes to the channel.
func logLines(t *testing.T) (io.Writer, <-chan map[string]any) {
	t.Helper()
	r, w := io.Pipe()
	lines := make(chan map[string]any, 100)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			var m map[string]any
			if json.Unmarshal(s.Bytes(), &m) == nil {
				select {
				case lines <- m:
				default: // nobody is reading any more
				}
			}
		}
	}()
	t.Cleanup(func() { w.Close() })
	return w, lines
}

// waitLog returns the first log line with message msg.
func waitLog(t *testing.T, lines <-chan map[string]any, msg string) map[string]any {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case m := <-lines:
			if m["msg"] == msg {
				return m
			}
		case <-timeout:
			t.Fatalf("no log %q within 10s", msg)
		}
	}
}

// The binary serves WebSocket clients next to ingestion, renews its lease,
// and ends its sessions in Kafka when it stops.
func TestGatewayServesSockets(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(12, schemas.SessionsTopic, schemas.GatewaysTopic, schemas.NotifyTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stderr, lines := logLines(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--brokers", c.ListenAddrs()[0], "--addr", "127.0.0.1:0", "--id", "gw-cmd", "--epoch", "e-1", "--insecure"},
			func(string) string { return "" }, io.Discard, stderr)
	}()
	addr := waitLog(t, lines, "gateway ready")["addr"].(string)
	waitLog(t, lines, "reading notifications")

	dctx, dcancel := context.WithTimeout(context.Background(), wait)
	defer dcancel()
	ws, _, err := websocket.Dial(dctx, "ws://"+addr+"/v1/apps/chat/ws?user=alice&session=s1&device=web", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeTopics(schemas.SessionsTopic, schemas.GatewaysTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	key := schemas.NotifyKey("gw-cmd")
	value, _ := proto.Marshal(&pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_SYNC, App: "chat", Gateway: "gw-cmd",
		Subject: &pb.UserStatus{User: "alice", Online: true, Version: 5}, Recipients: []*pb.Recipient{{User: "alice", Session: "s1"}}})
	if err := cl.ProduceSync(dctx, &kgo.Record{Topic: schemas.NotifyTopic, Key: []byte(key), Value: value,
		Partition: int32(schemas.Partition([]byte(key), 12))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.Read(dctx)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type, User string
		Version    int64
	}
	if err := json.Unmarshal(msg, &got); err != nil || got.Type != "sync" || got.User != "alice" || got.Version != 5 {
		t.Fatalf("message %s", msg)
	}

	cancel()
	if _, _, err := ws.Read(dctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("the socket ended with %v, want going away", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-dctx.Done():
		t.Fatal("run did not return")
	}

	var sessions []string
	heartbeat := false
	for len(sessions) < 2 || !heartbeat {
		fetches := cl.PollFetches(dctx)
		if dctx.Err() != nil {
			t.Fatalf("records %v, heartbeat %v", sessions, heartbeat)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Topic == schemas.GatewaysTopic {
				heartbeat = heartbeat || string(r.Key) == "gw-cmd"
				return
			}
			var ev pb.SessionEvent
			if err := proto.Unmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, ev.GetType().String()+" "+ev.GetReason().String())
		})
	}
	if sessions[0] != "EVENT_TYPE_CONNECT DISCONNECT_REASON_UNSPECIFIED" || sessions[1] != "EVENT_TYPE_DISCONNECT DISCONNECT_REASON_GATEWAY_SHUTDOWN" {
		t.Fatalf("records %v", sessions)
	}
}
