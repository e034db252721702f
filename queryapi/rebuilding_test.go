package queryapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/schemas"
)

// clock is a clock the test moves.
type clock struct{ at atomic.Int64 }

func newClock(at time.Time) *clock {
	c := &clock{}
	c.at.Store(at.UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.at.Load()) }
func (c *clock) advance(d time.Duration) { c.at.Add(int64(d)) }

// While partitions of the state topics are not yet built, every lookup
// says how many in Presence-Rebuilding; once all are built, none does.
func TestRebuildingHeader(t *testing.T) {
	clk := newClock(now)
	h := newHarness(t, func(c *queryapi.Config) { c.Now = clk.now })
	ctx := context.Background()
	check := func(want string) {
		t.Helper()
		for _, l := range lookups {
			code, header, body := h.doHeader(l.method, l.path, l.body)
			if code != http.StatusOK {
				t.Fatalf("%s %s: %d %s", l.method, l.path, code, body)
			}
			got, present := header[queryapi.RebuildingHeader]
			switch {
			case want == "" && present:
				t.Errorf("%s %s: %s %q, want none", l.method, l.path, queryapi.RebuildingHeader, got)
			case want != "" && (len(got) != 1 || got[0] != want):
				t.Errorf("%s %s: %s %q, want %s", l.method, l.path, queryapi.RebuildingHeader, got, want)
			}
		}
	}

	check("3") // no processor has built any of the three state topics

	// Two partitions of presence.sessions are being rebuilt, not alice's,
	// so she still answers; the other state topics are built.
	alice := int32(schemas.Partition([]byte(schemas.UserKey("chat", "alice")), partitions))
	p1, p2 := (alice+1)%partitions, (alice+2)%partitions
	// ends are the end offsets of every partition: 0 (empty) but for
	// those given.
	ends := func(nonEmpty map[int32]int64) map[int32]int64 {
		out := map[int32]int64{}
		for p := range int32(partitions) {
			out[p] = nonEmpty[p]
		}
		return out
	}
	others := ends(map[int32]int64{p1: 10, p2: 5})
	delete(others, alice) // alice's partition is built: keep her
	if err := h.store.Reset(ctx, schemas.SessionsTopic, "sessions-id", partitions, others); err != nil {
		t.Fatal(err)
	}
	if err := h.store.Advance(ctx, schemas.SessionsTopic, nil, map[int32]int64{alice: 1}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{schemas.FriendsTopic, schemas.SubscriptionsTopic} {
		if err := h.store.Reset(ctx, topic, topic+"-id", partitions, ends(nil)); err != nil {
			t.Fatal(err)
		}
	}
	check("3") // the count is read at most once a second
	clk.advance(time.Second)
	check("2")

	if err := h.store.Advance(ctx, schemas.SessionsTopic, map[int32]int64{p1: 0}, map[int32]int64{p1: 10}, nil, nil); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	check("1")

	if err := h.store.Advance(ctx, schemas.SessionsTopic, map[int32]int64{p2: 0}, map[int32]int64{p2: 5}, nil, nil); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	check("")
	_, body := h.do("GET", "/metrics", "")
	if want := "presence_queryapi_rebuilding_partitions 0"; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// A lookup right after Redis lost the state (its checkpoints gone with
// it) says so, though the rebuild count was read less than a second
// before: its own read finds the state not whole and reads the count anew.
func TestRebuildingFromTheFirstLookup(t *testing.T) {
	clk := newClock(now)
	h := newHarness(t, func(c *queryapi.Config) { c.Now = clk.now })
	ctx := context.Background()
	for _, topic := range schemas.StateTopics {
		ends := map[int32]int64{}
		for p := range int32(partitions) {
			ends[p] = 0
		}
		if err := h.store.Reset(ctx, topic, topic+"-id", partitions, ends); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(time.Second)
	code, header, body := h.doHeader("POST", "/v1/apps/chat/status/query", `{"users":["alice"]}`)
	if code != http.StatusOK || header.Get(queryapi.RebuildingHeader) != "" {
		t.Fatalf("a lookup while the state is whole: %d %q %s, want 200 without %s", code, header.Get(queryapi.RebuildingHeader), body, queryapi.RebuildingHeader)
	}
	// The loss: the checkpoints go, as with the rest of a flushed Redis.
	for _, topic := range schemas.StateTopics {
		if err := h.store.Forget(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range lookups {
		_, header, body := h.doHeader(l.method, l.path, l.body)
		if got := header.Get(queryapi.RebuildingHeader); got != "3" {
			t.Errorf("%s %s at once after the loss: %s %q (%s), want 3", l.method, l.path, queryapi.RebuildingHeader, got, body)
		}
	}
}

// A lookup right after Redis lost the state says so even when the
// processors have already put the checkpoints back (their rebuild begun)
// before any lookup saw them gone: the state's generation changed.
func TestRebuildingAfterCheckpointsAreBack(t *testing.T) {
	clk := newClock(now)
	h := newHarness(t, func(c *queryapi.Config) { c.Now = clk.now })
	ctx := context.Background()
	resetAll := func(target int64) {
		t.Helper()
		for _, topic := range schemas.StateTopics {
			ends := map[int32]int64{}
			for p := range int32(partitions) {
				ends[p] = 0
			}
			if topic == schemas.SessionsTopic {
				ends[0] = target
			}
			if err := h.store.Reset(ctx, topic, topic+"-id", partitions, ends); err != nil {
				t.Fatal(err)
			}
		}
	}
	resetAll(0)
	clk.advance(time.Second)
	code, header, body := h.doHeader("POST", "/v1/apps/chat/status/query", `{"users":["alice"]}`)
	if code != http.StatusOK || header.Get(queryapi.RebuildingHeader) != "" {
		t.Fatalf("a lookup while the state is whole: %d %q %s, want 200 without %s", code, header.Get(queryapi.RebuildingHeader), body, queryapi.RebuildingHeader)
	}
	// The loss, then at once the processors' rebuild: partition 0 of
	// presence.sessions has records to apply again. The clock stays: the
	// count read above is less than a second old.
	for _, topic := range schemas.StateTopics {
		if err := h.store.Forget(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	resetAll(7)
	for _, l := range lookups {
		_, header, body := h.doHeader(l.method, l.path, l.body)
		if got := header.Get(queryapi.RebuildingHeader); got != "1" {
			t.Errorf("%s %s at once after the rebuild began: %s %q (%s), want 1", l.method, l.path, queryapi.RebuildingHeader, got, body)
		}
	}
}
