package socket_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presence-im/presence/gateway/socket"

	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/httpapi"
)

// TestSocketOutlivesServerTimeouts serves the sockets with a write timeout
// already passed when the handler upgrades: the socket still opens and
// takes a notification, because the handler clears the deadlines before
// the upgrade writes its 101 (net/http clears them only after). The read
// timeout needs nothing of the handler: net/http clears it on hijack.
func TestSocketOutlivesServerTimeouts(t *testing.T) {
	h := start(t, setup{limits: &httpapi.Limits{WriteTimeout: time.Nanosecond}})
	ws := h.open("alice", "s1")
	h.next() // the connect
	h.notify(gatewayID, &pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat", Gateway: gatewayID,
		Subject: bobOnline, Recipients: recipients("alice/s1")})
	sameJSON(t, receive(t, ws), bobOnlineJSON)
	if n := metric(t, h.reg, "presence_gateway_socket_disconnects_total"); n != 0 {
		t.Fatalf("%v sessions ended", n)
	}
}

// TestSocketCaps opens sockets past the caps: the connect over a cap is
// refused before the upgrade, in the envelope, publishes nothing, and
// is counted; closing a socket makes room again.
func TestSocketCaps(t *testing.T) {
	h := start(t, setup{cfg: socket.Config{MaxSockets: 3, MaxSocketsPerUser: 2}})
	alice1 := h.open("alice", "s1")
	h.open("alice", "s2")
	refused := func(user, session string, status int, code string) {
		t.Helper()
		_, resp, err := h.dial(url.Values{"user": {user}, "session": {session}, "device": {"web"}}, nil)
		if err == nil {
			t.Fatalf("%s/%s over a cap was accepted", user, session)
		}
		if gotStatus, gotCode := errorOf(t, resp); gotStatus != status || gotCode != code {
			t.Fatalf("%s/%s: %d %s, want %d %s", user, session, gotStatus, gotCode, status, code)
		}
	}
	refused("alice", "s3", http.StatusTooManyRequests, "too_many_sockets")
	h.open("bob", "b1") // another user is under his own cap
	refused("carol", "c1", http.StatusServiceUnavailable, "unavailable")
	if n := h.published(); n != 3 {
		t.Fatalf("%d records published, want the 3 accepted connects only", n)
	}
	if u, g := metric(t, h.reg, "presence_gateway_socket_connects_total", "result", "user_cap"),
		metric(t, h.reg, "presence_gateway_socket_connects_total", "result", "gateway_cap"); u != 1 || g != 1 {
		t.Fatalf("connects refused: user_cap %v, gateway_cap %v; want 1 and 1", u, g)
	}

	// Once alice's first socket is closed and its disconnect published,
	// both caps have room for her again.
	if err := alice1.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	for range 4 { // three connects, then the disconnect
		h.next()
	}
	// The id is released just after the disconnect is in Kafka.
	deadline := time.Now().Add(wait)
	for h.srv.Held() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions held after alice/s1 closed, want 2", h.srv.Held())
		}
		time.Sleep(time.Millisecond)
	}
	h.open("alice", "s3")
}
