package queryapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/schemas/status"
	"github.com/presence-im/presence/service/ratelimit"
)

// watchAnswer is the answer of a watch: results on the first call,
// changes after.
type watchAnswer struct {
	Results []*status.Status `json:"results"`
	Changes []*status.Status `json:"changes"`
	Cursor  string           `json:"cursor"`
}

// watch sends a watch of users from cursor ("" for none) and decodes its
// 200 answer.
func (h *harness) watch(cursor string, timeoutMS int, users ...string) watchAnswer {
	h.t.Helper()
	a, err := h.tryWatch(cursor, timeoutMS, users...)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// pending is the answer of a watch sent by watchLater.
type pending struct {
	watchAnswer
	err error
}

// watchLater sends a watch in a goroutine of its own, and returns where
// its answer comes.
func (h *harness) watchLater(cursor string, timeoutMS int, users ...string) <-chan pending {
	answered := make(chan pending, 1)
	go func() {
		a, err := h.tryWatch(cursor, timeoutMS, users...)
		answered <- pending{a, err}
	}()
	return answered
}

// tryWatch is watch for another goroutine than the test's: it returns
// what is wrong rather than fail the test.
func (h *harness) tryWatch(cursor string, timeoutMS int, users ...string) (watchAnswer, error) {
	req, err := http.NewRequest("POST", h.srv.URL+"/v1/apps/chat/status/watch", strings.NewReader(watchBody(cursor, timeoutMS, users...)))
	if err != nil {
		return watchAnswer{}, err
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return watchAnswer{}, err
	}
	defer resp.Body.Close()
	var a watchAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK || a.Cursor == "" {
		return watchAnswer{}, fmt.Errorf("watch: status %d, answer %+v: %v", resp.StatusCode, a, err)
	}
	return a, nil
}

func watchBody(cursor string, timeoutMS int, users ...string) string {
	req := map[string]any{"users": users, "timeout_ms": timeoutMS}
	if cursor != "" {
		req["cursor"] = cursor
	}
	b, _ := json.Marshal(req)
	return string(b)
}

// change writes to presence.changes what the processor writes when a
// user of app chat changes: online with one session, or offline.
func (h *harness) change(user string, online bool, version int64) {
	h.t.Helper()
	st := &pb.UserStatus{User: user, Online: online, Version: version}
	if online {
		st.Sessions = []*pb.Session{{Session: "s-" + user, Device: &pb.Device{Type: "web"}, Gateway: "gw", ConnectedAtMs: now.UnixMilli()}}
	} else {
		st.LastSeenMs = now.UnixMilli()
	}
	r, err := records.Encode(schemas.ChangesTopic, schemas.UserKey("chat", user), &pb.StatusChange{App: "chat", Status: st, TimestampMs: time.Now().UnixMilli()}, time.Time{})
	if err != nil {
		h.t.Fatal(err)
	}
	if h.producer == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(h.kafka.ListenAddrs()...), kgo.RecordPartitioner(records.Partitioner()))
		if err != nil {
			h.t.Fatal(err)
		}
		h.t.Cleanup(cl.Close)
		h.producer = cl
	}
	if err := h.producer.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// metric returns the value of a counter or gauge of the harness's
