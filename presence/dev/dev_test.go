package dev_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/presence/dev"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// pipeline is a running `presence dev`.
type pipeline struct {
	dev.Addrs
	stop func()
	done chan error
}

// startDev runs the real dev wiring on free loopback ports and waits for
// its ready signal.
func startDev(t *testing.T, dataDir, redisURL string) *pipeline {
	t.Helper()
	return startDevWith(t, dev.Config{DataDir: dataDir, RedisURL: redisURL})
}

// Stop stops the pipeline as SIGINT does and checks it ends cleanly.
func (p *pipeline) Stop(t *testing.T) {
	if p.stop == nil {
		return
	}
	p.stop()
	p.stop = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("presence dev: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("presence dev did not stop within 30s")
	}
}

func (p *pipeline) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	host := p.Query
	if strings.HasSuffix(path, "/events") || strings.HasSuffix(path, "/heartbeat") {
		host = p.Gateway
	}
	resp, err := http.Post("http://"+host+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type status struct {
	User     string
	State    string
	Sessions []struct{ Session string }
	LastSeen *time.Time `json:"last_seen"`
	Version  int64
}

func (p *pipeline) query(t *testing.T, users ...string) []*status {
	t.Helper()
	ids, _ := json.Marshal(users)
	code, body := p.post(t, "/v1/apps/chat/status/query", `{"users":`+string(ids)+`}`)
	if code != http.StatusOK {
		t.Fatalf("query: %d %s", code, body)
	}
	var out struct{ Results []*status }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out.Results
}

// eventually polls cond until it holds, at most 30 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func events(evs ...string) string {
	return `{"gateway":"gw-1","epoch":"boot-1","events":[` + strings.Join(evs, ",") + `]}`
}

func connect(user, session string) string {
	return fmt.Sprintf(`{"type":"connect","user":%q,"session":%q,"device":"ios","device_id":"d-%s"}`, user, session, session)
}

func disconnect(user, session string) string {
	return fmt.Sprintf(`{"type":"disconnect","user":%q,"session":%q}`, user, session)
}

func sessions(st *status) string {
	if st == nil {
		return "null"
	}
	var ids []string
	for _, s := range st.Sessions {
		ids = append(ids, s.Session)
	}
	return st.State + ":" + strings.Join(ids, ",")
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir, "")

	if code, body := p.post(t, "/v1/apps/chat/events", events(connect("alice", "phone"), connect("alice", "laptop"), connect("bob", "web"))); code != http.StatusAccepted {
		t.Fatalf("events: %d %s", code, body)
	}
	eventually(t, "alice on two devices, bob online", func() bool {
		r := p.query(t, "alice", "bob", "carol")
		return sessions(r[0]) == "online:laptop,phone" && sessions(r[1]) == "online:web" && r[2] == nil
	})

	p.post(t, "/v1/apps/chat/events", events(disconnect("alice", "phone"), disconnect("bob", "web")))
	eventually(t, "alice on one device, bob offline", func() bool {
		r := p.query(t, "alice", "bob")
		return sessions(r[0]) == "online:laptop" && sessions(r[1]) == "offline:" && r[1].LastSeen != nil
	})

	// A malformed batch is refused whole: its valid first event is not
	// written either.
	before := endOffsets(t, p.Brokers)
	code, body := p.post(t, "/v1/apps/chat/events", events(connect("dave", "s1"), `{"type":"connect","user":"","session":"s2","device":"ios"}`))
	if code != http.StatusBadRequest || !strings.Contains(body, `"invalid"`) {
		t.Fatalf("malformed batch: %d %s", code, body)
	}
	if after := endOffsets(t, p.Brokers); after != before {
		t.Fatalf("a malformed batch wrote records: %d before, %d after", before, after)
	}

	// The state survives a restart on the same data dir: the embedded Redis
	// starts empty and is rebuilt from the persisted topics before ready.
	p.Stop(t)
	p = startDev(t, dir, "")
	r := p.query(t, "alice", "bob", "dave")
	if sessions(r[0]) != "online:laptop" || sessions(r[1]) != "offline:" || r[2] != nil {
		t.Fatalf("after restart: alice %s, bob %s, dave %s", sessions(r[0]), sessions(r[1]), sessions(r[2]))
	}
}

// With an external Redis, a restart resumes from the checkpoints in Redis
// and picks up records written while it was down.
func TestRestartWithExternalRedis(t *testing.T) {
	dir := t.TempDir()
	url := redistest.URL(t) + "/3"
	redistest.Flush(t, url)
	p := startDev(t, dir, url)
	p.post(t, "/v1/apps/chat/events", events(connect("erin", "s1")))
	eventually(t, "erin online", func() bool { return sessions(p.query(t, "erin")[0]) == "online:s1" })
	p.Stop(t)

	p = startDev(t, dir, url)
	if got := sessions(p.query(t, "erin")[0]); got != "online:s1" {
		t.Fatalf("erin after restart: %s", got)
	}
	p.post(t, "/v1/apps/chat/events", events(disconnect("erin", "s1")))
	eventually(t, "erin offline", func() bool { return sessions(p.query(t, "erin")[0]) == "offline:" })
}

// TestThroughput pushes a stream of events through the gateway server and
// reports how fast the pipeline applies them, with the embedded Redis and
// with a real one. It asserts the end state, never the speed.
func TestThroughput(t *testing.T) {
	t.Run("embedded redis", func(t *testing.T) { throughput(t, "") })
	t.Run("real redis", func(t *testing.T) {
		url := redistest.URL(t) + "/4"
		redistest.Flush(t, url)
		throughput(t, url)
	})
}

func throughput(t *testing.T, redisURL string) {
	p := startDev(t, t.TempDir(), redisURL)
	const users, batch, batches = 2000, 500, 40
	start := time.Now()
	for b := range batches {
		evs := make([]string, batch)
		for i := range evs {
			n := b*batch + i
			user := fmt.Sprintf("load-%d", n%users)
			if (n/users)%2 == 0 {
				evs[i] = connect(user, "s")
			} else {
				evs[i] = disconnect(user, "s")
			}
		}
		if code, body := p.post(t, "/v1/apps/chat/events", events(evs...)); code != http.StatusAccepted {
			t.Fatalf("batch %d: %d %s", b, code, body)
		}
	}
	published := time.Since(start)
	// 20000 events over 2000 users: each user connected 5 times and
	// disconnected 5 times, ending offline.
	allOffline := func() bool {
		for from := 0; from < users; from += 500 {
			ids := make([]string, 0, 500)
			for i := from; i < from+500; i++ {
				ids = append(ids, fmt.Sprintf("load-%d", i))
			}
			for _, st := range p.query(t, ids...) {
				if sessions(st) != "offline:" {
					return false
				}
			}
		}
		return true
	}
	eventually(t, "every user offline", allOffline)
	applied := time.Since(start)
	n := float64(batch * batches)
	t.Logf("%d events: published in %s (%.0f/s), applied in %s (%.0f/s)", batch*batches,
		published.Round(time.Millisecond), n/published.Seconds(), applied.Round(time.Millisecond), n/applied.Seconds())
}

func endOffsets(t *testing.T, brokers []string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), schemas.SessionsTopic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total
}
