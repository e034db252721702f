package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

// Two replay processes sharing --replay-group into one Redis build the same
// state as one process into another prefix; each reports the progress of
// the whole; a replay of another group, or a --reset, is refused while
// they run.
func TestReplayInParallel(t *testing.T) {
	testReplayInParallel(t, redistest.URL(t), redistest.Client(t))
}

// The same on a 3-master Redis Cluster: the partitions, so the masters,
// are rebuilt side by side.
func TestReplayInParallelIntoCluster(t *testing.T) {
	testReplayInParallel(t, redistest.SharedCluster(t).SeedURL(), redistest.ClusterClient(t))
}

func testReplayInParallel(t *testing.T, url string, rdb redis.UniversalClient) {
	ctx := context.Background()
	c, cl := replayKafka(t, false)
	h := makeHistory(t, 5, 4000)
	h.produce(t, cl)
	total := len(h.records)

	// The reference: one process into a prefix of its own.
	alone := redistest.Prefix(t) + "-alone"
	var stdout syncBuffer
	if err := replayInto(ctx, t, c, url, alone, &stdout); err != nil {
		t.Fatalf("replay by one process: %v\n%s", err, stdout.String())
	}

	// Fetches wait until both processes are in the group and share the
	// partitions, so that each applies some.
	release := holdFetches(t, c)
	shared := redistest.Prefix(t) + "-shared"
	const group = "rebuild-test"
	outs := []*syncBuffer{{}, {}}
	errs := make(chan error, len(outs))
	for _, out := range outs {
		go func() { errs <- replayInto(ctx, t, c, url, shared, out, "--replay-group", group) }()
	}
	waitShared(t, cl, group, 2)
	before := keysUnder(t, rdb, shared)
	var other syncBuffer
	for _, extra := range [][]string{{"--replay-group", "rebuild-other"}, {}, {"--replay-group", group, "--reset"}} {
		if err := replayInto(ctx, t, c, url, shared, &other, extra...); !errors.Is(err, errReplayRunning) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("replay %q while group %s runs: %v, want it refused", extra, group, err)
		}
	}
	// The group is not joined from another target: its members replay
	// into this one (and a processors' group is refused alike).
	elsewhere := redistest.Prefix(t) + "-elsewhere"
	if err := replayInto(ctx, t, c, url, elsewhere, &other, "--replay-group", group); !errors.Is(err, errReplayRunning) {
		t.Errorf("replay into another prefix in group %s: %v, want it refused", group, err)
	}
	if keys := keysUnder(t, rdb, elsewhere); len(keys) > 0 {
		t.Errorf("the refused replay wrote %q", keys)
	}
	// The processors of the group may still be starting their
	// partitions (writing checkpoints), but delete nothing: a key gone
	// was deleted by a refused replay.
	after := keysUnder(t, rdb, shared)
	for _, k := range before {
		if !slices.Contains(after, k) {
			t.Errorf("refused replays deleted %s", k)
		}
	}
	if owner, err := rdb.Get(ctx, markerKey(shared)).Result(); err != nil || owner != group {
		t.Errorf("replay marker %q (%v) after refused replays, want %q", owner, err, group)
	}
	release()

	for range outs {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("replay in group %s: %v\n%s\n%s", group, err, outs[0].String(), outs[1].String())
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("the replays of the group did not end within 2 minutes")
		}
	}
	for i, out := range outs {
		s := out.String()
		if !strings.Contains(s, fmt.Sprintf("/%d records (", total)) || !strings.Contains(s, fmt.Sprintf("replayed %d records of %d partitions", total, 3*replayPartitions)) {
			t.Errorf("process %d does not report the whole %d records:\n%s", i, total, s)
		}
		var mine int64
		for line := range strings.Lines(s) {
			fmt.Sscanf(line, "replay: this process applied %d records", &mine)
		}
		// A share: some. (Not "less than the whole": a process whose
		// partition moved while it applied is fenced, joins again and
		// applies its new partitions from their checkpoints, so it may
		// count more records than the topics hold.)
		if mine <= 0 {
			t.Errorf("process %d applied %d of %d records, want a share:\n%s", i, mine, total, s)
		}
	}

	sameState(t, redisstore.New(rdb, redisstore.Options{Prefix: alone}), redisstore.New(rdb, redisstore.Options{Prefix: shared}), h)
	strip := func(keys []string, prefix string) []string {
		for i, k := range keys {
			keys[i] = strings.TrimPrefix(k, prefix)
		}
		return keys
	}
	if a, s := strip(keysUnder(t, rdb, alone), alone), strip(keysUnder(t, rdb, shared), shared); !slices.Equal(a, s) {
		t.Errorf("keys differ: %d by one process, %d by two", len(a), len(s))
	}
	groups, err := kadm.NewClient(cl).ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups[group]; ok {
		t.Errorf("consumer group %s left behind", group)
	}
	if n, err := rdb.Exists(ctx, markerKey(shared)).Result(); err != nil || n != 0 {
		t.Errorf("replay marker left behind (%d, %v)", n, err)
	}
}

