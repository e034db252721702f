package webhook_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/queryapi/webhook"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
)

const (
	chatSecret  = "chat-webhook-secret-0001"
	chatRotated = "chat-webhook-secret-0002"
	gamesSecret = "games-webhook-secret-001"
)

// kafka is an in-process Kafka holding presence.changes, and a producer
// placing records as the processor does.
type kafka struct {
	t       *testing.T
	brokers []string
	cl      *kgo.Client
}

// newKafka's presence.changes has partitions partitions.
func newKafka(t *testing.T, partitions int32) *kafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.ChangesTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(records.Partitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &kafka{t: t, brokers: c.ListenAddrs(), cl: cl}
}

// change writes the change of app's user to version (online when odd).
func (k *kafka) change(app, user string, version int64) {
	k.t.Helper()
	r, err := records.Encode(schemas.ChangesTopic, schemas.UserKey(app, user), &pb.StatusChange{App: app,
		Status:      &pb.UserStatus{User: user, Online: version%2 == 1, Version: version},
		TimestampMs: time.Now().UnixMilli()}, time.Time{})
	if err != nil {
		k.t.Fatal(err)
	}
	if _, err := records.Produce(context.Background(), k.cl, r); err != nil {
		k.t.Fatal(err)
	}
}

// changes writes versions 1..n of each of users of app, interleaved, and
// returns them by user.
func (k *kafka) changes(app string, users, n int) map[string][]int64 {
	want := map[string][]int64{}
	for v := int64(1); v <= int64(n); v++ {
		for u := range users {
			user := fmt.Sprintf("%s-u%d", app, u)
			k.change(app, user, v)
			want[user] = append(want[user], v)
		}
	}
	return want
}

// hooks writes an auth file whose apps have the webhooks given (app ->
// url, secret) and loads it.
func hooks(t *testing.T, f *authtest.Fixture, byApp map[string][2]string) {
	t.Helper()
	for app, entry := range f.Apps {
		e := entry.(map[string]any)
		delete(e, "webhooks")
		if h, ok := byApp[app]; ok {
			e["webhooks"] = []any{map[string]any{"url": h[0], "secret": h[1]}}
		}
	}
	f.Write()
}

