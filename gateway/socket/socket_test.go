package socket_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/presence-im/presence/gateway/socket"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

func TestOpenAndClose(t *testing.T) {
	h := start(t, setup{})
	ws, _, err := h.dial(url.Values{"user": {"alice"}, "session": {"s1"}, "device": {"ios"}, "device_id": {"imei-1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.next(), connect("alice", "s1", "ios", "imei-1"); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if err := ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.next(), disconnect("alice", "s1", pb.DisconnectReason_DISCONNECT_REASON_CLIENT_CLOSED); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if n := metric(t, h.reg, "presence_gateway_socket_connects_total", "result", "opened"); n != 1 {
		t.Fatalf("connects opened: %v", n)
	}
}

func TestInvalidRequestsPublishNothing(t *testing.T) {
	h := start(t, setup{})
	for _, c := range []struct {
		name, path string
		query      url.Values
	}{
		{"bad app", "/v1/apps/bad%20app/ws", url.Values{"user": {"alice"}, "session": {"s1"}, "device": {"ios"}}},
		{"no user", "/v1/apps/chat/ws", url.Values{"session": {"s1"}, "device": {"ios"}}},
		{"no session", "/v1/apps/chat/ws", url.Values{"user": {"alice"}, "device": {"ios"}}},
		{"no device", "/v1/apps/chat/ws", url.Values{"user": {"alice"}, "session": {"s1"}}},
		{"control character", "/v1/apps/chat/ws", url.Values{"user": {"al\x00ice"}, "session": {"s1"}, "device": {"ios"}}},
		{"long session", "/v1/apps/chat/ws", url.Values{"user": {"alice"}, "session": {strings.Repeat("s", 129)}, "device": {"ios"}}},
		{"bad device id", "/v1/apps/chat/ws", url.Values{"user": {"alice"}, "session": {"s1"}, "device": {"ios"}, "device_id": {"\n"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, resp, err := websocket.Dial(ctx, h.base+c.path+"?"+c.query.Encode(), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			if status, code := errorOf(t, resp); status != http.StatusBadRequest || code != "invalid" {
				t.Fatalf("status %d, code %q; want 400 invalid", status, code)
			}
		})
	}
	t.Run("not a websocket", func(t *testing.T) {
		resp, err := http.Get(strings.Replace(h.base, "ws", "http", 1) + "/v1/apps/chat/ws?user=alice&session=s1&device=ios")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if status, code := errorOf(t, resp); status != http.StatusBadRequest || code != "invalid" {
			t.Fatalf("status %d, code %q; want 400 invalid", status, code)
		}
	})
	h.open("bob", "marker")
	if n := h.published(); n != 1 {
		t.Fatalf("%d records published, want only the valid connect", n)
	}
	if got, want := h.next(), connect("bob", "marker", "web", ""); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestDuplicateSession(t *testing.T) {
	h := start(t, setup{})
	first := h.open("alice", "s1")
	_, resp, err := h.dial(url.Values{"user": {"alice"}, "session": {"s1"}, "device": {"ios"}}, nil)
	if err == nil {
		t.Fatal("a second socket for an open session was accepted")
	}
	if status, code := errorOf(t, resp); status != http.StatusConflict || code != "session_exists" {
		t.Fatalf("status %d, code %q; want 409 session_exists", status, code)
	}
	if n := h.published(); n != 1 {
		t.Fatalf("%d records published, want the first connect only", n)
	}
	if got, want := h.next(), connect("alice", "s1", "web", ""); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// Once the first has ended, the session id can connect again.
	if err := first.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if got, want := h.next(), disconnect("alice", "s1", pb.DisconnectReason_DISCONNECT_REASON_CLIENT_CLOSED); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	h.open("alice", "s1")
	if got, want := h.next(), connect("alice", "s1", "web", ""); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestKafkaUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	h := start(t, setup{brokers: []string{dead}})
	ws, resp, err := h.dial(url.Values{"user": {"alice"}, "session": {"s1"}, "device": {"ios"}}, nil)
	if err == nil {
		ws.CloseNow()
		t.Fatal("a socket was opened without Kafka")
	}
	if status, code := errorOf(t, resp); status != http.StatusServiceUnavailable || code != "unavailable" {
		t.Fatalf("status %d, code %q; want 503 unavailable", status, code)
	}
	if n := metric(t, h.reg, "presence_gateway_sockets"); n != 0 {
		t.Fatalf("%v sockets", n)
	}
	if n := metric(t, h.reg, "presence_gateway_socket_connects_total", "result", "unavailable"); n != 1 {
		t.Fatalf("connects unavailable: %v", n)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	if _, err := socket.New(socket.Config{}); err == nil {
		t.Fatal("a server without a publisher")
	}
}