// registry, waiting until it reaches at least min.
func waitMetric(t *testing.T, reg *prometheus.Registry, name string, min float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == name {
				for _, m := range f.GetMetric() {
					if v := m.GetCounter().GetValue() + m.GetGauge().GetValue(); v >= min {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %v", name, min)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func describeStatuses(sts []*status.Status) []string {
	var out []string
	for _, st := range sts {
		if st == nil {
			out = append(out, "null")
			continue
		}
		out = append(out, fmt.Sprintf("%s %s v%d", st.User, st.State, st.Version))
	}
	slices.Sort(out)
	return out
}

// A watch answers the statuses and a cursor first, then wakes on a change
// of a user it watches, and only of one: a change of another user neither
// answers it nor wakes it.
func TestWatchWakesOnItsUsersOnly(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(c *queryapi.Config) { c.Registry = reg })
	h.built()
	first := h.watch("", 0, "alice", "bob", "nobody")
	if got, want := describeStatuses(first.Results), []string{"alice online v1", "bob offline v3", "null"}; !slices.Equal(got, want) {
		t.Fatalf("first answer %v, want %v", got, want)
	}
	answered := h.watchLater(first.Cursor, 30000, "alice", "bob", "nobody")
	waitMetric(t, reg, "presence_queryapi_watch_waiting", 1)

	h.change("carol", true, 10) // not watched
	waitMetric(t, reg, "presence_queryapi_watch_changes_total", 1)
	if n := testutil.ToFloat64(counter(t, reg, "presence_queryapi_watch_wakeups_total")); n != 0 {
		t.Errorf("a change of carol woke %v watches", n)
	}

	h.change("bob", true, 11)
	got := <-answered
	if got.err != nil {
		t.Fatal(got.err)
	}
	a := got.watchAnswer
	if changes := describeStatuses(a.Changes); slices.Contains(changes, "carol online v10") {
		t.Errorf("a watch of alice and bob answered carol's change: %v", changes)
	}
	if got, want := describeStatuses(a.Changes), []string{"bob online v11"}; !slices.Equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	if a.Cursor == first.Cursor {
		t.Error("the cursor did not move")
	}
	if n := testutil.ToFloat64(counter(t, reg, "presence_queryapi_watch_wakeups_total")); n != 1 {
		t.Errorf("%v wakeups, want 1", n)
	}
	// Nothing since: the timeout answers no change, and a cursor.
	if quiet := h.watch(a.Cursor, 50, "alice", "bob"); len(quiet.Changes) != 0 || quiet.Changes == nil {
		t.Errorf("a watch with nothing new answered %+v, want an empty list", quiet)
	}
}

// counter finds a metric of reg by name.
func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc{reg, name}
}

type collectorFunc struct {
	reg  *prometheus.Registry
	name string
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) {
	families, _ := c.reg.Gather()
	for _, f := range families {
		if f.GetName() == c.name {
			for _, m := range f.GetMetric() {
				ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(c.name, "", nil, nil), prometheus.UntypedValue, m.GetCounter().GetValue()+m.GetGauge().GetValue())
			}
		}
	}
}

// A client that was away resumes from its cursor and misses nothing: the
// changes made meanwhile come at once (the latest of each user), and a
// cursor can be sent again (a lost answer) with the same result.
func TestWatchResumesFromCursor(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(c *queryapi.Config) { c.Registry = reg })
	h.built()
	// A change in the feed before the first call (the first call's
	// statuses show it) does not come again: the cursor is past it.
	h.change("bob", false, 5)
	first := h.watch("", 0, "alice", "bob")
	if again := h.watch(first.Cursor, 100, "alice", "bob"); len(again.Changes) != 0 {
		t.Errorf("a change before the first call came again: %v", describeStatuses(again.Changes))
	}
	h.change("alice", false, 20)
	h.change("bob", true, 21)
	h.change("alice", true, 22)
	waitMetric(t, reg, "presence_queryapi_watch_changes_total", 3)
	a := h.watch(first.Cursor, 30000, "alice", "bob")
	if got, want := describeStatuses(a.Changes), []string{"alice online v22", "bob online v21"}; !slices.Equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	again := h.watch(first.Cursor, 30000, "alice", "bob")
	if !slices.Equal(describeStatuses(again.Changes), describeStatuses(a.Changes)) {
		t.Errorf("the same cursor again answered %v, then %v", describeStatuses(a.Changes), describeStatuses(again.Changes))
	}
	h.change("bob", false, 23)
	next := h.watch(a.Cursor, 30000, "alice", "bob")
	if got, want := describeStatuses(next.Changes), []string{"bob offline v23"}; !slices.Equal(got, want) {
		t.Errorf("changes after the second cursor %v, want %v", got, want)
	}
}