// start runs a Sender of cfg until the test ends.
func start(t *testing.T, cfg webhook.Config) {
	t.Helper()
	s, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// count is presence_webhook_deliveries_total{app,outcome} of reg.
func count(t *testing.T, reg *prometheus.Registry, app, outcome string) int {
	t.Helper()
	return int(value(t, reg, "presence_webhook_deliveries_total", map[string]string{"app": app, "outcome": outcome}))
}

// value is the value of the metric name of reg whose labels are labels,
// 0 when there is none.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// eventually polls cond until it holds (a guard of a minute, not a timing).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after a minute", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDelivery: an endpoint that fails a third of its requests with 500s
// and hangs up on others gets every change of its app at least once,
// each body signed with its secret, and each user's versions never going
// back; the retried count is the failures it answered. Meanwhile the
// endpoint of another app hangs on every request: it holds at most
// InFlight requests and takes nothing from the first one. Opened, it
// gets its own changes, in order too.
func TestDelivery(t *testing.T) {
	k := newKafka(t, 1)
	chat := newReceiver(t, func(n int, _ string, _ int64) answer {
		switch {
		case n%3 == 0:
			return fail
		case n%7 == 0:
			return hangUp
		}
		return accept
	}, chatSecret)
	games := newReceiver(t, func(int, string, int64) answer { return hang }, gamesSecret)
	f := authtest.New(t)
	hooks(t, f, map[string][2]string{"chat": {chat.srv.URL + "/hook", chatSecret}, "games": {games.srv.URL, gamesSecret}})
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	// Written before the Sender starts, in one partition, games' changes
	// come in one batch of more users than InFlight.
	wantGames := k.changes("games", 6, 3)
	reg := prometheus.NewRegistry()
	const inFlight = 3
	start(t, webhook.Config{Brokers: k.brokers, Webhooks: a, Registerer: reg, InFlight: inFlight,
		Timeout: time.Minute, MaxAttempts: 1000, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxBatch: 16})
	wantChat := k.changes("chat", 8, 10)
	k.changes("other", 3, 2) // an app without webhooks

	chat.wait("chat's changes delivered", all(wantChat))
	chat.checkOrder()
	eventually(t, "delivered counted", func() bool { return count(t, reg, "chat", "delivered") == 80 })
	chat.mu.Lock()
	if got := count(t, reg, "chat", "retried"); got != chat.failed || got == 0 {
		t.Errorf("chat retried %d, want the %d failures it answered", got, chat.failed)
	}
	chat.mu.Unlock()
	if n := count(t, reg, "chat", "failed"); n != 0 {
		t.Errorf("chat: %d given up", n)
	}

	eventually(t, "the dead endpoint holding InFlight requests", func() bool {
		games.mu.Lock()
		defer games.mu.Unlock()
		return games.inFlight == inFlight
	})
	games.mu.Lock()
	accepted, maxIn := len(games.accepted), games.maxIn
	games.mu.Unlock()
	if accepted != 0 || maxIn > inFlight {
		t.Errorf("the dead endpoint: %d users accepted, at most %d requests at once; want 0 and at most %d", accepted, maxIn, inFlight)
	}
	games.open()
	games.wait("games' changes delivered once it answers", all(wantGames))
	games.checkOrder()
}

// TestGiveUp: a change whose attempts all time out is given up after
// MaxAttempts, counted as failed, and the user's next change goes on.
func TestGiveUp(t *testing.T) {
	k := newKafka(t, 3)
	rc := newReceiver(t, func(_ int, user string, version int64) answer {
		if user == "chat-u0" && version == 1 {
			return hang
		}
		return accept
	}, chatSecret)
	f := authtest.New(t)
	hooks(t, f, map[string][2]string{"chat": {rc.srv.URL, chatSecret}})
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	start(t, webhook.Config{Brokers: k.brokers, Webhooks: a, Registerer: reg,
		Timeout: 50 * time.Millisecond, MaxAttempts: 3, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	k.changes("chat", 2, 2)
	rc.wait("the changes after the one given up", all(map[string][]int64{"chat-u0": {2}, "chat-u1": {1, 2}}))
	rc.checkOrder()
	eventually(t, "failed counted", func() bool { return count(t, reg, "chat", "failed") == 1 })
	if got := count(t, reg, "chat", "retried"); got != 2 {
		t.Errorf("retried %d, want 2 (3 attempts)", got)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if got := rc.accepted["chat-u0"]; len(got) != 1 || got[0] != 2 {
		t.Errorf("chat-u0: accepted %v, want [2]", got)
	}
}

// TestReload: a reload that adds an app's webhook starts it, one that
// rotates a secret signs the next changes with the new one, one that
// removes a webhook stops it.
func TestReload(t *testing.T) {
	k := newKafka(t, 3)
	chat := newReceiver(t, func(int, string, int64) answer { return accept }, chatSecret, chatRotated)
	games := newReceiver(t, func(int, string, int64) answer { return accept }, gamesSecret)
	f := authtest.New(t)
	hooks(t, f, map[string][2]string{"chat": {chat.srv.URL, chatSecret}})
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	start(t, webhook.Config{Brokers: k.brokers, Webhooks: a, Registerer: reg, MinBackoff: time.Millisecond})
	endpoints := func(n float64) func() bool {
		return func() bool { return value(t, reg, "presence_webhook_endpoints", nil) == n }
	}
	eventually(t, "one endpoint", endpoints(1))
	k.change("chat", "alice", 1)
	chat.wait("chat's first change", all(map[string][]int64{"alice": {1}}))

	hooks(t, f, map[string][2]string{"chat": {chat.srv.URL, chatRotated}, "games": {games.srv.URL, gamesSecret}})
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two endpoints", endpoints(2))
	k.change("games", "bob", 1)
	k.change("chat", "alice", 2)
	games.wait("games' change, once its webhook is added", all(map[string][]int64{"bob": {1}}))
	chat.wait("chat's change after the rotation", all(map[string][]int64{"alice": {2}}))
	chat.mu.Lock()
	if got := chat.signedBy[2]; got != chatRotated {
		t.Errorf("a change after the rotation was signed with %q", got)
	}
	chat.mu.Unlock()

	hooks(t, f, map[string][2]string{"games": {games.srv.URL, gamesSecret}})
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one endpoint after the removal", endpoints(1))
	chat.checkOrder()
	games.checkOrder()
}
