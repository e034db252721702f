package socket_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presence-im/presence/gateway/socket"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

func activity(user, session, device, a string) event {
	return event{Key: schemas.SessionKey("chat", user, session), Type: "EVENT_TYPE_ACTIVITY",
		Device: device, Gateway: gatewayID, Epoch: epoch, Activity: a}
}

func send(t *testing.T, ws *websocket.Conn, typ websocket.MessageType, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ws.Write(ctx, typ, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// A client's activity messages are published as the session's activity
// records (the whole session, as a connect), each a change: one that says
// what the last did publishes nothing. Anything else a client sends is
// ignored and counted.
func TestActivityMessages(t *testing.T) {
	h := start(t, setup{cfg: socket.Config{ActivityInterval: time.Millisecond}})
	ws := h.open("ann", "s1")
	if got, want := h.next(), connect("ann", "s1", "web", ""); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{`{"type":"activity","activity":"sleepy"}`, `{"type":"activity"}`, `{"type":"mood","activity":"idle"}`,
		`not json`, `{"type":"activity","activity":"idle","x":"` + strings.Repeat("a", 300) + `"}`} {
		send(t, ws, websocket.MessageText, bad)
	}
	send(t, ws, websocket.MessageBinary, `{"type":"activity","activity":"idle"}`)
	send(t, ws, websocket.MessageText, `{"type":"activity","activity":"active"}`) // what the connect said
	send(t, ws, websocket.MessageText, `{"type":"activity","activity":"idle"}`)
	if got, want := h.next(), activity("ann", "s1", "web", "ACTIVITY_IDLE"); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	send(t, ws, websocket.MessageText, `{"type":"activity","activity":"idle"}`) // no change
	send(t, ws, websocket.MessageText, `{"type":"activity","activity":"background"}`)
	if got, want := h.next(), activity("ann", "s1", "web", "ACTIVITY_BACKGROUND"); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := metric(t, h.reg, "presence_gateway_socket_messages_total", "result", "invalid"); got != 6 {
		t.Errorf("invalid messages: %v, want 6", got)
	}
	if got := metric(t, h.reg, "presence_gateway_socket_messages_total", "result", "activity"); got != 4 {
		t.Errorf("activity messages: %v, want 4", got)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	if got, want := h.next(), disconnect("ann", "s1", pb.DisconnectReason_DISCONNECT_REASON_CLIENT_CLOSED); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// A client that flaps its activity publishes at most one record per
// interval, and none after its disconnect.
func TestActivityFlapping(t *testing.T) {
	h := start(t, setup{cfg: socket.Config{ActivityInterval: time.Hour}})
	ws := h.open("ann", "s1")
	h.next() // the connect
	send(t, ws, websocket.MessageText, `{"type":"activity","activity":"idle"}`)
	if got, want := h.next(), activity("ann", "s1", "web", "ACTIVITY_IDLE"); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range 200 {
		send(t, ws, websocket.MessageText, `{"type":"activity","activity":"`+[]string{"active", "background"}[i%2]+`"}`)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	if got, want := h.next(), disconnect("ann", "s1", pb.DisconnectReason_DISCONNECT_REASON_CLIENT_CLOSED); got != want {
		t.Fatalf("after 200 reports within the interval: got %+v, want the disconnect", got)
	}
	if n := h.published(); n != 3 {
		t.Errorf("%d records, want 3: the connect, one activity, the disconnect", n)
	}
}
