package dev_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// watch is the answer of a watch.
type watch struct {
	Results []*status
	Changes []*status
	Cursor  string
}

// news drops from a watch's statuses those a client already has, as a
// client does: a change may come twice (its version, an offset, which may
// be 0, tells), and the first answer's statuses may already show one that
// follows.
func (w watch) news(known map[string]int64) []*status {
	var out []*status
	for _, st := range append(w.Results, w.Changes...) {
		if st == nil {
			continue
		}
		if v, ok := known[st.User]; !ok || st.Version > v {
			known[st.User] = st.Version
			out = append(out, st)
		}
	}
	return out
}

func (p *pipeline) watch(t *testing.T, cursor string, users ...string) (int, watch) {
	t.Helper()
	req := map[string]any{"users": users, "timeout_ms": 30000}
	if cursor != "" {
		req["cursor"] = cursor
	}
	body, _ := json.Marshal(req)
	code, answer := p.post(t, "/v1/apps/chat/status/watch", string(body))
	var w watch
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(answer), &w); err != nil || w.Cursor == "" {
			t.Fatalf("watch answer %s: %v", answer, err)
		}
	} else if !strings.Contains(answer, `"error"`) {
		t.Fatalf("watch answered %d without the error envelope: %s", code, answer)
	}
	return code, w
}

// A watch through the whole pipeline: a gateway's connect wakes it with
// the user's new status; a change made while no watch waits comes at
// once from the cursor; after a restart whose Redis is rebuilt from the
// topics, the old cursor is expired, and a new one works.
func TestWatchEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir, "")
	if code, body := p.post(t, "/v1/apps/chat/events", events(connect("bob", "web"))); code != http.StatusAccepted {
		t.Fatalf("events: %d %s", code, body)
	}
	eventually(t, "bob online", func() bool { return sessions(p.query(t, "bob")[0]) == "online:web" })
	code, first := p.watch(t, "", "alice", "bob")
	if code != http.StatusOK || first.Results[0] != nil || sessions(first.Results[1]) != "online:web" {
		t.Fatalf("first watch: %d %+v", code, first)
	}
	known := map[string]int64{}
	first.news(known)

	woken := make(chan watch)
	go func() {
		_, w := p.watch(t, first.Cursor, "alice", "bob")
		woken <- w
	}()
	if code, body := p.post(t, "/v1/apps/chat/events", events(connect("alice", "phone"))); code != http.StatusAccepted {
		t.Fatalf("events: %d %s", code, body)
	}
	w := <-woken
	news := w.news(known)
	for len(news) == 0 { // bob's connect again, read after the first answer
		_, w = p.watch(t, w.Cursor, "alice", "bob")
		news = w.news(known)
	}
	if len(news) != 1 || news[0].User != "alice" || sessions(news[0]) != "online:phone" {
		t.Fatalf("woken with %d news, want alice online on her phone", len(news))
	}

	// While nobody watches: the next watch from the cursor has it.
	p.post(t, "/v1/apps/chat/events", events(connect("bob", "tablet")))
	eventually(t, "bob on two devices", func() bool { return sessions(p.query(t, "bob")[0]) == "online:web,tablet" })
	_, later := p.watch(t, w.Cursor, "alice", "bob")
	if news := later.news(known); len(news) != 1 || sessions(news[0]) != "online:web,tablet" {
		t.Fatalf("from the cursor: %+v, want bob on two devices", news)
	}

	// A restart rebuilds the embedded Redis from the topics: the cursor
	// is of the state before, and is expired.
	p.Stop(t)
	p = startDev(t, dir, "")
	if code, _ := p.watch(t, later.Cursor, "alice", "bob"); code != http.StatusGone {
		t.Fatalf("a cursor of before the rebuild: %d, want 410", code)
	}
	code, again := p.watch(t, "", "alice", "bob")
	if code != http.StatusOK || sessions(again.Results[0]) != "online:phone" || sessions(again.Results[1]) != "online:web,tablet" {
		t.Fatalf("first watch after the rebuild: %d %+v", code, again.Results)
	}
	again.news(known)
	go func() {
		_, w := p.watch(t, again.Cursor, "alice")
		woken <- w
	}()
	p.post(t, "/v1/apps/chat/events", events(connect("alice", "laptop")))
	if news := (<-woken).news(known); len(news) != 1 || sessions(news[0]) != "online:phone,laptop" {
		t.Fatalf("after the rebuild, woken with %+v", news)
	}
}
