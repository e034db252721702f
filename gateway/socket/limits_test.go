package socket_test

import (
	"testing"
	"time"

	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/httpapi"
)

// TestSocketOutlivesServerTimeouts serves the sockets with read and write
// timeouts of 100 ms: a socket still takes a notification when both have
// long passed, because the handler clears the deadlines the hijacked
// connection would keep.
func TestSocketOutlivesServerTimeouts(t *testing.T) {
	const timeout = 100 * time.Millisecond
	h := start(t, setup{limits: &httpapi.Limits{ReadTimeout: timeout, WriteTimeout: timeout, IdleTimeout: timeout}})
	ws := h.open("alice", "s1")
	h.next() // the connect
	// Waiting is what this test is about: past both deadlines.
	time.Sleep(5 * timeout)
	h.notify(gatewayID, &pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat", Gateway: gatewayID,
		Subject: bobOnline, Recipients: recipients("alice/s1")})
	sameJSON(t, receive(t, ws), bobOnlineJSON)
	if n := metric(t, h.reg, "presence_gateway_socket_disconnects_total"); n != 0 {
		t.Fatalf("%v sessions ended", n)
	}
}
