package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func newStore(t *testing.T, ttl time.Duration) *redisstore.Store {
	t.Helper()
	return redisstore.New(redistest.Client(t), redisstore.Options{Prefix: redistest.Prefix(t), OfflineTTL: ttl})
}

// base is a fixed, recent time: records carry their own times, and the
// offline deadline counts from them.
var base = time.Now().Truncate(time.Millisecond).Add(-time.Minute)

func connect(user, session string, version int64, at time.Time) redisstore.Change {
	return redisstore.Change{Op: redisstore.Connect, App: "chat", User: user, Session: session,
		Device: "ios", DeviceID: "dev-" + session, Gateway: "gw-1", At: at, Version: version}
}

func disconnect(user, session string, version int64, at time.Time) redisstore.Change {
	return redisstore.Change{Op: redisstore.Disconnect, App: "chat", User: user, Session: session, At: at, Version: version}
}

func apply(t *testing.T, s *redisstore.Store, changes ...redisstore.Change) int {
	t.Helper()
	out, err := s.Apply(context.Background(), changes, false)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	n := 0
	for _, o := range out {
		if o.Applied {
			n++
		}
	}
	return n
}

func status(t *testing.T, s *redisstore.Store, user string) *redisstore.Status {
	t.Helper()
	st, err := s.Status(context.Background(), "chat", user)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func sessionIDs(st *redisstore.Status) []string {
	var ids []string
	for _, s := range st.Sessions {
		ids = append(ids, s.Session)
	}
	return ids
}

func TestMultiDevice(t *testing.T) {
	s := newStore(t, time.Hour)
	apply(t, s, connect("alice", "phone", 1, base), connect("alice", "laptop", 2, base.Add(time.Second)))

	st := status(t, s, "alice")
	if st.State != redisstore.Online || len(st.Sessions) != 2 || st.Version != 2 {
		t.Fatalf("after two connects: %+v", st)
	}
	if st.Sessions[0].Session != "phone" || st.Sessions[0].DeviceID != "dev-phone" || !st.Sessions[0].ConnectedAt.Equal(base) {
		t.Fatalf("first session: %+v", st.Sessions[0])
	}

	apply(t, s, disconnect("alice", "phone", 3, base.Add(2*time.Second)))
	st = status(t, s, "alice")
	if st.State != redisstore.Online || len(st.Sessions) != 1 || st.Sessions[0].Session != "laptop" || st.LastSeen != nil {
		t.Fatalf("after one disconnect: %+v", st)
	}

	end := base.Add(3 * time.Second)
	apply(t, s, disconnect("alice", "laptop", 4, end))
	st = status(t, s, "alice")
	if st.State != redisstore.Offline || len(st.Sessions) != 0 || st.LastSeen == nil || !st.LastSeen.Equal(end) || st.Version != 4 {
		t.Fatalf("after both disconnects: %+v", st)
	}
}

func TestDuplicateAndOlderRecordsChangeNothing(t *testing.T) {
	s := newStore(t, time.Hour)
	apply(t, s, connect("bob", "s1", 10, base), disconnect("bob", "s1", 11, base.Add(time.Second)))
	before := status(t, s, "bob")

	for _, c := range []struct {
		name   string
		change redisstore.Change
	}{
		{"duplicate disconnect", disconnect("bob", "s1", 11, base.Add(time.Second))},
		{"older connect", connect("bob", "s1", 10, base)},
		{"much older connect of another session", connect("bob", "s0", 3, base)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if n := apply(t, s, c.change); n != 0 {
				t.Fatalf("applied %d, want 0", n)
			}
			after := status(t, s, "bob")
			if after.State != before.State || after.Version != before.Version || len(after.Sessions) != 0 || !after.LastSeen.Equal(before.LastSeen.Time) {
				t.Fatalf("state changed: before %+v, after %+v", before, after)
			}
		})
	}
}

func TestOfflineTTL(t *testing.T) {
	ttl := time.Hour
	s := newStore(t, ttl)
	// carol went offline more than a TTL ago; dave less than a TTL ago.
	old := time.Now().Add(-ttl - time.Minute)
	apply(t, s, connect("carol", "s1", 1, old), disconnect("carol", "s1", 2, old.Add(time.Second)))
	apply(t, s, connect("dave", "s1", 1, base), disconnect("dave", "s1", 2, base.Add(time.Second)))

	if st := status(t, s, "carol"); st != nil {
		t.Fatalf("carol offline for longer than the TTL: got %+v, want nil", st)
	}
	if st := status(t, s, "dave"); st == nil || st.State != redisstore.Offline {
		t.Fatalf("dave offline within the TTL: got %+v", st)
	}
	// Coming back online clears the deadline.
	apply(t, s, connect("dave", "s2", 3, base.Add(2*time.Second)))
	if st := status(t, s, "dave"); st == nil || st.State != redisstore.Online {
		t.Fatalf("dave back online: %+v", st)
	}
}

