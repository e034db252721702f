package dev_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presence-im/presence/presence/dev"
)

// report sends the client's activity on its socket.
func (c *client) report(t *testing.T, activity string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"activity","activity":"`+activity+`"}`)); err != nil {
		t.Fatal(err)
	}
}

// activityOf is a status's aggregate and each session's activity:
// "idle: phone=idle,web=active", "null:" offline.
func activityOf(agg *string, sessions []struct{ Session, Activity string }) string {
	a := "null"
	if agg != nil {
		a = *agg
	}
	var each []string
	for _, s := range sessions {
		each = append(each, s.Session+"="+s.Activity)
	}
	return a + ": " + strings.Join(each, ",")
}

// messageActivity is activityOf a notification.
func messageActivity(m message) string {
	sessions := make([]struct{ Session, Activity string }, len(m.Sessions))
	for i, s := range m.Sessions {
		sessions[i].Session, sessions[i].Activity = s.Session, s.Activity
	}
	return activityOf(m.Activity, sessions)
}

// expectActivity checks the next notification: its type, user, state
// and activityOf.
func (c *client) expectActivity(t *testing.T, want string) {
	t.Helper()
	m := c.next(t)
	if got := m.Type + " " + m.User + " " + m.State + " " + messageActivity(m); got != want {
		t.Fatalf("notification: got %q, want %q", got, want)
	}
}

// activityStatus is a Status as the activity test reads it.
type activityStatus struct {
	Sessions []struct{ Session, Activity string }
	Activity *string
}

// lookupActivity is activityOf user's status, by a lookup.
func (p *pipeline) lookupActivity(t *testing.T, user string) string {
	t.Helper()
	_, body := p.do(t, "GET", "/v1/apps/chat/users/"+user+"/status", "")
	var st activityStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status of %s: %s: %v", user, body, err)
	}
	return activityOf(st.Activity, st.Sessions)
}

// absorbed reads presence_processor_announcements_total{result="absorbed"}:
// grace checks that found the user back as the audience was told.
func (p *pipeline) absorbed(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `presence_processor_announcements_total{result="absorbed"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

func activityEvent(user, session, activity string) string {
	return `{"type":"activity","user":"` + user + `","session":"` + session + `","device":"ios","device_id":"d-` + session + `","activity":"` + activity + `"}`
}

// Activity per device end to end, through the real wiring: alice reports
// her devices' activity on their WebSockets; bob, her friend, is told
// only the aggregate's changes (toward less present after the grace,
// toward more present at once), her other device is synced with them;
// lookups show each session's activity. carol, through the HTTP ingest,
// idle and back within the grace, says nothing (the grace check absorbs
// it); a watch sees her activity; and her activity survives a replay into
// an empty Redis.
func TestActivityEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := dev.Config{DataDir: dir, OfflineGrace: 2 * time.Second, MetricsAddr: "127.0.0.1:0"}
	p := startDevWith(t, cfg)
	p.do(t, "PUT", "/v1/apps/chat/users/alice/friends/bob", "")
	p.do(t, "PUT", "/v1/apps/chat/users/carol/friends/bob", "")
	bob := p.dial(t, "bob", "bob-1", "ios")
	pulse := 0
	eventually(t, "bob's friendships applied", func() bool {
		pulse++
		text := fmt.Sprint("hi", pulse)
		for _, u := range []string{"alice", "carol"} {
			p.do(t, "PUT", "/v1/apps/chat/users/"+u+"/custom-status", `{"status":1,"text":"`+text+`"}`)
		}
		heard := map[string]bool{}
		timeout := time.After(time.Second)
		for !heard["alice"] || !heard["carol"] {
			select {
			case m := <-bob.msgs:
				heard[m.User] = heard[m.User] || m.Custom != nil && m.Custom.Text == text
			case <-timeout:
				return false
			}
		}
		return true
	})
	lastMessage(bob) // the pulses' news

	phone := p.dial(t, "alice", "phone", "android")
	bob.expectActivity(t, "presence alice online active: phone=active")
	web := p.dial(t, "alice", "web", "web")
	bob.expectActivity(t, "presence alice online active: phone=active,web=active")
	phone.expectActivity(t, "sync alice online active: phone=active,web=active")

	// One device idle: the aggregate is still active, no news; the
	// session's own activity shows in lookups.
	phone.report(t, "idle")
	eventually(t, "the phone idle in lookups", func() bool {
		return p.lookupActivity(t, "alice") == "active: phone=idle,web=active"
	})
	// Both idle: the aggregate is idle, told after the grace (the next
	// news bob and the phone hear: the phone's own idle was none).
	web.report(t, "idle")
	bob.expectActivity(t, "presence alice online idle: phone=idle,web=idle")
	phone.expectActivity(t, "sync alice online idle: phone=idle,web=idle")
	// Active again: told at once.
	web.report(t, "active")
	bob.expectActivity(t, "presence alice online active: phone=idle,web=active")
	phone.expectActivity(t, "sync alice online active: phone=idle,web=active")

	// carol, on an external gateway: idle and back within the grace
	// says nothing, which the grace check absorbs.
	if code, body := p.post(t, "/v1/apps/chat/events", events(connect("carol", "c1"))); code != http.StatusAccepted {
		t.Fatalf("carol's connect: %d %s", code, body)
	}
	bob.expectActivity(t, "presence carol online active: c1=active")
	before := p.absorbed(t)
	p.post(t, "/v1/apps/chat/events", events(activityEvent("carol", "c1", "idle")))
	p.post(t, "/v1/apps/chat/events", events(activityEvent("carol", "c1", "active")))
	eventually(t, "carol's idle absorbed by the grace check", func() bool { return p.absorbed(t) > before })

	// A watch of carol: her going background wakes it with her activity.
	code, first := p.watch(t, "", "carol")
	if code != http.StatusOK {
		t.Fatalf("watch: %d", code)
	}
	woken := make(chan string, 1)
	go func() {
		_, answer := p.post(t, "/v1/apps/chat/status/watch", `{"users":["carol"],"cursor":"`+first.Cursor+`","timeout_ms":30000}`)
		woken <- answer
	}()
	p.post(t, "/v1/apps/chat/events", events(activityEvent("carol", "c1", "background")))
	var changed struct{ Changes []activityStatus }
	if answer := <-woken; json.Unmarshal([]byte(answer), &changed) != nil || len(changed.Changes) != 1 ||
		activityOf(changed.Changes[0].Activity, changed.Changes[0].Sessions) != "background: c1=background" {
		t.Errorf("the watch's change: %s, want carol's session and aggregate background", answer)
	}
	// bob's next news of carol is her background, after the grace: her
	// idle never was.
	bob.expectActivity(t, "presence carol online background: c1=background")

	// A replay into an empty Redis (the embedded one starts empty):
	// carol, whose session's key's latest record is her activity, is
	// online and in the background; alice's sessions ended with the
	// gateway: offline, no activity.
	for _, c := range []*client{bob, phone, web} {
		c.close()
	}
	p.Stop(t)
	p = startDevWith(t, cfg)
	eventually(t, "carol rebuilt", func() bool { return p.lookupActivity(t, "carol") == "background: c1=background" })
	if got := p.lookupActivity(t, "alice"); got != "null: " {
		t.Errorf("alice after the replay: %s, want offline, no activity", got)
	}
}
