package queryapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// partitions is the partition count of the test topics.
const partitions = 6

// now is the clock of every test server.
var now = time.UnixMilli(1_800_000_000_123)

// lookups are the requests that read statuses from Redis, one per route,
// each answered 200 by a harness (alice exists).
var lookups = []struct{ method, path, body string }{
	{"POST", "/v1/apps/chat/status/query", `{"users":["alice"]}`},
	{"GET", "/v1/apps/chat/users/alice/status", ""},
	{"GET", "/v1/apps/chat/users/alice/friends/status", ""},
	{"POST", "/v1/apps/chat/users/alice/subscriptions", `{"users":["bob"],"ttl_seconds":60}`},
}

// harness is a query API over a real Redis (its own key prefix) and an
// in-process Kafka holding the state topics.
type harness struct {
	t      *testing.T
	kafka  *kfake.Cluster
	rdb    redis.UniversalClient
	prefix string
	store  *redisstore.Store
	srv    *httptest.Server
	// api is the query API, whose handler srv serves.
	api     *queryapi.Server
	handler http.Handler
	// producer writes what the processor would (watch_test.go).
	producer *kgo.Client
}

// newHarness serves the query API over a store holding: alice online with
// one session, bob offline, "a/b%c" online. configure may change the
// server's Config.
func newHarness(t *testing.T, configure ...func(*queryapi.Config)) *harness {
	t.Helper()
	return newHarnessOn(t, redistest.Client(t), configure...)
}

// newHarnessOn is newHarness over the Redis of rdb.
func newHarnessOn(t *testing.T, rdb redis.UniversalClient, configure ...func(*queryapi.Config)) *harness {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, schemas.SessionsTopic, schemas.FriendsTopic, schemas.SubscriptionsTopic, schemas.ChangesTopic,
			schemas.GatewaysTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	h := &harness{t: t, kafka: c, rdb: rdb, prefix: redistest.Prefix(t)}
	h.store = redisstore.New(h.rdb, redisstore.Options{Prefix: h.prefix})
	h.apply(seed()...)
	cfg := queryapi.Config{
		Store: h.store, Brokers: c.ListenAddrs(),
		Now:    func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range configure {
		f(&cfg)
	}
	s, err := queryapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	h.api, h.handler = s, s.Handler()
	h.srv = httptest.NewServer(h.handler)
	t.Cleanup(h.srv.Close)
	return h
}

// seed is the state every harness starts with: alice online with one
// session, bob offline, "a/b%c" online.
func seed() []redisstore.Change {
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	return []redisstore.Change{
		{Op: redisstore.Connect, App: "chat", User: "alice", Session: "s1", Device: "ios", DeviceID: "d1", Gateway: "gw", At: at, Version: 1},
		{Op: redisstore.Connect, App: "chat", User: "bob", Session: "s2", Device: "web", Gateway: "gw", At: at, Version: 2},
		{Op: redisstore.Disconnect, App: "chat", User: "bob", Session: "s2", At: at.Add(time.Second), Version: 3},
		{Op: redisstore.Connect, App: "chat", User: "a/b%c", Session: "s3", Device: "web", Gateway: "gw", At: at, Version: 4},
	}
}

// built marks every partition of the state topics built, as a processor
// that rebuilt them from empty topics would, then writes the seed again
// (a rebuild starts from nothing).
func (h *harness) built() {
	h.t.Helper()
	ends := map[int32]int64{}
	for p := range int32(partitions) {
		ends[p] = 0
	}
	for _, topic := range schemas.StateTopics {
		if err := h.store.Reset(context.Background(), topic, topic+"-id", partitions, ends); err != nil {
			h.t.Fatal(err)
		}
	}
	h.apply(seed()...)
}

// apply applies session records to the state, as the processor would.
func (h *harness) apply(changes ...redisstore.Change) {
	h.t.Helper()
	if _, err := h.store.Apply(context.Background(), changes, false); err != nil {
		h.t.Fatal(err)
	}
}

// userKey is the Redis key of a user's hash in the harness's store; the
// friends and subscriptions of the user extend it (see redisstore/graph.go).
func (h *harness) userKey(user string) string {
	return h.prefix + ":{" + schemas.UserKey("chat", user) + "}"
}

// do sends a request with an optional JSON body and returns the status and
// body of the answer.
func (h *harness) do(method, path, body string) (int, []byte) {
	h.t.Helper()
	code, _, b := h.doHeader(method, path, body)
	return code, b
}

// doHeader is do that returns the answer's header too.
func (h *harness) doHeader(method, path, body string) (int, http.Header, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	// A server that hangs fails the test rather than stalls it.
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// wantError checks an answer is the error envelope with status and code,
// and returns its message.
func wantError(t *testing.T, code int, body []byte, wantCode int, wantErr string) string {
	t.Helper()
	if code != wantCode {
		t.Fatalf("status %d, want %d: %s", code, wantCode, body)
	}
	var e errorJSON
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != wantErr || e.Error.Message == "" {
		t.Fatalf("body %s, want error code %q", body, wantErr)
	}
	return e.Error.Message
}

// records reads every record of topic, checking that each is in the
// partition schemas.Partition gives its key.
func (h *harness) records(topic string) []*kgo.Record {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.kafka.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	total := h.count(ctx, cl, topic)
	var recs []*kgo.Record
	for int64(len(recs)) < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("read %d of %d records of %s: %v", len(recs), total, topic, ctx.Err())
		}
		recs = append(recs, fetches.Records()...)
	}
	for _, r := range recs {
		if want := int32(schemas.Partition(r.Key, partitions)); r.Partition != want {
			h.t.Errorf("record %q of %s in partition %d, schemas.Partition says %d", r.Key, topic, r.Partition, want)
		}
	}
	return recs
}

// empty checks that nothing was written to any state topic.
func (h *harness) empty() {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.kafka.ListenAddrs()...))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	for _, topic := range schemas.StateTopics {
		if n := h.count(context.Background(), cl, topic); n != 0 {
			h.t.Errorf("%s holds %d records, want none", topic, n)
		}
	}
}

// count is how many records topic holds.
func (h *harness) count(ctx context.Context, cl *kgo.Client, topic string) int64 {
	h.t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := ends.Error(); err != nil {
		h.t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total
}

// byKey groups records by key, each key's in the order written (records
// of one key share a partition, which is read in offset order).
func byKey(recs []*kgo.Record) map[string][]*kgo.Record {
	out := make(map[string][]*kgo.Record, len(recs))
	for _, r := range recs {
		out[string(r.Key)] = append(out[string(r.Key)], r)
	}
	return out
}