// A short real TTL, read back with a deadline: Redis itself expires the key.
func TestOfflineTTLExpiresInRedis(t *testing.T) {
	s := newStore(t, 300*time.Millisecond)
	now := time.Now()
	apply(t, s, connect("erin", "s1", 1, now), disconnect("erin", "s1", 2, now))
	if st := status(t, s, "erin"); st == nil {
		t.Fatal("erin unknown right after going offline")
	}
	deadline := time.Now().Add(5 * time.Second)
	for status(t, s, "erin") != nil {
		if time.Now().After(deadline) {
			t.Fatal("erin still known 5s after a 300ms offline TTL")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStatusesBatch(t *testing.T) {
	s := newStore(t, time.Hour)
	apply(t, s, connect("u1", "a", 1, base), connect("u2", "b", 1, base), disconnect("u2", "b", 2, base))

	got, err := s.Statuses(context.Background(), "chat", []string{"u2", "nobody", "u1", "u2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d results, want 4", len(got))
	}
	if got[0] == nil || got[0].User != "u2" || got[0].State != redisstore.Offline {
		t.Errorf("[0] = %+v, want u2 offline", got[0])
	}
	if got[1] != nil {
		t.Errorf("[1] = %+v, want nil for an unknown user", got[1])
	}
	if got[2] == nil || got[2].User != "u1" || got[2].State != redisstore.Online {
		t.Errorf("[2] = %+v, want u1 online", got[2])
	}
	if got[3] == nil || got[3].User != "u2" {
		t.Errorf("[3] = %+v, want u2 again", got[3])
	}
	// Another app does not see these users.
	other, err := s.Statuses(context.Background(), "other", []string{"u1"})
	if err != nil || other[0] != nil {
		t.Errorf("other app: %+v, %v", other[0], err)
	}
}

func TestCheckpointAdvance(t *testing.T) {
	s := newStore(t, time.Hour)
	ctx := context.Background()
	cp, err := s.Checkpoint(ctx, "topic")
	if err != nil || cp.TopicID != "" || len(cp.Next) != 0 {
		t.Fatalf("empty store: %+v, %v", cp, err)
	}
	// Partitions 0 and 3 hold records to rebuild, 1 and 2 are empty.
	if err := s.Reset(ctx, "topic", "id-1", 4, map[int32]int64{0: 10, 1: 0, 2: 0, 3: 42}); err != nil {
		t.Fatal(err)
	}
	cp, err = s.Checkpoint(ctx, "topic")
	if err != nil || len(cp.Rebuild) != 2 || cp.Rebuild[0] != 10 || cp.Rebuild[3] != 42 {
		t.Fatalf("rebuild targets after a reset: %+v, %v", cp, err)
	}
	if err := s.Advance(ctx, "topic", map[int32]int64{0: 0, 3: 0}, map[int32]int64{0: 7, 3: 42}, nil, nil); err != nil {
		t.Fatal(err)
	}
	cp, err = s.Checkpoint(ctx, "topic")
	if err != nil || cp.TopicID != "id-1" || cp.Partitions != 4 || cp.Next[0] != 7 || cp.Next[3] != 42 || cp.Next[1] != 0 || len(cp.Next) != 4 {
		t.Fatalf("checkpoint: %+v, %v", cp, err)
	}
	// Partition 3 reached its target, partition 0 has not.
	if len(cp.Rebuild) != 1 || cp.Rebuild[0] != 10 {
		t.Fatalf("rebuild targets after advancing: %v, want only partition 0's", cp.Rebuild)
	}
	// From a value that is no longer there: nothing moves.
	err = s.Advance(ctx, "topic", map[int32]int64{0: 7, 3: 40}, map[int32]int64{0: 9, 3: 50}, nil, nil)
	if !errors.Is(err, redisstore.ErrCheckpointMoved) {
		t.Fatalf("advance from a stale value: %v, want ErrCheckpointMoved", err)
	}
	// From a partition Redis does not have (it lost its state).
	err = s.Advance(ctx, "other", map[int32]int64{0: 7}, map[int32]int64{0: 9}, nil, nil)
	if !errors.Is(err, redisstore.ErrCheckpointMoved) {
		t.Fatalf("advance of a lost checkpoint: %v, want ErrCheckpointMoved", err)
	}
	if cp, _ := s.Checkpoint(ctx, "topic"); cp.Next[0] != 7 || cp.Next[3] != 42 {
		t.Fatalf("a refused advance wrote: %+v", cp)
	}
	// Offline announcements pending from offset 5 of partition 0; then
	// none; a reset forgets them.
	if err := s.Advance(ctx, "topic", map[int32]int64{0: 7}, map[int32]int64{0: 8}, nil, map[int32]int64{0: 5}); err != nil {
		t.Fatal(err)
	}
	if cp, _ := s.Checkpoint(ctx, "topic"); len(cp.Told) != 1 || cp.Told[0] != 5 || cp.Next[0] != 8 || len(cp.Next) != 4 {
		t.Fatalf("after advancing with announcements pending: %+v", cp)
	}
	if err := s.Advance(ctx, "topic", map[int32]int64{0: 8}, map[int32]int64{0: 9}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if cp, _ := s.Checkpoint(ctx, "topic"); len(cp.Told) != 0 {
		t.Fatalf("after advancing with none pending: told %v", cp.Told)
	}
	if err := s.Advance(ctx, "topic", map[int32]int64{0: 9}, map[int32]int64{0: 10}, nil, map[int32]int64{0: 9}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(ctx, "topic", "id-1", 4, map[int32]int64{0: 10}); err != nil {
		t.Fatal(err)
	}
	if cp, _ := s.Checkpoint(ctx, "topic"); len(cp.Told) != 0 {
		t.Fatalf("after a reset: told %v", cp.Told)
	}
}

// Reset deletes the users of the partitions it resets, and only those.
func TestReset(t *testing.T) {
	s := newStore(t, time.Hour)
	ctx := context.Background()
	const n = 4
	var changes []redisstore.Change
	byPartition := map[int][]string{}
	for i := range 40 {
		user := fmt.Sprintf("user-%d", i)
		changes = append(changes, connect(user, "s", 1, base))
		p := schemas.Partition([]byte(schemas.UserKey("chat", user)), n)
		byPartition[p] = append(byPartition[p], user)
	}
	apply(t, s, changes...)
	if len(byPartition[1]) == 0 || len(byPartition[2]) == 0 {
		t.Fatalf("test users do not cover partitions 1 and 2: %v", byPartition)
	}
	if err := s.Reset(ctx, schemas.SessionsTopic, "id", n, map[int32]int64{1: 40}); err != nil {
		t.Fatal(err)
	}
	// Partition 1 of sessions is being rebuilt, its partitions 0, 2 and 3
	// have no checkpoint; friends and subscriptions were never built.
	if pending, err := s.Rebuilding(ctx); err != nil || pending != 6 {
		t.Fatalf("partitions not built after a reset: %d, %v; want 6", pending, err)
	}
	for p, users := range byPartition {
		got, err := s.Statuses(ctx, "chat", users)
		if err != nil {
			t.Fatal(err)
		}
		for i, st := range got {
			if gone := st == nil; gone != (p == 1) {
				t.Errorf("partition %d user %s: deleted=%v", p, users[i], gone)
			}
		}
	}
	if err := s.Advance(ctx, schemas.SessionsTopic, map[int32]int64{1: 0}, map[int32]int64{1: 40}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if pending, err := s.Rebuilding(ctx); err != nil || pending != 5 {
		t.Fatalf("partitions not built once partition 1 reached its target: %d, %v; want 5", pending, err)
	}
}

// The state's generation changes whenever a rebuild begins or checkpoints
// are forgotten, and is gone with the data; applying and advancing keep it.
func TestGeneration(t *testing.T) {
	rdb, prefix := redistest.Client(t), redistest.Prefix(t)
	s := redisstore.New(rdb, redisstore.Options{Prefix: prefix})
	ctx := context.Background()
	generation := func() string {
		t.Helper()
		g, err := s.Generation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, seen, err := s.StatusesIntact(ctx, "chat", []string{"frank"})
		if err != nil || seen.Generation != g {
			t.Fatalf("a lookup saw generation %q (%v), Generation says %q", seen.Generation, err, g)
		}
		return g
	}
	if g := generation(); g != "" {
		t.Fatalf("generation of a state never built: %q, want none", g)
	}
	if err := s.Reset(ctx, schemas.SessionsTopic, "id", 2, map[int32]int64{0: 0, 1: 0}); err != nil {
		t.Fatal(err)
	}
	first := generation()
	apply(t, s, connect("frank", "s1", 1, base))
	if err := s.Advance(ctx, schemas.SessionsTopic, map[int32]int64{0: 0, 1: 0}, map[int32]int64{0: 1, 1: 0}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if g := generation(); first == "" || g != first {
		t.Fatalf("generation after a reset %q, after applying %q: want one, kept", first, g)
	}
	if err := s.Reset(ctx, schemas.SessionsTopic, "id", 2, map[int32]int64{1: 0}); err != nil {
		t.Fatal(err)
	}
	second := generation()
	if second == "" || second == first {
		t.Fatalf("generation after a second reset %q, before %q: want a new one", second, first)
	}
	if err := s.Forget(ctx, schemas.SessionsTopic); err != nil {
		t.Fatal(err)
	}
	if g := generation(); g == "" || g == second {
		t.Fatalf("generation after forgetting %q, before %q: want a new one", g, second)
	}
	// The loss: every key of the store goes.
	keys, err := rdb.Keys(ctx, prefix+":*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys of the store: %v, %v", keys, err)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	if g := generation(); g != "" {
		t.Fatalf("generation after the data is lost: %q, want none", g)
	}
}

// Apply survives Redis forgetting its scripts.
func TestApplyReloadsScript(t *testing.T) {
	rdb := redistest.Client(t)
	s := redisstore.New(rdb, redisstore.Options{Prefix: redistest.Prefix(t)})
	apply(t, s, connect("frank", "s1", 1, base))
	if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	apply(t, s, connect("frank", "s2", 2, base))
	if st := status(t, s, "frank"); len(st.Sessions) != 2 {
		t.Fatalf("sessions after script flush: %v", sessionIDs(st))
	}
}

// Times read with exactly three fractional digits, whatever their value.
func TestTimeJSON(t *testing.T) {
	for ms, want := range map[int64]string{
		1_700_000_000_000: `"2023-11-14T22:13:20.000Z"`,
		1_700_000_000_840: `"2023-11-14T22:13:20.840Z"`,
		1_700_000_000_389: `"2023-11-14T22:13:20.389Z"`,
	} {
		b, err := json.Marshal(redisstore.Time{Time: time.UnixMilli(ms)})
		if err != nil || string(b) != want {
			t.Errorf("%d: %s, %v; want %s", ms, b, err, want)
		}
	}
}

// Partitions apply side by side into a Redis that lost its scripts: no
// batch runs half without its script, so no record is applied out of
// order (and dropped as older).
func TestApplyInParallelAfterScriptFlush(t *testing.T) {
	rdb := redistest.Client(t)
	s := redisstore.New(rdb, redisstore.Options{Prefix: redistest.Prefix(t)})
	for round := range 3 {
		if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				var changes []redisstore.Change
				for u := range 1000 {
					user := fmt.Sprintf("r%d-g%d-u%d", round, g, u)
					changes = append(changes, connect(user, "s1", 1, base), connect(user, "s2", 2, base))
				}
				if _, err := s.Apply(context.Background(), changes, false); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for g := range 8 {
			for u := range 1000 {
				user := fmt.Sprintf("r%d-g%d-u%d", round, g, u)
				if st := status(t, s, user); st == nil || len(st.Sessions) != 2 {
					t.Fatalf("round %d: %s has %v, want sessions s1 and s2", round, user, st)
				}
			}
		}
	}
}

// On a sharded Redis (a real 3-master Redis Cluster, a ring), a script call takes the
// records of one user only: applied that way, interleaved records of many
// users leave the same state and outcomes as on a single Redis.
func TestApplyOnShardedRedis(t *testing.T) {
	ctx := context.Background()
	opts, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": opts.Addr}, DB: opts.DB})
	t.Cleanup(func() { ring.Close() })
	var changes []redisstore.Change
	for i := range 300 { // more than one call's worth per user
		user, session := fmt.Sprintf("u%d", i%3), fmt.Sprintf("s%d", i%5)
		if i%4 == 3 {
			changes = append(changes, disconnect(user, session, int64(i), base))
		} else {
			changes = append(changes, connect(user, session, int64(i), base))
		}
	}
	prefix := redistest.Prefix(t)
	single := redisstore.New(redistest.Client(t), redisstore.Options{Prefix: prefix + "-single", OfflineTTL: time.Hour})
	want, err := single.Apply(ctx, changes, false)
	if err != nil {
		t.Fatal(err)
	}
	for name, rdb := range map[string]redis.UniversalClient{"ring": ring, "cluster": redistest.ClusterClient(t)} {
		sharded := redisstore.New(rdb, redisstore.Options{Prefix: prefix + "-" + name, OfflineTTL: time.Hour})
		got, err := sharded.Apply(ctx, changes, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range want {
			if got[i].Applied != want[i].Applied || got[i].Announce != want[i].Announce || got[i].Visible != want[i].Visible {
				t.Fatalf("%s: outcome %d (%+v): sharded %+v, single %+v", name, i, changes[i], got[i], want[i])
			}
		}
		for _, user := range []string{"u0", "u1", "u2"} {
			w, _ := single.Status(ctx, "chat", user)
			g, err := sharded.Status(ctx, "chat", user)
			if err != nil || w == nil || g == nil || g.Version != w.Version || len(g.Sessions) != len(w.Sessions) || g.State != w.State {
				t.Fatalf("%s: %s: sharded %+v, %v; single %+v", name, user, g, err, w)
			}
		}
	}
}

// A lookup reads the same statuses whichever protocol the client speaks
// (RESP3 maps, RESP2 arrays), and a key that is not a hash fails it with
// Redis's own error rather than reading as an unknown user.
func TestStatusesOverEitherProtocol(t *testing.T) {
	users := []string{"u1", "u2", "nobody", "u3", "u1"}
	overEitherProtocol(t, "u4", func(protocol int, s *redisstore.Store) string {
		if protocol == 3 {
			apply(t, s, connect("u1", "b", 1, base), connect("u1", "a", 2, base.Add(-time.Second)),
				connect("u2", "x", 1, base), disconnect("u2", "x", 2, base.Add(time.Second)),
				connect("u3", "y", 1, base))
			apply(t, s, redisstore.Change{Op: redisstore.SetCustom, App: "chat", User: "u3",
				Custom: redisstore.Custom{Status: 2, Text: "a\r\n$3\r\nb"}, At: base, Version: 2})
		}
		got, err := s.Statuses(context.Background(), "chat", users)
		if err != nil {
			t.Fatalf("resp%d: %v", protocol, err)
		}
		b, _ := json.Marshal(got)
		if got[0] == nil || strings.Join(sessionIDs(got[0]), ",") != "a,b" || got[4] != got[0] ||
			got[1] == nil || got[1].LastSeen == nil || got[2] != nil || got[3] == nil || got[3].Custom == nil || got[3].Custom.Text != "a\r\n$3\r\nb" {
			t.Errorf("resp%d: %s", protocol, b)
		}
		return string(b)
	}, func(s *redisstore.Store, users []string) error {
		_, err := s.Statuses(context.Background(), "chat", users)
		return err
	})
}

// overEitherProtocol runs read over RESP3 then RESP2 clients of one Redis
// (the first writes what both read), and checks that both read the same,
// and that reading a user whose key holds a string, wrongType, fails with
// Redis's WRONGTYPE through fails.
func overEitherProtocol(t *testing.T, wrongType string, read func(protocol int, s *redisstore.Store) string, fails func(s *redisstore.Store, users []string) error) {
	t.Helper()
	opts, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	prefix := redistest.Prefix(t)
	var answers []string
	for _, protocol := range []int{3, 2} {
		o := *opts
		o.Protocol = protocol
		rdb := redis.NewClient(&o)
		t.Cleanup(func() { rdb.Close() })
		s := redisstore.New(rdb, redisstore.Options{Prefix: prefix, OfflineTTL: time.Hour})
		answers = append(answers, read(protocol, s))
		if err := rdb.Set(context.Background(), prefix+":{chat/"+wrongType+"}", "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := fails(s, []string{wrongType}); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Errorf("resp%d: a key that is not a hash: %v, want WRONGTYPE", protocol, err)
		}
	}
	if answers[0] != answers[1] {
		t.Errorf("resp3 read %s\nresp2 read %s", answers[0], answers[1])
	}
}
