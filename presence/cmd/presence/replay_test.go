package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
)

// replayPartitions is the partition count of the topics in these tests:
// 3 state topics make 12 partitions to replay.
const replayPartitions = 4

// replayKafka starts an in-process Kafka, with the Presence topics unless
// bare, and returns it with a client that partitions as the schemas say.
func replayKafka(t *testing.T, bare bool) (*kfake.Cluster, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.RecordPartitioner(records.Partitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if !bare {
		if err := processor.EnsureTopics(context.Background(), cl, replayPartitions); err != nil {
			t.Fatal(err)
		}
	}
	return c, cl
}

// history is what a test writes to the state topics, and what Redis must
// hold once they are replayed, user by user (app "chat").
type history struct {
	records  []*kgo.Record
	users    []string
	online   map[string][]string // user -> live sessions, sorted
	custom   map[string]redisstore.Custom
	friends  map[string][]string // user -> friends, sorted
	watching map[string][]string // subscriber -> users watched now, sorted
}

// makeHistory generates about n records over n/10 users with three devices
// each, reproducibly: connects and disconnects, custom statuses set and
// cleared, friendships made and ended, subscriptions live, expired and
// ended.
func makeHistory(t *testing.T, seed uint64, n int) *history {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	start := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	h := &history{custom: map[string]redisstore.Custom{}}
	live := map[string]map[string]bool{}
	friends := map[string]map[string]bool{}
	watching := map[string]map[string]bool{}
	nusers := max(n/10, 2)
	user := func() string { return fmt.Sprintf("user-%d", rng.IntN(nusers)) }
	pair := func() (string, string) {
		a, b := user(), user()
		for a == b {
			b = user()
		}
		return a, b
	}
	add := func(topic, key string, m proto.Message) {
		r := &kgo.Record{Topic: topic, Key: []byte(key)}
		if m != nil {
			value, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			r.Value = value
		}
		h.records = append(h.records, r)
	}
	set := func(m map[string]map[string]bool, a, b string, on bool) {
		if m[a] == nil {
			m[a] = map[string]bool{}
		}
		if on {
			m[a][b] = true
		} else {
			delete(m[a], b)
		}
	}
	for i := 0; len(h.records) < n; i++ {
		at := start.Add(time.Duration(i) * time.Millisecond)
		switch r := rng.IntN(100); {
		case r < 70:
			u := user()
			session := fmt.Sprintf("%s-dev-%d", u, rng.IntN(3))
			ev := &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CONNECT, App: "chat", User: u, Session: session,
				Device:  &pb.Device{Type: []string{"ios", "android", "web"}[rng.IntN(3)], Id: "id-" + session},
				Gateway: "gw-1", GatewayEpoch: "e1", TimestampMs: at.UnixMilli()}
			if live[u][session] {
				ev.Type, ev.Device, ev.Reason = pb.EventType_EVENT_TYPE_DISCONNECT, nil, pb.DisconnectReason_DISCONNECT_REASON_CLIENT_CLOSED
			}
			set(live, u, session, !live[u][session])
			add(schemas.SessionsTopic, schemas.SessionKey("chat", u, session), ev)
		case r < 78:
			u, c := user(), redisstore.Custom{Status: rng.IntN(5), Text: fmt.Sprintf("busy %d", i)}
			h.custom[u] = c
			add(schemas.SessionsTopic, schemas.CustomStatusKey("chat", u), &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CUSTOM_STATUS,
				App: "chat", User: u, Custom: &pb.CustomStatus{Status: int32(c.Status), Text: c.Text}, TimestampMs: at.UnixMilli()})
		case r < 80:
			u := user()
			delete(h.custom, u)
			add(schemas.SessionsTopic, schemas.CustomStatusKey("chat", u), nil)
		case r < 93:
			a, b := pair()
			made := r < 90
			for _, e := range [][2]string{{a, b}, {b, a}} {
				set(friends, e[0], e[1], made)
				var m proto.Message
				if made {
					m = &pb.FriendEdge{App: "chat", User: e[0], Friend: e[1], TimestampMs: at.UnixMilli()}
				}
				add(schemas.FriendsTopic, schemas.FriendKey("chat", e[0], e[1]), m)
			}
		default:
			watched, subscriber := pair()
			var m proto.Message
			switch {
			case r < 96:
				m = &pb.Subscription{App: "chat", User: watched, Subscriber: subscriber, ExpiresAtMs: at.Add(3 * time.Hour).UnixMilli(), TimestampMs: at.UnixMilli()}
			case r < 98:
				m = &pb.Subscription{App: "chat", User: watched, Subscriber: subscriber, ExpiresAtMs: at.Add(time.Minute).UnixMilli(), TimestampMs: at.UnixMilli()}
			}
			set(watching, subscriber, watched, r < 96)
			add(schemas.SubscriptionsTopic, schemas.SubscriptionKey("chat", watched, subscriber), m)
		}
	}
	sorted := func(m map[string]map[string]bool) map[string][]string {
		out := map[string][]string{}
		for k, set := range m {
			if len(set) > 0 {
				out[k] = slices.Sorted(maps.Keys(set))
			}
		}
		return out
	}
	h.online, h.friends, h.watching = sorted(live), sorted(friends), sorted(watching)
	for i := range nusers {
		h.users = append(h.users, fmt.Sprintf("user-%d", i))
	}
	if len(h.online) == 0 || len(h.custom) == 0 || len(h.friends) == 0 || len(h.watching) == 0 {
		t.Fatalf("history of %d records is too thin to test anything: %d online, %d custom, %d with friends, %d watching",
			len(h.records), len(h.online), len(h.custom), len(h.friends), len(h.watching))
	}
	return h
}

