package socket_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/gateway/socket"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

func recipients(rs ...string) []*pb.Recipient {
	out := make([]*pb.Recipient, len(rs))
	for i, r := range rs {
		user, session, _ := strings.Cut(r, "/")
		out[i] = &pb.Recipient{User: user, Session: session}
	}
	return out
}

// neighbour is a gateway id whose notifications share this gateway's
// partition.
func neighbour() string {
	want := schemas.Partition([]byte(schemas.NotifyKey(gatewayID)), partitions)
	for i := 0; ; i++ {
		other := fmt.Sprintf("other-%d", i)
		if schemas.Partition([]byte(schemas.NotifyKey(other)), partitions) == want {
			return other
		}
	}
}

var bobOnline = &pb.UserStatus{
	User: "bob", Online: true,
	Sessions: []*pb.Session{
		{Session: "b2", Device: &pb.Device{Type: "web"}, Gateway: "gw-9", ConnectedAtMs: 1_700_000_001_000, Activity: pb.Activity_ACTIVITY_IDLE},
		{Session: "b1", Device: &pb.Device{Type: "ios", Id: "imei-9"}, Gateway: "gw-1", ConnectedAtMs: 1_700_000_000_123},
	},
	Custom:  &pb.CustomStatus{Status: 2, Text: "in a meeting"},
	Version: 42,
}

const bobOnlineJSON = `{"type":"presence","user":"bob","state":"online","sessions":[
	{"session":"b1","device":"ios","device_id":"imei-9","gateway":"gw-1","connected_at":"2023-11-14T22:13:20.123Z","activity":"active"},
	{"session":"b2","device":"web","device_id":"","gateway":"gw-9","connected_at":"2023-11-14T22:13:21.000Z","activity":"idle"}],
	"custom":{"status":2,"text":"in a meeting"},"last_seen":null,"version":42,"activity":"active"}`

func TestDelivery(t *testing.T) {
	h := start(t, setup{})
	alice1, alice2, carol := h.open("alice", "s1"), h.open("alice", "s2"), h.open("carol", "c1")

	// Same partition, another gateway's key: the same recipients, but not
	// for this gateway.
	h.notify(neighbour(), &pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat",
		Subject: &pb.UserStatus{User: "bob", Version: 1}, Recipients: recipients("alice/s1", "carol/c1")})
	h.notify(gatewayID,
		&pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat", Gateway: gatewayID,
			Subject: bobOnline, Recipients: recipients("alice/s1", "carol/c1", "dave/d1")},
		&pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_SYNC, App: "chat", Gateway: gatewayID,
			Subject:    &pb.UserStatus{User: "alice", LastSeenMs: 1_700_000_002_500, Version: 43},
			Recipients: recipients("alice/s2")},
		// Another app's alice is not this one.
		&pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "other", Gateway: gatewayID,
			Subject: &pb.UserStatus{User: "zed", Version: 9}, Recipients: recipients("alice/s1")},
		&pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat", Gateway: gatewayID,
			Subject: &pb.UserStatus{User: "erin", Online: false, Version: 44}, Recipients: recipients("alice/s1")},
	)

	sameJSON(t, receive(t, alice1), bobOnlineJSON)
	sameJSON(t, receive(t, carol), bobOnlineJSON)
	sameJSON(t, receive(t, alice2), `{"type":"sync","user":"alice","state":"offline","sessions":[],
		"custom":null,"last_seen":"2023-11-14T22:13:22.500Z","version":43,"activity":null}`)
	// The next message of alice/s1 is erin's: neither the other gateway's
	// nor the other app's reached it.
	sameJSON(t, receive(t, alice1), `{"type":"presence","user":"erin","state":"offline","sessions":[],
		"custom":null,"last_seen":null,"version":44,"activity":null}`)

	if n := metric(t, h.reg, "presence_gateway_notifications_dropped_total", "reason", "not_here"); n != 2 {
		t.Fatalf("dropped not_here: %v, want 2 (dave/d1 and the other app's alice)", n)
	}
	if n := metric(t, h.reg, "presence_gateway_notifications_delivered_total", "type", "sync"); n != 1 {
		t.Fatalf("delivered sync: %v", n)
	}
}

// smallBuffers shrinks the kernel's buffers of every accepted connection,
// so that a client that does not read blocks the server's writes soon.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func smallReadBuffer() *websocket.DialOptions {
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}}}
}

