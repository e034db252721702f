package redisstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

// keySlot computes the slot a real cluster computes, for keys with a hash
// tag, an empty one, or none.
func TestKeySlot(t *testing.T) {
	rdb := redistest.ClusterClient(t)
	for _, key := range []string{"", "a", "presence:{chat/alice}:f", "presence:alive:{17}", "{}x", "x{}{y}", "{user1000}.following", "123456789", "é{ü}"} {
		want, err := rdb.ClusterKeySlot(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := keySlot(key); int64(got) != want {
			t.Errorf("keySlot(%q) = %d, the cluster says %d", key, got, want)
		}
	}
}

// A master of a real cluster that loses the data of a store, though it
// holds not the checkpoints of sessions, makes the state rebuilding at the next
// read of the checkpoints, which are forgotten; once reset, the state is
// whole again and a second loss is seen too. A store never built writes no
// marker.
func TestLostMaster(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s, err := Open(ctx, redistest.SharedCluster(t).SeedURL(), Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rdb := redistest.ClusterClient(t)
	if n, err := s.Rebuilding(ctx); err != nil || n != len(schemas.StateTopics) {
		t.Fatalf("a store never built: %d rebuilding (%v), want %d", n, err, len(schemas.StateTopics))
	}
	if keys := keysUnder(t, rdb, prefix); len(keys) != 0 {
		t.Fatalf("reading a store never built wrote %v", keys)
	}

	build := func() {
		t.Helper()
		for _, topic := range schemas.StateTopics {
			if err := s.Reset(ctx, topic, "id", 4, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.Rebuilding(ctx); err != nil || n != 0 {
			t.Fatalf("a store built: %d rebuilding (%v), want 0", n, err)
		}
	}
	build()
	// The checkpoints all share one master: lose the store's keys on
	// another one.
	home := s.checkpointKey(schemas.SessionsTopic)
	for round := range 2 {
		var (
			mu   sync.Mutex
			lost string
		)
		err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			keys, err := m.Keys(ctx, prefix+":*").Result()
			mu.Lock()
			defer mu.Unlock()
			if err != nil || len(keys) == 0 || lost != "" || slices.Contains(keys, home) {
				return err
			}
			lost = m.Options().Addr
			for _, k := range keys {
				if err := m.Unlink(ctx, k).Err(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || lost == "" {
			t.Fatalf("round %d: no master lost the store's keys (%v)", round, err)
		}
		n, err := s.Rebuilding(ctx)
		if err != nil || n == 0 {
			t.Fatalf("round %d: master %s lost its data: %d rebuilding (%v), want some", round, lost, n, err)
		}
		for _, topic := range schemas.StateTopics {
			if cp, err := s.Checkpoint(ctx, topic); err != nil || len(cp.Next) != 0 {
				t.Fatalf("round %d: checkpoint of %s after the loss: %+v (%v), want none", round, topic, cp, err)
			}
		}
		build()
	}
}

func keysUnder(t *testing.T, rdb *redis.ClusterClient, prefix string) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		keys []string
	)
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		k, err := m.Keys(ctx, prefix+":*").Result()
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, k...)
		return err
	})
	if err != nil {
		t.Fatal(fmt.Errorf("listing keys: %w", err))
	}
	return keys
}

// A state built before the markers were gets them at the next read of its
// checkpoints, and is guarded from then on.
func TestMarkersOfAnOlderState(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s, err := Open(ctx, redistest.SharedCluster(t).SeedURL(), Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Reset(ctx, schemas.SessionsTopic, "id", 1, map[int32]int64{0: 0}); err != nil {
		t.Fatal(err)
	}
	rdb := redistest.ClusterClient(t)
	var markers []string
	for _, k := range keysUnder(t, rdb, prefix) {
		if k != s.checkpointKey(schemas.SessionsTopic) && k != s.generationKey() {
			markers = append(markers, k)
		}
	}
	if len(markers) != 3 {
		t.Fatalf("after a reset: markers %q, want 3", markers)
	}
	for _, k := range markers {
		if err := rdb.Unlink(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Checkpoint(ctx, schemas.SessionsTopic); err != nil {
		t.Fatal(err)
	}
	if got := len(keysUnder(t, rdb, prefix)); got != 5 {
		t.Fatalf("after a read of the checkpoints: %d keys, want the checkpoint, the generation and 3 markers", got)
	}
	if err := rdb.Unlink(ctx, markers[0]).Err(); err != nil {
		t.Fatal(err)
	}
	if cp, err := s.Checkpoint(ctx, schemas.SessionsTopic); err != nil || len(cp.Next) != 0 {
		t.Fatalf("after the loss of a marker: %+v (%v), want no checkpoint", cp, err)
	}
}