func (h *history) produce(t *testing.T, cl *kgo.Client) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), h.records...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

// requireHistory checks that store holds what h says, user by user.
func requireHistory(t *testing.T, store *redisstore.Store, h *history) {
	t.Helper()
	ctx := context.Background()
	statuses, err := store.Statuses(ctx, "chat", h.users)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, u := range h.users {
		var sessions []string
		var custom *redisstore.Custom
		if st := statuses[i]; st != nil {
			for _, s := range st.Sessions {
				sessions = append(sessions, s.Session)
			}
			custom = st.Custom
		}
		slices.Sort(sessions)
		if !slices.Equal(sessions, h.online[u]) {
			t.Errorf("user %s: sessions %q, want %q", u, sessions, h.online[u])
		}
		if want, ok := h.custom[u]; (custom == nil) == ok || ok && *custom != want {
			t.Errorf("user %s: custom status %+v, want %+v (set: %v)", u, custom, want, ok)
		}
		friends, err := store.Friends(ctx, "chat", u)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Sort(friends); !slices.Equal(friends, h.friends[u]) {
			t.Errorf("user %s: friends %q, want %q", u, friends, h.friends[u])
		}
		watching, err := store.Watching(ctx, "chat", u, now)
		if err != nil {
			t.Fatal(err)
		}
		if w := slices.Sorted(maps.Keys(watching)); !slices.Equal(w, h.watching[u]) {
			t.Errorf("user %s: watching %q, want %q", u, w, h.watching[u])
		}
	}
}

// replayInto runs `presence replay`, configured through the environment,
// into prefix of the Redis at url, printing progress every millisecond to
// stdout.
func replayInto(ctx context.Context, t *testing.T, c *kfake.Cluster, url, prefix string, stdout *syncBuffer, extra ...string) error {
	t.Helper()
	env := map[string]string{
		"PRESENCE_BROKERS":    strings.Join(c.ListenAddrs(), ","),
		"PRESENCE_REDIS_URL":  url,
		"PRESENCE_KEY_PREFIX": prefix,
	}
	args := append([]string{"replay", "--partitions", fmt.Sprint(replayPartitions), "--progress-every", "1ms"}, extra...)
	var stderr syncBuffer
	err := run(ctx, args, func(k string) string { return env[k] }, stdout, &stderr)
	if s := stderr.String(); s != "" {
		t.Logf("presence replay stderr:\n%s", s)
	}
	return err
}

func newStore(t *testing.T, prefix string) *redisstore.Store {
	return redisstore.New(redistest.Client(t), redisstore.Options{Prefix: prefix})
}

// newRedis starts a Redis of the test's own, as new as a Redis can be:
// nothing in it, no script loaded.
func newRedis(t *testing.T) (string, *redis.Client) {
	t.Helper()
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return srv.URL(), rdb
}