// A cursor the service cannot serve is 410 cursor_expired: its changes
// are no longer kept, or the state was rebuilt since it was taken. A
// cursor that is no cursor, or bad limits, are 400.
func TestWatchCursorExpires(t *testing.T) {
	reg := prometheus.NewRegistry()
	var clock atomic.Int64 // the server's clock, in Unix ms
	clock.Store(now.UnixMilli())
	h := newHarness(t, func(c *queryapi.Config) {
		c.Registry, c.WatchMaxChanges = reg, 1
		c.Now = func() time.Time { return time.UnixMilli(clock.Load()) }
	})
	h.built()
	first := h.watch("", 0, "alice")
	h.change("alice", false, 30)
	h.change("alice", true, 31) // drops the first: the cursor is before it
	waitMetric(t, reg, "presence_queryapi_watch_changes_total", 2)
	code, body := h.do("POST", "/v1/apps/chat/status/watch", watchBody(first.Cursor, 1000, "alice"))
	wantError(t, code, body, http.StatusGone, "cursor_expired")

	// A rebuild: the state's generation changes.
	fresh := h.watch("", 0, "alice")
	if err := h.rdb.Set(context.Background(), h.prefix+":generation", "another", 0).Err(); err != nil {
		t.Fatal(err)
	}
	clock.Add(2000) // the generation is read at most once a second
	code, body = h.do("POST", "/v1/apps/chat/status/watch", watchBody(fresh.Cursor, 1000, "alice"))
	if msg := wantError(t, code, body, http.StatusGone, "cursor_expired"); !strings.Contains(msg, "rebuilt") {
		t.Errorf("message %q does not say the state was rebuilt", msg)
	}
	if n := testutil.ToFloat64(counter(t, reg, "presence_queryapi_watch_expired_total")); n != 2 {
		t.Errorf("%v cursors counted expired, want 2", n)
	}

	for _, c := range []struct{ body, code string }{
		{`{"users":["alice"],"cursor":"not-a-cursor"}`, "invalid"},
		{`{"users":["alice"],"cursor":""}`, "invalid"},
		{`{"users":["alice"],"timeout_ms":30001}`, "invalid"},
		{`{"users":["alice"],"timeout_ms":-1}`, "invalid"},
		{`{"users":[]}`, ""},
		{`{"cursor":null}`, "invalid"},
		{`{"users":["` + strings.Repeat("x", 129) + `"]}`, "invalid"},
	} {
		code, body := h.do("POST", "/v1/apps/chat/status/watch", c.body)
		if c.code == "" {
			if code != http.StatusOK {
				t.Errorf("%s: %d %s, want 200", c.body, code, body)
			}
			continue
		}
		wantError(t, code, body, http.StatusBadRequest, c.code)
	}
	many := make([]string, queryapi.MaxBatch+1)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	code, body = h.do("POST", "/v1/apps/chat/status/watch", watchBody("", 0, many...))
	wantError(t, code, body, http.StatusBadRequest, "too_many_users")
}

// Many watches wait at once on one query API, each woken by a change of
// its own users only: 5,000 watches of a user of their own and of one
// user they all watch. What they cost is logged, not asserted: memory
// per waiting watch (this process holds the clients too), and CPU and
// apply time per change. The clients share connections over HTTP/2, as
// they would behind a proxy, so that the test needs few file descriptors.
func TestManyWatches(t *testing.T) {
	const watches, own = 5000, 100
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(c *queryapi.Config) { c.Registry, c.RateLimits = reg, []ratelimit.Scope{} })
	h.built()
	srv := httptest.NewUnstartedServer(h.handler)
	srv.EnableHTTP2 = true
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 2 * watches}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.Timeout = time.Minute
	// The first request opens the connection the others share.
	resp, err := client.Post(srv.URL+"/v1/apps/chat/status/watch", "application/json", strings.NewReader(watchBody("", 0, "all")))
	if err != nil {
		t.Fatal(err)
	}
	var first watchAnswer
	if err := json.NewDecoder(resp.Body).Decode(&first); err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("first watch over %s: %v", resp.Proto, err)
	}
	resp.Body.Close()
	cursor := first.Cursor
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	type answer struct {
		i   int
		got []string
		err error
	}
	answers := make(chan answer, watches)
	for i := range watches {
		go func() {
			body := watchBody(cursor, 30000, fmt.Sprint("w", i), "all")
			resp, err := client.Post(srv.URL+"/v1/apps/chat/status/watch", "application/json", strings.NewReader(body))
			if err != nil {
				answers <- answer{i: i, err: err}
				return
			}
			defer resp.Body.Close()
			var a watchAnswer
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK {
				answers <- answer{i: i, err: fmt.Errorf("status %d: %v", resp.StatusCode, err)}
				return
			}
			answers <- answer{i: i, got: describeStatuses(a.Changes)}
		}()
	}
	waitMetric(t, reg, "presence_queryapi_watch_waiting", watches)
	var waiting runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&waiting)
	t.Logf("%d watches waiting: %.1f KB of heap each, clients included", watches,
		float64(int64(waiting.HeapAlloc)-int64(before.HeapAlloc))/watches/1024)

	// A change of each of the first own users answers its watch alone.
	cpu := processCPU()
	for i := range own {
		h.change(fmt.Sprint("w", i), true, int64(100+i))
	}
	for range own {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		if want := []string{fmt.Sprintf("w%d online v%d", a.i, 100+a.i)}; a.i >= own || !slices.Equal(a.got, want) {
			t.Fatalf("watch %d answered %v after the changes of w0..w%d", a.i, a.got, own-1)
		}
	}
	if n := testutil.ToFloat64(counter(t, reg, "presence_queryapi_watch_wakeups_total")); n != own {
		t.Errorf("%v wakeups for %d changes of one watch each", n, own)
	}
	t.Logf("%d changes of one watch each: %.0f µs of CPU per change, produce and answer included", own, float64(processCPU()-cpu)/own/1e3)

	// A change of the user they all watch answers every other one.
	cpu = processCPU()
	h.change("all", true, 1000)
	for range watches - own {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		if want := []string{"all online v1000"}; a.i < own || !slices.Equal(a.got, want) {
			t.Fatalf("watch %d answered %v after the change of all", a.i, a.got)
		}
	}
	t.Logf("one change of a user %d watches watch: %.1f ms of CPU to wake and answer them", watches-own, float64(processCPU()-cpu)/1e6)
	if n := testutil.ToFloat64(counter(t, reg, "presence_queryapi_watch_wakeups_total")); n != watches {
		t.Errorf("%v wakeups in all, want %d", n, watches)
	}
}

