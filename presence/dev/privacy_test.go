package dev_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/presence/dev"
)

// privacyOf reads user's privacy setting as the query API has it.
func (p *pipeline) privacyOf(t *testing.T, user string) string {
	t.Helper()
	_, body := p.do(t, "GET", "/v1/apps/chat/users/"+user+"/privacy", "")
	var s struct {
		Invisible bool
		LastSeen  string `json:"last_seen"`
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("privacy of %s: %s: %v", user, body, err)
	}
	if s.Invisible {
		return "invisible," + s.LastSeen
	}
	return "visible," + s.LastSeen
}

// setPrivacy sets user's privacy and waits until the processor has it.
func (p *pipeline) setPrivacy(t *testing.T, user string, invisible bool, lastSeen string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"invisible": invisible, "last_seen": lastSeen})
	if code, _ := p.do(t, "PUT", "/v1/apps/chat/users/"+user+"/privacy", string(body)); code != http.StatusAccepted {
		t.Fatalf("PUT privacy: %d, want 202", code)
	}
	want := "visible," + lastSeen
	if invisible {
		want = "invisible," + lastSeen
	}
	eventually(t, user+"'s privacy applied", func() bool { return p.privacyOf(t, user) == want })
}

// as reads user's status as viewer sees it ("" : without ?viewer=, the
// truth on a server without --auth), by status/query.
func (p *pipeline) as(t *testing.T, viewer, user string) *status {
	t.Helper()
	path := "/v1/apps/chat/status/query"
	if viewer != "" {
		path += "?viewer=" + viewer
	}
	code, body := p.post(t, path, `{"users":["`+user+`"]}`)
	var out struct{ Results []*status }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil || len(out.Results) != 1 {
		t.Fatalf("query as %q: %d %s", viewer, code, body)
	}
	return out.Results[0]
}

// seen is a status's sessions and whether it shows a last seen.
func seen(st *status) string {
	if st == nil {
		return "null"
	}
	if st.LastSeen != nil {
		return sessions(st) + " seen"
	}
	return sessions(st) + " unseen"
}

