package socket

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/gateway"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/httpapi"
)

// Fuzz tests of what the socket server reads: notification records, from
// Kafka, and the query of a client's handshake. `go test` runs the seeds;
// `make fuzz` explores.

// fuzzServer is a Server whose publisher is never used: it points at a
// port nobody listens on.
func fuzzServer(f *testing.F) *Server {
	pub, err := gateway.New(gateway.ID("gw-1"), gateway.Epoch("boot-1"), gateway.Brokers("127.0.0.1:1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(pub.Close)
	s, err := New(Config{Publisher: pub, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SendBuffer: 64})
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// fuzzRecipients are the sessions connected to the server of
// FuzzNotification.
var fuzzRecipients = []key{{"chat", "alice", "s1"}, {"chat", "a/b%c", "s2"}}

// Whatever a notification record holds, the gateway never panics: a
// record that decodes is delivered to exactly its recipients connected
// here (as many times as it names them), each message JSON that says what
// the notification says, its sessions oldest first.
func FuzzNotification(f *testing.F) {
	const ms = 1_800_000_000_000
	subject := &pb.UserStatus{User: "bob", Online: true, Version: 42, Custom: &pb.CustomStatus{Status: 2, Text: "at the doctor"},
		Sessions: []*pb.Session{
			{Session: "b2", Device: &pb.Device{Type: "web"}, Gateway: "gw-2", ConnectedAtMs: ms + 5},
			{Session: "b1", Device: &pb.Device{Type: "ios", Id: "d1"}, Gateway: "gw-1", ConnectedAtMs: ms},
		}}
	for _, n := range []*pb.Notification{
		{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat", Subject: subject, Gateway: "gw-1", TimestampMs: ms,
			Recipients: []*pb.Recipient{{User: "alice", Session: "s1"}, {User: "a/b%c", Session: "s2"}, {User: "carol", Session: "s9"}}},
		{Type: pb.NotificationType_NOTIFICATION_TYPE_SYNC, App: "chat", Subject: &pb.UserStatus{User: "alice", LastSeenMs: ms, Version: 1},
			Recipients: []*pb.Recipient{{User: "alice", Session: "s1"}, {User: "alice", Session: "s1"}}},
		{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat", Subject: &pb.UserStatus{User: "<b>&\u2028",
			Sessions:   []*pb.Session{{Session: "x", ConnectedAtMs: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).UnixMilli()}, {Session: "y", ConnectedAtMs: -1 << 62}},
			LastSeenMs: 1 << 62}, Recipients: []*pb.Recipient{{User: "alice", Session: "s1"}}},
		{Type: 7, App: "chat", Subject: subject, Recipients: []*pb.Recipient{{User: "alice", Session: "s1"}}},
		{App: "chat", Recipients: []*pb.Recipient{{User: "alice", Session: "s1"}}},
		{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: "chat", Subject: &pb.UserStatus{User: strings.Repeat("x", 1<<20)},
			Recipients: []*pb.Recipient{{User: "alice", Session: "s1"}}}, // a 1 MB record
	} {
		b, err := proto.Marshal(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x12\x04\xff\xfe\xfd\xfc")) // an app that is not UTF-8
	f.Add([]byte{})
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, value []byte) {
		conns := map[key]*conn{}
		s.mu.Lock()
		for _, k := range fuzzRecipients {
			conns[k] = newConn(k, "web", "", s.sendBuffer)
			s.conns[k] = conns[k]
		}
		s.mu.Unlock()
		n := new(pb.Notification)
		if err := proto.Unmarshal(value, n); err != nil {
			return // skipped, and counted, by Run
		}
		s.deliver(n)
		typ, known := messageType(n.GetType())
		for k, c := range conns {
			want := 0
			for _, r := range n.GetRecipients() {
				if known && n.GetApp() == k.app && r.GetUser() == k.user && r.GetSession() == k.session {
					want++
				}
			}
			if want > s.sendBuffer {
				if !c.ended() {
					t.Fatalf("%d messages for a buffer of %d did not close session %v", want, s.sendBuffer, k)
				}
				continue
			}
			if c.ended() || len(c.send) != want {
				t.Fatalf("session %v: %d messages queued (ended %v), want %d", k, len(c.send), c.ended(), want)
			}
			for range want {
				m := <-c.send
				if m.typ != typ {
					t.Fatalf("message of type %q for a notification of type %v", m.typ, n.GetType())
				}
				checkMessage(t, m.data, typ, n.GetSubject())
			}
		}
	})
}

// checkMessage fails t unless data is the message of type typ about u.
func checkMessage(t *testing.T, data []byte, typ string, u *pb.UserStatus) {
	t.Helper()
	var got struct {
		Type     string `json:"type"`
		User     string `json:"user"`
		State    string `json:"state"`
		Sessions []struct {
			Session     string `json:"session"`
			Device      string `json:"device"`
			DeviceID    string `json:"device_id"`
			Gateway     string `json:"gateway"`
			ConnectedAt string `json:"connected_at"`
		} `json:"sessions"`
		Custom *struct {
			Status int32  `json:"status"`
			Text   string `json:"text"`
		} `json:"custom"`
		LastSeen *string `json:"last_seen"`
		Version  int64   `json:"version"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("message %s is not JSON: %v", data, err)
	}
	state := map[bool]string{true: "online", false: "offline"}[u.GetOnline()]
	if got.Type != typ || got.User != u.GetUser() || got.State != state || got.Version != u.GetVersion() ||
		got.Sessions == nil || len(got.Sessions) != len(u.GetSessions()) {
		t.Fatalf("message %s about %v", data, u)
	}
	if (got.Custom == nil) != (u.GetCustom() == nil) || got.Custom != nil && (got.Custom.Status != u.GetCustom().GetStatus() || got.Custom.Text != u.GetCustom().GetText()) {
		t.Fatalf("message %s has custom status %v, want %v", data, got.Custom, u.GetCustom())
	}
	if (got.LastSeen == nil) != (u.GetLastSeenMs() == 0) {
		t.Fatalf("message %s has last_seen %v, want %d ms", data, got.LastSeen, u.GetLastSeenMs())
	}
	wantAt := make([]int64, len(u.GetSessions()))
	for i, s := range u.GetSessions() {
		wantAt[i] = s.GetConnectedAtMs()
	}
	slices.Sort(wantAt)
	for i, s := range got.Sessions {
		at, err := time.Parse(time.RFC3339, s.ConnectedAt)
		inRange := wantAt[i] >= time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() && wantAt[i] <= time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
		if inRange && (err != nil || at.UnixMilli() != wantAt[i]) {
			t.Fatalf("message %s: session %d connected at %q, want %d ms (oldest first)", data, i, s.ConnectedAt, wantAt[i])
		}
	}
}

// The query of a handshake either opens a session of valid ids or is
// refused as invalid, never panics.
func FuzzHandshake(f *testing.F) {
	f.Add("chat", "user=alice&session=s1&device=ios&device_id=d1")
	f.Add("chat", "user=a%2Fb%25c&session=s1&device=web")
	f.Add("chat", "user=carol&session=s1") // no device
	f.Add("chat", "user=%ff&session=s1&device=web")
	f.Add("chat", "user=%00&session=s1&device=web")
	f.Add("chat", "user=alice&user=bob&session=s1&device=web")
	f.Add("chat", "user=alice;session=s1&device=web")
	f.Add("chat", "user="+strings.Repeat("x", 1<<20)+"&session=s1&device=web")
	f.Add("bad app", "user=alice&session=s1&device=web")
	f.Add("", "")
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, app, query string) {
		r, err := http.NewRequest(http.MethodGet, "/v1/apps/"+url.PathEscape(app)+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.URL.RawQuery = query
		r.SetPathValue("app", app)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		c, err := s.parse(r, "")
		if err != nil {
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Code != httpapi.CodeInvalid {
				t.Fatalf("query %q refused with %v, want invalid", query, err)
			}
			return
		}
		q := r.URL.Query()
		ev := gateway.Event{Type: gateway.Connect, App: c.app, User: c.user, Session: c.session, Device: c.device, DeviceID: c.deviceID}
		if err := ev.Validate(); err != nil || c.app != app || c.user != q.Get("user") || c.session != q.Get("session") {
			t.Fatalf("query %q of app %q opened %+v: %v", query, app, c.key, err)
		}
	})
}