// processCPU is the CPU time this process has used, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// A waiting watch expires only when a change of its own users is lost:
// changes of another user of the same partition that the Feed drops (it
// keeps two here) do not expire it, and its user's change answers it.
// Before the state is whole, a watch cannot start: 503 not_ready. A
// server that drains answers its waiting watches at once.
func TestWatchWhileChangesGo(t *testing.T) {
	reg := prometheus.NewRegistry()
	var clock atomic.Int64 // the server's clock, in Unix ms
	clock.Store(now.UnixMilli())
	h := newHarness(t, func(c *queryapi.Config) {
		c.Registry, c.WatchMaxChanges = reg, 2
		c.Now = func() time.Time { return time.UnixMilli(clock.Load()) }
	})
	code, body := h.do("POST", "/v1/apps/chat/status/watch", watchBody("", 0, "alice"))
	wantError(t, code, body, http.StatusServiceUnavailable, "not_ready")
	h.built()
	clock.Add(2000) // the rebuild count is read at most once a second

	partition := schemas.Partition([]byte(schemas.UserKey("chat", "alice")), partitions)
	neighbour := ""
	for i := 0; neighbour == ""; i++ {
		if u := fmt.Sprint("u", i); schemas.Partition([]byte(schemas.UserKey("chat", u)), partitions) == partition {
			neighbour = u
		}
	}
	first := h.watch("", 0, "alice")
	answered := h.watchLater(first.Cursor, 30000, "alice")
	waitMetric(t, reg, "presence_queryapi_watch_waiting", 1)
	for v := range int64(4) {
		h.change(neighbour, v%2 == 0, 40+v)
	}
	waitMetric(t, reg, "presence_queryapi_watch_changes_total", 4)
	h.change("alice", false, 50)
	got := <-answered
	if got.err != nil {
		t.Fatal(got.err)
	}
	if changes := describeStatuses(got.Changes); !slices.Equal(changes, []string{"alice offline v50"}) {
		t.Errorf("changes %v, want alice offline", changes)
	}

	answered = h.watchLater(got.Cursor, 30000, "alice")
	waitMetric(t, reg, "presence_queryapi_watch_waiting", 1)
	h.api.Drain()
	drained := <-answered
	if drained.err != nil || len(drained.Changes) != 0 || drained.Cursor == "" {
		t.Errorf("a drained watch answered %+v, %v; want no change and a cursor", drained.watchAnswer, drained.err)
	}
}