// sameState checks that a and b hold the state h describes, and the same
// statuses to the version, user by user.
func sameState(t *testing.T, a, b *redisstore.Store, h *history) {
	t.Helper()
	ctx := context.Background()
	requireHistory(t, a, h)
	requireHistory(t, b, h)
	as, err := a.Statuses(ctx, "chat", h.users)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := b.Statuses(ctx, "chat", h.users)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range h.users {
		x, _ := json.Marshal(as[i])
		y, _ := json.Marshal(bs[i])
		if string(x) != string(y) {
			t.Errorf("user %s:\n one process  %s\n two          %s", u, x, y)
		}
	}
	for _, topic := range schemas.StateTopics {
		x, err := a.Checkpoint(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		y, err := b.Checkpoint(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(x.Next, y.Next) || len(x.Rebuild)+len(y.Rebuild) > 0 {
			t.Errorf("checkpoints of %s: %+v by one process, %+v by two", topic, x, y)
		}
	}
}

// holdFetches makes every fetch wait until the returned function is
// called (or the test ends).
func holdFetches(t *testing.T, c *kfake.Cluster) func() {
	var released atomic.Bool
	ch := make(chan struct{})
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !released.Load() {
			c.SleepControl(func() { <-ch })
		}
		return nil, nil, false
	})
	release := func() {
		if released.CompareAndSwap(false, true) {
			close(ch)
		}
	}
	t.Cleanup(release)
	return release
}