// Invisible mode and last seen rules end to end, through the real wiring:
// WebSocket clients for alice (two devices), bob (her friend) and dave
// (who subscribes to her, not a friend); lookups, the friends' pull, a
// subscription's answer and a watch, each as its viewer; and all of it
// again after a replay into an empty Redis.
func TestPrivacyEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := dev.Config{DataDir: dir, OfflineGrace: 2 * time.Second}
	p := startDevWith(t, cfg)

	p.do(t, "PUT", "/v1/apps/chat/users/alice/friends/bob", "")
	p.do(t, "PUT", "/v1/apps/chat/users/alice/friends/carol", "")
	bob := p.dial(t, "bob", "bob-1", "ios")
	dave := p.dial(t, "dave", "dave-1", "web")
	p.do(t, "POST", "/v1/apps/chat/users/dave/subscriptions", `{"users":["alice"],"ttl_seconds":600}`)
	eventually(t, "dave's subscription and bob's friendship applied", func() bool {
		p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":0,"text":"`+time.Now().Format(time.RFC3339Nano)+`"}`)
		heard := func(c *client) bool {
			select {
			case m := <-c.msgs:
				return m.User == "alice"
			case <-time.After(time.Second):
				return false
			}
		}
		return heard(bob) && heard(dave)
	})
	p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":1,"text":"hi"}`)
	eventually(t, "bob and dave told the last custom status", func() bool {
		return lastMessage(bob).String() == "presence alice offline 1:hi 0 sessions" &&
			lastMessage(dave).String() == "presence alice offline 1:hi 0 sessions"
	})

	// alice comes online visibly: both are told.
	phone := p.dial(t, "alice", "alice-phone", "android")
	bob.expect(t, "presence alice online 1:hi 1 sessions")
	dave.expect(t, "presence alice online 1:hi 1 sessions")

	// She goes invisible, last seen for friends: bob and dave are told
	// "offline" at once, bob with a last seen (when she hid), dave
	// without; her phone is told the truth.
	p.setPrivacy(t, "alice", true, "friends")
	if m := bob.expect(t, "presence alice offline 1:hi 0 sessions"); m.LastSeen == nil {
		t.Errorf("bob, her friend, is told no last seen")
	}
	if m := dave.expect(t, "presence alice offline 1:hi 0 sessions"); m.LastSeen != nil {
		t.Errorf("dave, not her friend, is told her last seen %v", m.LastSeen)
	}
	phone.expect(t, "sync alice online 1:hi 1 sessions")

	// Her second device: her phone is synced; bob and dave hear nothing
	// (the next thing they hear is her coming back, below).
	web := p.dial(t, "alice", "alice-web", "web")
	phone.expect(t, "sync alice online 1:hi 2 sessions")

	// Every read path, as each viewer.
	for _, tc := range []struct{ viewer, want string }{
		{"bob", "offline: seen"},
		{"carol", "offline: seen"},
		{"dave", "offline: unseen"},
		{"alice", "online:alice-phone,alice-web unseen"},
		{"", "online:alice-phone,alice-web unseen"}, // no --auth, no viewer: the truth
	} {
		if got := seen(p.as(t, tc.viewer, "alice")); got != tc.want {
			t.Errorf("alice as %q sees her: %s, want %s", tc.viewer, got, tc.want)
		}
	}
	_, body := p.do(t, "GET", "/v1/apps/chat/users/alice/status?viewer=dave", "")
	if !strings.Contains(body, `"state":"offline","sessions":[]`) || !strings.Contains(body, `"last_seen":null`) {
		t.Errorf("single status as dave: %s", body)
	}
	_, body = p.do(t, "GET", "/v1/apps/chat/users/carol/friends/status", "")
	if !strings.Contains(body, `"user":"alice","state":"offline","sessions":[]`) || strings.Contains(body, `"last_seen":null`) {
		t.Errorf("carol's pull of her friends: %s", body)
	}
	_, body = p.do(t, "POST", "/v1/apps/chat/users/dave/subscriptions", `{"users":["alice"],"ttl_seconds":600}`)
	if !strings.Contains(body, `"state":"offline","sessions":[]`) || !strings.Contains(body, `"last_seen":null`) {
		t.Errorf("dave's subscription answer: %s", body)
	}

	// A watch as bob: its first answer shows her offline; her web
	// session leaving wakes it with nothing of her devices.
	code, first := p.watchAs(t, "bob", "")
	if code != http.StatusOK || sessions(first.Results[0]) != "offline:" {
		t.Fatalf("bob's first watch: %d %+v", code, first.Results)
	}
	woken := make(chan watch, 1)
	go func() {
		_, w := p.watchAs(t, "bob", first.Cursor)
		woken <- w
	}()
	_, mine := p.watchAs(t, "alice", "")
	web.close()
	phone.expect(t, "sync alice online 1:hi 1 sessions")
	for w := <-woken; ; {
		for _, st := range w.Changes {
			if sessions(st) != "offline:" {
				t.Fatalf("bob's watch shows %s", sessions(st))
			}
		}
		if len(w.Changes) > 0 {
			break
		}
		_, w = p.watchAs(t, "bob", w.Cursor)
	}
	for w := mine; ; {
		_, w = p.watchAs(t, "alice", w.Cursor)
		if len(w.Changes) > 0 && sessions(w.Changes[len(w.Changes)-1]) == "online:alice-phone" {
			break
		}
	}

	// Visible again: bob and dave are told she is online, on one device
	// (the web session came and went unseen).
	p.setPrivacy(t, "alice", false, "everyone")
	bob.expect(t, "presence alice online 1:hi 1 sessions")
	dave.expect(t, "presence alice online 1:hi 1 sessions")
	phone.expect(t, "sync alice online 1:hi 1 sessions")

	// Last seen rules of an offline user: erin, bob's friend.
	p.do(t, "PUT", "/v1/apps/chat/users/erin/friends/bob", "")
	p.post(t, "/v1/apps/chat/events", events(connect("erin", "e1")))
	p.post(t, "/v1/apps/chat/events", events(disconnect("erin", "e1")))
	eventually(t, "erin offline", func() bool { return seen(p.as(t, "", "erin")) == "offline: seen" })
	p.setPrivacy(t, "erin", false, "friends")
	rules := func(when string, want map[string]string) {
		t.Helper()
		for viewer, w := range want {
			if got := seen(p.as(t, viewer, "erin")); got != w {
				t.Errorf("%s: erin as %q: %s, want %s", when, viewer, got, w)
			}
		}
	}
	rules("friends", map[string]string{"bob": "offline: seen", "dave": "offline: unseen", "erin": "offline: seen", "": "offline: seen"})
	p.setPrivacy(t, "erin", false, "nobody")
	rules("nobody", map[string]string{"bob": "offline: unseen", "erin": "offline: seen", "": "offline: seen"})

	// alice invisible again, then a replay into an empty Redis (the
	// embedded one starts empty on every start).
	p.setPrivacy(t, "alice", true, "nobody")
	bob.expectOf(t, "alice", "presence alice offline 1:hi 0 sessions") // after erin's news, if any
	for _, c := range []*client{bob, dave, phone} {
		c.close()
	}
	p.Stop(t)
	p = startDevWith(t, cfg)
	if got := p.privacyOf(t, "alice"); got != "invisible,nobody" {
		t.Fatalf("after the replay, alice's privacy: %s", got)
	}
	rules("after the replay", map[string]string{"bob": "offline: unseen", "erin": "offline: seen", "": "offline: seen"})
	bob = p.dial(t, "bob", "bob-2", "ios")
	phone = p.dial(t, "alice", "alice-phone-2", "android")
	eventually(t, "alice online, to herself", func() bool { return seen(p.as(t, "alice", "alice")) == "online:alice-phone-2 unseen" })
	if got := seen(p.as(t, "bob", "alice")); got != "offline: unseen" {
		t.Errorf("after the replay, bob sees alice %s", got)
	}
	p.setPrivacy(t, "alice", false, "everyone")
	bob.expect(t, "presence alice online 1:hi 1 sessions")
}

// expectOf checks the next notification about user, skipping those of
// others.
func (c *client) expectOf(t *testing.T, user, want string) {
	t.Helper()
	for {
		if m := c.next(t); m.User == user {
			if m.String() != want {
				t.Fatalf("notification: got %q, want %q", m, want)
			}
			return
		}
	}
}

// lastMessage returns the last notification a client has received so
// far, waiting up to a second for one.
func lastMessage(c *client) message {
	var last message
	timeout := time.After(time.Second)
	for {
		select {
		case m := <-c.msgs:
			last = m
		case <-timeout:
			return last
		}
	}
}

// watchAs watches alice as viewer.
func (p *pipeline) watchAs(t *testing.T, viewer, cursor string) (int, watch) {
	t.Helper()
	req := map[string]any{"users": []string{"alice"}, "timeout_ms": 30000}
	if cursor != "" {
		req["cursor"] = cursor
	}
	body, _ := json.Marshal(req)
	code, answer := p.post(t, "/v1/apps/chat/status/watch?viewer="+viewer, string(body))
	var w watch
	if code != http.StatusOK || json.Unmarshal([]byte(answer), &w) != nil {
		t.Fatalf("watch as %s: %d %s", viewer, code, answer)
	}
	return code, w
}
