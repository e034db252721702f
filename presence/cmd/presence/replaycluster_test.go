package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
)

// A replay into a real 3-master Redis Cluster, given by one seed, builds
// the state of every user on whichever master holds it; it refuses a
// target holding state on any master, and --reset empties every master
// before replaying again. Its summary counts the users of every master.
func TestReplayIntoCluster(t *testing.T) {
	ctx := context.Background()
	c, cl := replayKafka(t, false)
	h := makeHistory(t, 3, 600)
	h.produce(t, cl)
	cluster := redistest.SharedCluster(t)
	prefix := redistest.Prefix(t)
	rdb := redistest.ClusterClient(t)
	store := redisstore.New(rdb, redisstore.Options{Prefix: prefix})

	var stdout syncBuffer
	if err := replayInto(ctx, t, c, cluster.SeedURL(), prefix, &stdout); err != nil {
		t.Fatalf("presence replay: %v\n%s", err, stdout.String())
	}
	requireHistory(t, store, h)
	statuses, err := store.Statuses(ctx, "chat", h.users)
	if err != nil {
		t.Fatal(err)
	}
	known := 0
	for _, st := range statuses {
		if st != nil {
			known++
		}
	}
	if want := fmt.Sprintf("redis now holds %d users", known); !strings.Contains(stdout.String(), want) {
		t.Errorf("the summary does not say %q:\n%s", want, stdout.String())
	}

	// A key of a user whose state nothing built, on whichever master.
	if err := rdb.HSet(ctx, prefix+":{chat/ghost}", "v", 1).Err(); err != nil {
		t.Fatal(err)
	}
	stdout = syncBuffer{}
	err = replayInto(ctx, t, c, cluster.URL(), prefix, &stdout)
	if !errors.Is(err, errNotEmpty) {
		t.Fatalf("a replay into a built cluster: %v, want a refusal", err)
	}
	before := keysOnMasters(t, rdb, prefix)
	stdout = syncBuffer{}
	if err := replayInto(ctx, t, c, cluster.URL(), prefix, &stdout, "--reset"); err != nil {
		t.Fatalf("presence replay --reset: %v\n%s", err, stdout.String())
	}
	if want := fmt.Sprintf("--reset: deleted %d keys", before); !strings.Contains(stdout.String(), want) {
		t.Errorf("output does not say %q:\n%s", want, stdout.String())
	}
	if st, err := store.Status(ctx, "chat", "ghost"); err != nil || st != nil {
		t.Errorf("--reset left the ghost user: %+v, %v", st, err)
	}
	requireHistory(t, store, h)
}

// keysOnMasters counts the keys under prefix on every master.
func keysOnMasters(t *testing.T, rdb *redis.ClusterClient, prefix string) int64 {
	t.Helper()
	var n atomic.Int64
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, prefix+":*").Result()
		n.Add(int64(len(keys)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n.Load()
}