// waitShared waits until group has n members, each assigned partitions,
// all of the state topics' partitions among them.
func waitShared(t *testing.T, cl *kgo.Client, group string, n int) {
	t.Helper()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(60 * time.Second)
	for {
		described, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			t.Fatal(err)
		}
		members, assigned := described[group].Members, 0
		shared := len(members) == n
		for _, m := range members {
			a, ok := m.Assigned.AsConsumer()
			mine := 0
			if ok {
				for _, topic := range a.Topics {
					mine += len(topic.Partitions)
				}
			}
			shared = shared && mine > 0
			assigned += mine
		}
		if shared && described[group].State == "Stable" && assigned == 3*replayPartitions {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s not shared by %d members within 60s: %d members, %d partitions assigned, state %s",
				group, n, len(members), assigned, described[group].State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keysUnder lists the keys under prefix on every master, sorted.
func keysUnder(t *testing.T, rdb redis.UniversalClient, prefix string) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		keys []string
	)
	err := scanKeys(context.Background(), rdb, globEscaper.Replace(prefix)+":*", func(_ *redis.Client, batch []string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, batch...)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// A process of a group that stops hands its partitions to the others,
// which finish the whole; a group stopped altogether leaves its marker,
// refuses other replays, and is finished by running it again.
func TestReplayGroupStops(t *testing.T) {
	ctx := context.Background()
	c, cl := replayKafka(t, false)
	h := makeHistory(t, 6, 2000)
	h.produce(t, cl)
	url, rdb := redistest.URL(t), redistest.Client(t)
	prefix := redistest.Prefix(t)
	store := redisstore.New(rdb, redisstore.Options{Prefix: prefix})
	const group = "rebuild-stops"

	// Stopped altogether before applying anything.
	release := holdFetches(t, c)
	stopCtx, stop := context.WithCancel(ctx)
	var stopped syncBuffer
	errs := make(chan error, 2)
	go func() { errs <- replayInto(stopCtx, t, c, url, prefix, &stopped, "--replay-group", group) }()
	waitShared(t, cl, group, 1)
	stop()
	if err := <-errs; !errors.Is(err, errInterrupted) || !strings.Contains(stopped.String(), "--replay-group "+group+" again") {
		t.Fatalf("stopped replay: %v, want interrupted and told to run --replay-group %s again:\n%s", err, group, stopped.String())
	}
	var other syncBuffer
	if err := replayInto(ctx, t, c, url, prefix, &other); !errors.Is(err, errNotEmpty) || !strings.Contains(err.Error(), "--replay-group "+group) {
		t.Fatalf("replay of another group into the stopped one's target: %v, want a refusal naming --replay-group %s", err, group)
	}

	// Run again by two processes; one stops, the other finishes.
	firstCtx, stopFirst := context.WithCancel(ctx)
	defer stopFirst()
	outs := []*syncBuffer{{}, {}}
	go func() { errs <- replayInto(firstCtx, t, c, url, prefix, outs[0], "--replay-group", group) }()
	waitShared(t, cl, group, 1)
	go func() { errs <- replayInto(ctx, t, c, url, prefix, outs[1], "--replay-group", group) }()
	waitShared(t, cl, group, 2)
	stopFirst()
	if err := <-errs; !errors.Is(err, errInterrupted) {
		t.Fatalf("first process stopped: %v, want interrupted\n%s", err, outs[0].String())
	}
	release()
	select {
	case err := <-errs:
		if err != nil {
			t.Fatalf("second process: %v\n%s", err, outs[1].String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the second process did not finish within 2 minutes")
	}
	if s := outs[1].String(); !strings.Contains(s, "joining the replay of consumer group "+group) ||
		!strings.Contains(s, fmt.Sprintf("replayed %d records of %d partitions", len(h.records), 3*replayPartitions)) {
		t.Errorf("the second process did not join and finish the whole:\n%s", s)
	}
	requireHistory(t, store, h)
	if n, err := store.Rebuilding(ctx); err != nil || n != 0 {
		t.Errorf("%d partitions still rebuilding (%v)", n, err)
	}
	if n, err := rdb.Exists(ctx, markerKey(prefix)).Result(); err != nil || n != 0 {
		t.Errorf("replay marker left behind (%d, %v)", n, err)
	}
}

// A process joining its group while the first one empties the target
// waits for the reset to end before it reads any checkpoint; a --reset
// takes over a reset whose process died.
func TestReplayWaitsForReset(t *testing.T) {
	ctx := context.Background()
	c, cl := replayKafka(t, false)
	h := makeHistory(t, 7, 500)
	h.produce(t, cl)
	url, rdb := redistest.URL(t), redistest.Client(t)
	const group = "rebuild-waits"
	for _, reset := range []bool{false, true} {
		prefix := redistest.Prefix(t) + fmt.Sprint(reset)
		if err := rdb.Set(ctx, markerKey(prefix), resetPhase+group, 0).Err(); err != nil {
			t.Fatal(err)
		}
		args := []string{"--replay-group", group}
		if reset {
			args = append(args, "--reset")
		}
		var out syncBuffer
		done := make(chan error, 1)
		go func() { done <- replayInto(ctx, t, c, url, prefix, &out, args...) }()
		if !reset {
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(out.String(), "waiting for the --reset") {
				if time.Now().After(deadline) {
					t.Fatalf("the joining process does not wait for the reset:\n%s", out.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n, err := rdb.Exists(ctx, prefix+":checkpoint:"+schemas.SessionsTopic).Result(); err != nil || n != 0 {
				t.Fatalf("the waiting process wrote checkpoints (%d, %v)", n, err)
			}
			// The reset ends.
			if err := rdb.Set(ctx, markerKey(prefix), group, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("replay %q: %v\n%s", args, err, out.String())
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("replay %q did not end within 2 minutes:\n%s", args, out.String())
		}
		requireHistory(t, redisstore.New(rdb, redisstore.Options{Prefix: prefix}), h)
	}
}