// recordsIn counts the records topic holds.
func recordsIn(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// requireNoReplayGroup checks that the replay deleted its consumer group.
func requireNoReplayGroup(t *testing.T, cl *kgo.Client) {
	t.Helper()
	groups, err := kadm.NewClient(cl).ListGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name := range groups {
		if strings.HasPrefix(name, "presence-replay-") {
			t.Errorf("the replay left its consumer group %s behind", name)
		}
	}
}

// reference is the state a regular processor builds from the topics, in a
// prefix and group of its own.
func reference(t *testing.T, c *kfake.Cluster) *redisstore.Store {
	t.Helper()
	store := newStore(t, redistest.Prefix(t))
	p, err := processor.New(processor.Config{Brokers: c.ListenAddrs(), Group: "reference", Store: store,
		Partitions: replayPartitions, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for p.CaughtUp(ctx) != nil {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("reference processor not caught up after 60s: %v", p.CaughtUp(ctx))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("reference processor: %v", err)
	}
	return store
}

func TestReplay(t *testing.T) {
	c, cl := replayKafka(t, false)
	h := makeHistory(t, 1, 4000)
	h.produce(t, cl)
	url, rdb := newRedis(t)
	prefix := redisstore.DefaultPrefix

	var stdout syncBuffer
	if err := replayInto(context.Background(), t, c, url, prefix, &stdout); err != nil {
		t.Fatalf("presence replay: %v\n%s", err, stdout.String())
	}
	out := stdout.String()
	total := len(h.records)
	if !strings.Contains(out, fmt.Sprintf("/%d records (", total)) {
		t.Errorf("no progress line counting %d records:\n%s", total, out)
	}
	if !strings.Contains(out, fmt.Sprintf("replayed %d records of %d partitions", total, 3*replayPartitions)) {
		t.Errorf("no summary of %d records of %d partitions:\n%s", total, 3*replayPartitions, out)
	}
	for _, topic := range []string{schemas.NotifyTopic, schemas.ChangesTopic, schemas.DeadLetterTopic} {
		if n := recordsIn(t, cl, topic); n != 0 {
			t.Errorf("the replay wrote %d records to %s, want none", n, topic)
		}
	}
	requireNoReplayGroup(t, cl)

	store := redisstore.New(rdb, redisstore.Options{})
	requireHistory(t, store, h)
	if n, err := store.Rebuilding(context.Background()); err != nil || n != 0 {
		t.Errorf("after the replay %d partitions are still rebuilding (%v), want 0", n, err)
	}

	// A regular processor builds the same statuses, to the version.
	want, err := reference(t, c).Statuses(context.Background(), "chat", h.users)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Statuses(context.Background(), "chat", h.users)
	if err != nil {
		t.Fatal(err)
	}
	known := 0
	for i, u := range h.users {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		if string(g) != string(w) {
			t.Errorf("user %s:\n replay    %s\n processor %s", u, g, w)
		}
		if want[i] != nil {
			known++
		}
	}
	if !strings.Contains(out, fmt.Sprintf("redis now holds %d users", known)) {
		t.Errorf("summary does not count the %d users with a status:\n%s", known, out)
	}
}

// dump returns every key under prefix with its serialized value.
func dump(t *testing.T, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	rdb := redistest.Client(t)
	keys, err := rdb.Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		if out[k], err = rdb.Dump(ctx, k).Result(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestReplayRefusesTargetWithState(t *testing.T) {
	c, cl := replayKafka(t, false)
	h := makeHistory(t, 2, 1000)
	h.produce(t, cl)
	for _, tc := range []struct {
		name string
		// fill puts state under the prefix.
		fill func(t *testing.T, prefix string)
	}{
		{"built by a replay", func(t *testing.T, prefix string) {
			var stdout syncBuffer
			if err := replayInto(context.Background(), t, c, redistest.URL(t), prefix, &stdout); err != nil {
				t.Fatalf("first replay: %v\n%s", err, stdout.String())
			}
		}},
		{"keys without checkpoints", func(t *testing.T, prefix string) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := redistest.Prefix(t)
			tc.fill(t, prefix)
			ghost := prefix + ":{chat/ghost}"
			if err := redistest.Client(t).HSet(context.Background(), ghost, "v", 1).Err(); err != nil {
				t.Fatal(err)
			}
			before := dump(t, prefix)

			var stdout syncBuffer
			err := replayInto(context.Background(), t, c, redistest.URL(t), prefix, &stdout)
			if !errors.Is(err, errNotEmpty) || !strings.Contains(err.Error(), "--reset") || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("got %v, want a refusal that names --reset", err)
			}
			if after := dump(t, prefix); !maps.Equal(after, before) {
				t.Fatalf("a refused replay changed the target: %d keys before, %d after", len(before), len(after))
			}

			stdout = syncBuffer{}
			if err := replayInto(context.Background(), t, c, redistest.URL(t), prefix, &stdout, "--reset"); err != nil {
				t.Fatalf("presence replay --reset: %v\n%s", err, stdout.String())
			}
			if want := fmt.Sprintf("--reset: deleted %d keys", len(before)); !strings.Contains(stdout.String(), want) {
				t.Errorf("output does not say %q:\n%s", want, stdout.String())
			}
			store := newStore(t, prefix)
			if st, err := store.Status(context.Background(), "chat", "ghost"); err != nil || st != nil {
				t.Errorf("--reset left the ghost user: %+v, %v", st, err)
			}
			requireHistory(t, store, h)
		})
	}
}

func TestReplayEmptyTopics(t *testing.T) {
	c, cl := replayKafka(t, true)
	prefix := redistest.Prefix(t)
	var stdout syncBuffer
	if err := replayInto(context.Background(), t, c, redistest.URL(t), prefix, &stdout); err != nil {
		t.Fatalf("presence replay: %v\n%s", err, stdout.String())
	}
	if want := fmt.Sprintf("replayed 0 records of %d partitions", 3*replayPartitions); !strings.Contains(stdout.String(), want) {
		t.Errorf("output does not say %q:\n%s", want, stdout.String())
	}
	topics, err := kadm.NewClient(cl).ListTopics(context.Background(), schemas.StateTopics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range schemas.StateTopics {
		if n := len(topics[topic].Partitions); n != replayPartitions {
			t.Errorf("topic %s has %d partitions, want it created with %d", topic, n, replayPartitions)
		}
	}
	// The empty state counts as built: a processor starting on it does
	// not say it is rebuilding.
	if n, err := newStore(t, prefix).Rebuilding(context.Background()); err != nil || n != 0 {
		t.Errorf("after the replay %d partitions are not built (%v), want 0", n, err)
	}
	requireNoReplayGroup(t, cl)
}

// An interrupted replay leaves a state marked as rebuilding, which a
// replay with --reset completes.
func TestReplayInterrupted(t *testing.T) {
	c, cl := replayKafka(t, false)
	h := makeHistory(t, 3, 1000)
	h.produce(t, cl)
	// Fetches wait until released: the replay joins its group and
	// assigns its partitions, then gets no record.
	var released atomic.Bool
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !released.Load() {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	defer func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	}()

	prefix := redistest.Prefix(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() { done <- replayInto(ctx, t, c, redistest.URL(t), prefix, &stdout) }()
	store := newStore(t, prefix)
	deadline := time.Now().Add(30 * time.Second)
	for !rebuilding(t, store) {
		if time.Now().After(deadline) {
			t.Fatalf("the replay did not start rebuilding within 30s:\n%s", stdout.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // as SIGINT does
	select {
	case err := <-done:
		if !errors.Is(err, errInterrupted) {
			t.Fatalf("got %v, want the replay interrupted", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the replay did not stop within 60s of its interruption")
	}
	if want := fmt.Sprintf("interrupted after 0 of %d records", len(h.records)); !strings.Contains(stdout.String(), want) ||
		!strings.Contains(stdout.String(), "--reset") {
		t.Errorf("output does not say %q and how to finish:\n%s", want, stdout.String())
	}
	if !rebuilding(t, store) {
		t.Error("the partial state is not marked as rebuilding")
	}
	requireNoReplayGroup(t, cl)

	released.Store(true)
	close(release)
	stdout = syncBuffer{}
	if err := replayInto(context.Background(), t, c, redistest.URL(t), prefix, &stdout, "--reset"); err != nil {
		t.Fatalf("presence replay --reset: %v\n%s", err, stdout.String())
	}
	requireHistory(t, store, h)
}

// rebuilding reports whether every partition of every state topic of
// store has a rebuild target: a replay is under way, or was stopped.
func rebuilding(t *testing.T, store *redisstore.Store) bool {
	t.Helper()
	for _, topic := range schemas.StateTopics {
		cp, err := store.Checkpoint(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(cp.Rebuild) != replayPartitions {
			return false
		}
	}
	return true
}

func TestReplayUsage(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"stray argument", []string{"replay", "extra"}, "takes no arguments"},
		{"zero ttl", []string{"replay", "--offline-ttl", "0s"}, "must be positive"},
		{"zero record cap", []string{"replay", "--max-record-bytes", "0"}, "must be positive"},
		{"zero clock skew", []string{"replay", "--max-clock-skew", "0s"}, "must be positive"},
		{"empty prefix", []string{"replay", "--key-prefix", ""}, "must not be empty"},
		{"bad redis url", []string{"replay", "--redis-url", "http://nowhere"}, "--redis-url"},
		{"group with a space", []string{"replay", "--replay-group", "a b"}, "--replay-group"},
		{"group too long", []string{"replay", "--replay-group", strings.Repeat("g", 250)}, "--replay-group"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			err := run(context.Background(), c.args, func(string) string { return "" }, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	var stdout, stderr syncBuffer
	run(context.Background(), []string{"replay", "--help"}, func(string) string { return "" }, &stdout, &stderr)
	help := strings.Join(strings.Fields(stderr.String()), " ")
	for _, f := range []string{"brokers", "redis-url", "key-prefix", "offline-ttl", "partitions", "reset", "replay-group", "progress-every", "max-record-bytes", "max-clock-skew"} {
		if !strings.Contains(help, "--"+f+" (PRESENCE_") {
			t.Errorf("presence replay --help does not list --%s:\n%s", f, help)
		}
	}
	if !strings.Contains(help, "stop the processors writing to that Redis") || !strings.Contains(help, "replay into a new Redis") {
		t.Errorf("presence replay --help does not say to stop the processors or use a new Redis:\n%s", help)
	}
	if err := run(context.Background(), []string{"help"}, func(string) string { return "" }, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "replay") {
		t.Errorf("presence help does not list replay: %v\n%s", err, stdout.String())
	}
}
