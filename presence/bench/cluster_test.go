package bench_test

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/presence/bench"
	"github.com/presence-im/presence/redisstore/redistest"
)

// On a Redis Cluster (the test binary's 3 masters) every scenario runs,
// both sides, and its work is checked as on one server (the keys counted,
// such as the raw side's one hash per online user, are every master's).
func TestCluster(t *testing.T) {
	rdb := redistest.ClusterClient(t)
	ctx := context.Background()
	flushCluster(t, rdb)
	cfg := smallConfig(t, "14")
	cfg.RedisURL = redistest.SharedCluster(t).SeedURL()
	// Three masters' used_memory moves by tens of kilobytes on its own
	// (client buffers, the scripts loaded): enough users that theirs shows.
	cfg.MemoryUsers = 3000
	rep, progress := checkSmallRun(t, cfg)
	if !strings.Contains(rep.Machine.Redis, ".") || rep.Machine.RedisMasters != 3 || !strings.Contains(progress, "a cluster of 3 masters") {
		t.Errorf("redis version %q, %d masters, progress:\n%s\nwant the masters' version, and 3 masters said", rep.Machine.Redis, rep.Machine.RedisMasters, progress)
	}
	var table bytes.Buffer
	if err := bench.WriteTable(&table, rep); err != nil || !strings.Contains(table.String(), "total of the cluster's 3 masters") {
		t.Errorf("table (%v) does not say the redis figures are the masters' total:\n%s", err, table.String())
	}
	// The run leaves no key on any master.
	var n atomic.Int32
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n.Add(1)
		keys, err := c.DBSize(ctx).Result()
		if keys != 0 {
			t.Errorf("the run left %d keys on master %s, want none", keys, c.Options().Addr)
		}
		return err
	})
	if err != nil || n.Load() != 3 {
		t.Fatalf("visited %d masters (%v), want 3", n.Load(), err)
	}
}

// A Redis Cluster given whose masters hold keys is refused before anything
// is written to it.
func TestRefusesNonEmptyCluster(t *testing.T) {
	rdb := redistest.ClusterClient(t)
	ctx := context.Background()
	flushCluster(t, rdb)
	defer flushCluster(t, rdb)
	keys := []string{"precious-a", "precious-b", "precious-c"}
	for _, key := range keys {
		if err := rdb.Set(ctx, key, "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := smallConfig(t, "14")
	cfg.RedisURL, cfg.Scenarios = redistest.SharedCluster(t).URL(), []string{"ingest"}
	_, err := bench.Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "holds 3 keys on its 3 masters") {
		t.Fatalf("got %v, want a refusal naming the keys held", err)
	}
	for _, key := range keys {
		if v, err := rdb.Get(ctx, key).Result(); v != "1" {
			t.Errorf("the key %s held is now %q (%v), want it untouched", key, v, err)
		}
	}
}

// flushCluster empties every master of the test binary's cluster, which
// only this package's tests use, one at a time.
func flushCluster(t *testing.T, rdb *redis.ClusterClient) {
	t.Helper()
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
		return c.FlushDB(ctx).Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}