func TestSlowClientIsClosed(t *testing.T) {
	h := start(t, setup{cfg: socket.Config{SendBuffer: 4}, listener: func(l net.Listener) net.Listener { return smallBuffers{l} }})
	slow, _, err := h.dial(url.Values{"user": {"alice"}, "session": {"s1"}, "device": {"web"}}, smallReadBuffer())
	if err != nil {
		t.Fatal(err)
	}
	fast := h.open("carol", "c1")
	got := map[event]bool{h.next(): true, h.next(): true}
	if !got[connect("alice", "s1", "web", "")] || !got[connect("carol", "c1", "web", "")] {
		t.Fatalf("records %v, want both connects", got)
	}

	// Big notifications, one at a time, for alice, who does not read:
	// once the kernel's buffers are full, they pile up in her send buffer.
	big := &pb.UserStatus{User: "bob", Online: true, Version: 1}
	for i := range 20 {
		big.Sessions = append(big.Sessions, &pb.Session{Session: fmt.Sprintf("session-%03d", i),
			Device: &pb.Device{Type: "desktop", Id: strings.Repeat("d", 64)}, Gateway: "gw-2", ConnectedAtMs: 1_700_000_000_000})
	}
	note := &pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat", Gateway: gatewayID,
		Subject: big, Recipients: recipients("alice/s1")}
	var ended *kgo.Record
	sent := 0
	for ended == nil {
		if sent == 2000 {
			t.Fatalf("alice is still connected after %d notifications", sent)
		}
		h.notify(gatewayID, note)
		sent++
		select {
		case ended = <-h.sessions:
		default:
		}
	}
	if got, want := h.decode(ended), disconnect("alice", "s1", pb.DisconnectReason_DISCONNECT_REASON_TIMEOUT); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	// Reading now, alice finds what was written before the close, then
	// the close.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	read := 0
	for {
		_, _, err = slow.Read(ctx)
		if err != nil {
			break
		}
		read++
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "too slow: 4 notifications not read" {
		t.Fatalf("alice's socket ended with %v, want a policy violation for being too slow", err)
	}
	t.Logf("alice read %d of %d notifications before the close", read, sent)
	if read >= sent {
		t.Fatalf("alice read all %d notifications", read)
	}
	if n := metric(t, h.reg, "presence_gateway_socket_disconnects_total", "cause", "slow_consumer"); n != 1 {
		t.Fatalf("slow_consumer disconnects: %v", n)
	}
	if n := metric(t, h.reg, "presence_gateway_notifications_dropped_total", "reason", "slow_consumer"); n < 1 {
		t.Fatalf("slow_consumer drops: %v", n)
	}

	// Carol was never held up.
	h.notify(gatewayID, &pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat", Gateway: gatewayID,
		Subject: bobOnline, Recipients: recipients("alice/s1", "carol/c1")})
	sameJSON(t, receive(t, fast), bobOnlineJSON)
}

func TestMissedKeepAliveEndsTheSession(t *testing.T) {
	h := start(t, setup{cfg: socket.Config{PingInterval: 50 * time.Millisecond}})
	// Never reading, the client never answers a ping.
	h.open("alice", "s1")
	if got, want := h.next(), connect("alice", "s1", "web", ""); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got, want := h.next(), disconnect("alice", "s1", pb.DisconnectReason_DISCONNECT_REASON_TIMEOUT); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if n := metric(t, h.reg, "presence_gateway_socket_disconnects_total", "cause", "timeout"); n != 1 {
		t.Fatalf("timeout disconnects: %v", n)
	}
}

func TestShutdown(t *testing.T) {
	h := start(t, setup{})
	users := []string{"alice", "bob", "carol"}
	closed := make(chan error, len(users))
	for _, u := range users {
		ws := h.open(u, "s1")
		go func() {
			for {
				if _, _, err := ws.Read(context.Background()); err != nil {
					closed <- err
					return
				}
			}
		}()
	}
	want := map[event]bool{}
	for _, u := range users {
		want[connect(u, "s1", "web", "")] = true
	}
	got := map[event]bool{}
	for range users {
		got[h.next()] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range users {
		select {
		case err := <-closed:
			if websocket.CloseStatus(err) != websocket.StatusGoingAway {
				t.Errorf("a client's socket ended with %v, want going away", err)
			}
		case <-ctx.Done():
			t.Fatal("a socket was still open after Shutdown")
		}
	}
	for _, u := range users {
		want[disconnect(u, "s1", pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_SHUTDOWN)] = true
	}
	for range users {
		got[h.next()] = true
	}
	if len(got) != len(want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	for e := range want {
		if !got[e] {
			t.Fatalf("records %v, want %v", got, want)
		}
	}
	if n := metric(t, h.reg, "presence_gateway_sockets"); n != 0 {
		t.Fatalf("%v sockets after Shutdown", n)
	}
	_, resp, err := h.dial(url.Values{"user": {"dave"}, "session": {"s1"}, "device": {"web"}}, nil)
	if err == nil {
		t.Fatal("a socket opened after Shutdown")
	}
	if status, code := errorOf(t, resp); status != http.StatusServiceUnavailable || code != "unavailable" {
		t.Fatalf("status %d, code %q; want 503 unavailable", status, code)
	}
}
