package redisstore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

// Dial recognises a Redis Cluster from a single seed and from go-redis's
// cluster URL form, and a single server as one.
func TestDialRecognisesACluster(t *testing.T) {
	ctx := context.Background()
	cluster := redistest.SharedCluster(t)
	for _, tc := range []struct {
		name, url string
		cluster   bool
	}{
		{"seed", cluster.SeedURL(), true},
		{"cluster url", cluster.URL(), true},
		{"single server", redistest.URL(t), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, err := redisstore.Dial(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if _, ok := rdb.(*redis.ClusterClient); ok != tc.cluster {
				t.Fatalf("Dial(%s) = %T, want a cluster client: %v", tc.url, rdb, tc.cluster)
			}
		})
	}
}

// Neither the error of a cluster URL that does not parse nor that of a
// seed that does not answer holds the password.
func TestDialErrorsHideThePassword(t *testing.T) {
	ctx := context.Background()
	for _, raw := range []string{
		"redis://:" + secret + "@127.0.0.1:1?addr=127.0.0.1:2&dial_timeout=soon",
		"redis://:" + secret + "@127.0.0.1:1/0?dial_timeout=100ms",
		"redis://127.0.0.1:1?addr=:" + secret + "@127.0.0.1:2",
	} {
		_, err := redisstore.Open(ctx, raw, redisstore.Options{})
		if err == nil {
			t.Fatalf("Open(%q) succeeded", redisstore.RedactURL(raw))
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Open: %v: it holds the password", err)
		}
	}
}

// On a real 3-master cluster opened from a seed, a reset of some
// partitions deletes the keys of their users on every master, and only
// theirs.
func TestResetOnEveryMaster(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s, err := redisstore.Open(ctx, redistest.SharedCluster(t).SeedURL(), redisstore.Options{Prefix: prefix, OfflineTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 4
	var changes []redisstore.Change
	for i := range 40 {
		changes = append(changes, connect(fmt.Sprintf("u%d", i), "s1", 1, base))
	}
	apply(t, s, changes...)
	if err := s.Reset(ctx, schemas.SessionsTopic, "id", n, map[int32]int64{0: 10, 1: 10}); err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		st := status(t, s, c.User)
		key := schemas.UserKey(c.App, c.User)
		if reset := schemas.Partition([]byte(key), n) <= 1; reset != (st == nil) {
			t.Errorf("%s of partition %d: state %+v after the reset of partitions 0 and 1", c.User, schemas.Partition([]byte(key), n), st)
		}
	}
	// The users are spread over the three masters.
	rdb := redistest.ClusterClient(t)
	var mu sync.Mutex
	held := 0
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, prefix+":{*").Result() // every page, not SCAN's first
		mu.Lock()
		defer mu.Unlock()
		if len(keys) > 0 {
			held++
		}
		return err
	})
	if err != nil || held != 3 {
		t.Fatalf("masters holding users after the reset: %d (%v), want 3", held, err)
	}
}

// On a cluster, scripts are loaded on every master once, not with every
// batch; after the masters lost their scripts, a batch fails (to be
// retried whole) at most once, and the next applies it all.
func TestClusterScripts(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.ClusterClient(t)
	s := redisstore.New(rdb, redisstore.Options{Prefix: redistest.Prefix(t), OfflineTTL: time.Hour})
	loads := func() int64 {
		var mu sync.Mutex
		var n int64
		err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			info, err := m.Info(ctx, "commandstats").Result()
			for line := range strings.SplitSeq(info, "\n") {
				if rest, ok := strings.CutPrefix(line, "cmdstat_script|load:calls="); ok {
					calls, _, _ := strings.Cut(rest, ",")
					var c int64
					fmt.Sscan(calls, &c)
					mu.Lock()
					n += c
					mu.Unlock()
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	apply(t, s, connect("ann", "s0", 1, base))
	before := loads()
	if before == 0 {
		t.Fatal("no script load counted on the masters")
	}
	for i := range 10 {
		apply(t, s, connect(fmt.Sprintf("u%d", i), "s1", 1, base))
	}
	if after := loads(); after != before {
		t.Errorf("10 batches loaded scripts %d times, want none", after-before)
	}
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.ScriptFlush(ctx).Err() })
	if err != nil {
		t.Fatal(err)
	}
	changes := []redisstore.Change{connect("ann", "s1", 2, base), connect("bob", "s1", 3, base)}
	if _, err := s.Apply(ctx, changes, false); err != nil {
		t.Logf("the first batch after the flush: %v", err)
		apply(t, s, changes...)
	}
	for _, user := range []string{"ann", "bob"} {
		if st := status(t, s, user); st == nil || !slices.Contains(sessionIDs(st), "s1") {
			t.Fatalf("%s after the script flush: %+v, want session s1", user, st)
		}
	}
}
