package dev_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presence-im/presence/presence/dev"
)

// startDevWith runs the real dev wiring with cfg on free loopback ports
// and waits for its ready signal.
func startDevWith(t *testing.T, cfg dev.Config) *pipeline {
	t.Helper()
	ready := make(chan dev.Addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{stop: cancel, done: make(chan error, 1)}
	cfg.KafkaAddr, cfg.QueryAddr, cfg.GatewayAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Ready = func(a dev.Addrs) { ready <- a }
	go func() { p.done <- dev.Run(ctx, cfg) }()
	select {
	case p.Addrs = <-ready:
	case err := <-p.done:
		t.Fatalf("presence dev stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("presence dev not ready after 60s")
	}
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// do sends a request with a JSON body to the query API.
func (p *pipeline) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.Query+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, string(b)
}

// message is a notification as a WebSocket client reads it.
type message struct {
	Type     string
	User     string
	State    string
	Sessions []struct{ Session, Device, Activity string }
	Custom   *struct {
		Status int
		Text   string
	}
	LastSeen *time.Time `json:"last_seen"`
	Version  int64
	Activity *string
}

func (m message) String() string {
	custom := "-"
	if m.Custom != nil {
		custom = fmt.Sprintf("%d:%s", m.Custom.Status, m.Custom.Text)
	}
	return fmt.Sprintf("%s %s %s %s %d sessions", m.Type, m.User, m.State, custom, len(m.Sessions))
}

// client is a WebSocket client of the gateway: one session of a user.
type client struct {
	conn *websocket.Conn
	msgs chan message
	// versions is the latest version seen per subject.
	versions map[string]int64
}

func (p *pipeline) dial(t *testing.T, user, session, device string) *client {
	t.Helper()
	return dial(t, p.Gateway, user, session, device)
}

// dial opens a session of user on the gateway at addr.
func dial(t *testing.T, addr, user, session, device string) *client {
	t.Helper()
	q := url.Values{"user": {user}, "session": {session}, "device": {device}, "device_id": {device + "-of-" + user}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+addr+"/v1/apps/chat/ws?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("dialing as %s/%s: %v (%v)", user, session, err, resp)
	}
	c := &client{conn: conn, msgs: make(chan message, 100), versions: map[string]int64{}}
	go func() {
		defer close(c.msgs)
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var m message
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("notification %s: %v", b, err)
				return
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	return c
}

// next returns the next notification, which must arrive within 20s, and
// checks that its version is above the last one of its subject.
func (c *client) next(t *testing.T) message {
	t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			t.Fatal("socket closed while waiting for a notification")
		}
		if seen, ok := c.versions[m.User]; ok && m.Version <= seen {
			t.Errorf("%v: version %d is not above %d, seen before", m, m.Version, seen)
		}
		c.versions[m.User] = m.Version
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no notification within 20s")
		return message{}
	}
}

// expect checks the next notification, in the form of message.String.
func (c *client) expect(t *testing.T, want string) message {
	t.Helper()
	m := c.next(t)
	if m.String() != want {
		t.Fatalf("notification: got %q, want %q", m, want)
	}
	return m
}

func (c *client) close() { c.conn.Close(websocket.StatusNormalClosure, "bye") }

// The push side end to end, through the real wiring: WebSocket clients on
// the gateway server, friends, custom status and subscriptions through the
// query API.
func TestNotificationsEndToEnd(t *testing.T) {
	grace := 2 * time.Second
	dir := t.TempDir()
	p := startDevWith(t, dev.Config{DataDir: dir, OfflineGrace: grace})

	// bob is online; he and alice become friends, and so do alice and
	// carol, who is offline.
	bob := p.dial(t, "bob", "bob-phone", "ios")
	p.do(t, "PUT", "/v1/apps/chat/users/alice/friends/bob", "")
	p.do(t, "PUT", "/v1/apps/chat/users/alice/friends/carol", "")
	eventually(t, "bob is alice's friend and online", func() bool {
		_, body := p.do(t, "GET", "/v1/apps/chat/users/alice/friends/status", "")
		return strings.Contains(body, `"user":"bob","state":"online"`)
	})

	// alice comes online: bob is told.
	alice := p.dial(t, "alice", "alice-phone", "android")
	bob.expect(t, "presence alice online - 1 sessions")

	// Her second device: her phone is synced, bob is told.
	aliceWeb := p.dial(t, "alice", "alice-web", "web")
	alice.expect(t, "sync alice online - 2 sessions")
	bob.expect(t, "presence alice online - 2 sessions")

	// A custom status: bob and both her sessions are told.
	p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":2,"text":"in a meeting"}`)
	bob.expect(t, "presence alice online 2:in a meeting 2 sessions")
	alice.expect(t, "sync alice online 2:in a meeting 2 sessions")
	aliceWeb.expect(t, "sync alice online 2:in a meeting 2 sessions")

	// dave watches alice for a short while.
	dave := p.dial(t, "dave", "dave-1", "web")
	_, body := p.do(t, "POST", "/v1/apps/chat/users/dave/subscriptions", `{"users":["alice","nobody"],"ttl_seconds":3}`)
	var sub struct {
		Results   []*status
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(body), &sub); err != nil || len(sub.Results) != 2 || sub.Results[0] == nil || sub.Results[0].State != "online" || sub.Results[1] != nil {
		t.Fatalf("subscribing: %s, %v", body, err)
	}
	eventually(t, "the subscription is applied", func() bool {
		// A change dave sees once the subscription is in Redis; the
		// ones before it reach him or not, depending on timing.
		p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":3,"text":"`+time.Now().Format(time.RFC3339Nano)+`"}`)
		bob.next(t)
		alice.next(t)
		aliceWeb.next(t)
		select {
		case m := <-dave.msgs:
			return m.Type == "presence" && m.User == "alice"
		case <-time.After(time.Second):
			return false
		}
	})

	// alice's web session drops and comes back within the grace period:
	// only the change of devices is news, there is no offline/online pair.
	aliceWeb.close()
	bob.expect(t, "presence alice online 3:"+lastText(t, p, "alice")+" 1 sessions")
	alice.expect(t, "sync alice online 3:"+lastText(t, p, "alice")+" 1 sessions")
	drain(dave)
	alice.close()
	eventually(t, "alice's phone is gone", func() bool {
		st := p.query(t, "alice")[0]
		return st != nil && len(st.Sessions) == 0
	})
	alice = p.dial(t, "alice", "alice-phone-2", "android")
	p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":4,"text":"back"}`)
	bob.expect(t, "presence alice online 4:back 1 sessions")
	alice.expect(t, "sync alice online 4:back 1 sessions")

	// Once the subscription has expired, dave hears nothing more of alice:
	// the next thing he hears is of erin, whom he watches from now on.
	time.Sleep(time.Until(sub.ExpiresAt))
	drain(dave)
	p.do(t, "POST", "/v1/apps/chat/users/dave/subscriptions", `{"users":["erin"],"ttl_seconds":600}`)
	p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":5,"text":"after"}`)
	bob.expect(t, "presence alice online 5:after 1 sessions")
	eventually(t, "dave hears of erin", func() bool {
		p.do(t, "PUT", "/v1/apps/chat/users/erin/custom-status", `{"status":1,"text":"`+time.Now().Format(time.RFC3339Nano)+`"}`)
		select {
		case m := <-dave.msgs:
			if m.User == "alice" {
				t.Fatalf("dave heard of alice after his subscription expired: %v", m)
			}
			return m.User == "erin"
		case <-time.After(time.Second):
			return false
		}
	})

	// alice leaves: after the grace period, bob is told she is offline.
	alice.close()
	m := bob.expect(t, "presence alice offline 5:after 0 sessions")
	if m.LastSeen == nil {
		t.Error("offline notification without last_seen")
	}

	// carol, offline all along, got nothing: she pulls what she missed.
	carol := p.dial(t, "carol", "carol-1", "ios")
	_, body = p.do(t, "GET", "/v1/apps/chat/users/carol/friends/status", "")
	if !strings.Contains(body, `"user":"alice","state":"offline"`) || !strings.Contains(body, `"text":"after"`) {
		t.Fatalf("carol pulls her friends: %s", body)
	}
	p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":6,"text":"fence"}`)
	carol.expect(t, "presence alice offline 6:fence 0 sessions")

	// Friends, custom status and subscriptions survive a replay into an
	// empty Redis: the embedded one starts empty on every start.
	bob.close()
	carol.close()
	dave.close()
	p.Stop(t)
	p = startDevWith(t, dev.Config{DataDir: dir, OfflineGrace: grace})
	_, body = p.do(t, "GET", "/v1/apps/chat/users/carol/friends/status", "")
	if !strings.Contains(body, `"user":"alice"`) || !strings.Contains(body, `"text":"fence"`) {
		t.Fatalf("after the replay, carol's friends: %s", body)
	}
	dave = p.dial(t, "dave", "dave-2", "web")
	p.do(t, "PUT", "/v1/apps/chat/users/erin/custom-status", `{"status":2,"text":"replayed"}`)
	dave.expect(t, "presence erin offline 2:replayed 0 sessions")
}

// lastText is the text of user's custom status now.
func lastText(t *testing.T, p *pipeline, user string) string {
	t.Helper()
	_, body := p.do(t, "GET", "/v1/apps/chat/users/"+user+"/status", "")
	var st struct{ Custom struct{ Text string } }
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return st.Custom.Text
}

// drain drops the notifications a client has received so far.
func drain(c *client) {
	for {
		select {
		case <-c.msgs:
		default:
			return
		}
	}
}
