package dev_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/presence/dev"
	"github.com/presence-im/presence/redisstore/redistest"
)

// The whole pipeline on a real 3-master Redis Cluster, given by one seed:
// sessions and batch lookups of users spread over every master, friends,
// a notification, a custom status and a subscription; then every master
// loses its data and the state is rebuilt from the topics into the
// cluster.
func TestClusterEndToEnd(t *testing.T) {
	ctx := context.Background()
	cluster := redistest.SharedCluster(t)
	dir := t.TempDir()
	cfg := dev.Config{DataDir: dir, RedisURL: flushCluster(t), OfflineGrace: time.Second}
	p := startDevWith(t, cfg)

	const n = 30
	users, evs := make([]string, n), make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
		evs[i] = connect(users[i], "s"+users[i])
	}
	if code, body := p.post(t, "/v1/apps/chat/events", events(evs...)); code != http.StatusAccepted {
		t.Fatalf("events: %d %s", code, body)
	}
	allOnline := func(r []*status) bool {
		for i, st := range r {
			if sessions(st) != "online:s"+users[i] {
				return false
			}
		}
		return true
	}
	eventually(t, "30 users online", func() bool { return allOnline(p.query(t, users...)) })
	requireSpread(t, cluster)

	// Friends, a notification, a custom status.
	bob := p.dial(t, "bob", "bob-phone", "ios")
	p.do(t, "PUT", "/v1/apps/chat/users/alice/friends/bob", "")
	eventually(t, "bob is alice's friend and online", func() bool {
		_, body := p.do(t, "GET", "/v1/apps/chat/users/alice/friends/status", "")
		return strings.Contains(body, `"user":"bob","state":"online"`)
	})
	alice := p.dial(t, "alice", "alice-phone", "android")
	bob.expect(t, "presence alice online - 1 sessions")
	p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":2,"text":"on a cluster"}`)
	bob.expect(t, "presence alice online 2:on a cluster 1 sessions")
	alice.expect(t, "sync alice online 2:on a cluster 1 sessions")

	// A subscription: dave hears of alice once it is applied.
	dave := p.dial(t, "dave", "dave-1", "web")
	p.do(t, "POST", "/v1/apps/chat/users/dave/subscriptions", `{"users":["alice"],"ttl_seconds":600}`)
	eventually(t, "dave hears of alice", func() bool {
		p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":3,"text":"`+time.Now().Format(time.RFC3339Nano)+`"}`)
		select {
		case m := <-dave.msgs:
			return m.Type == "presence" && m.User == "alice"
		case <-time.After(time.Second):
			return false
		}
	})
	p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":4,"text":"before the loss"}`)
	// bob hears of every change, in order: those of the wait for dave's
	// subscription, then this one.
	for m := bob.next(t); m.String() != "presence alice online 4:before the loss 1 sessions"; m = bob.next(t) {
		if m.User != "alice" || m.Custom == nil || m.Custom.Status != 3 {
			t.Fatalf("bob heard %q while alice's status changed", m)
		}
	}
	for _, c := range []*client{alice, bob, dave} {
		c.close()
	}
	eventually(t, "alice, bob and dave offline", func() bool {
		r := p.query(t, "alice", "bob", "dave")
		return sessions(r[0]) == "offline:" && sessions(r[1]) == "offline:" && sessions(r[2]) == "offline:"
	})

	// One master that holds no checkpoint loses its data while the
	// pipeline runs: lookups say the state is being rebuilt (or answer
	// 503) until it is whole again.
	// Once a lookup has said so, none answers with users missing until
	// the state is whole (before, the query API may still use the rebuild
	// count it read within the last second).
	flushed := flushOneMaster(t, cluster)
	rebuilding, wrong := 0, 0
	eventually(t, "30 users online again after master "+flushed+" lost its data", func() bool {
		r, ok := lookup(t, p, users...)
		switch {
		case !ok:
			rebuilding++
		case !allOnline(r) && rebuilding > 0:
			wrong++
		}
		return ok && allOnline(r)
	})
	if wrong > 0 {
		t.Errorf("%d lookups answered with users missing and no Presence-Rebuilding, after %d said the state was being rebuilt", wrong, rebuilding)
	}
	t.Logf("%d lookups said the state was being rebuilt", rebuilding)
	_, body := p.do(t, "GET", "/v1/apps/chat/users/bob/friends/status", "")
	if !strings.Contains(body, `"user":"alice","state":"offline"`) || !strings.Contains(body, `"text":"before the loss"`) {
		t.Fatalf("after master %s lost its data, bob's friends: %s", flushed, body)
	}

	// Every master loses its data while the pipeline is down: it is
	// rebuilt from the topics into the cluster.
	p.Stop(t)
	rdb := redistest.ClusterClient(t)
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.FlushAll(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	p = startDevWith(t, cfg)
	eventually(t, "30 users online after the rebuild", func() bool {
		r, ok := lookup(t, p, users...)
		return ok && allOnline(r)
	})
	_, body = p.do(t, "GET", "/v1/apps/chat/users/bob/friends/status", "")
	if !strings.Contains(body, `"user":"alice","state":"offline"`) || !strings.Contains(body, `"text":"before the loss"`) {
		t.Fatalf("after the rebuild, bob's friends: %s", body)
	}
	dave = p.dial(t, "dave", "dave-2", "web")
	p.do(t, "PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":5,"text":"rebuilt"}`)
	dave.expect(t, "presence alice offline 5:rebuilt 0 sessions")
}

// lookup is a batch lookup that may find the state being rebuilt: ok is
// false for a 503 or a Presence-Rebuilding header.
func lookup(t *testing.T, p *pipeline, users ...string) ([]*status, bool) {
	t.Helper()
	ids, _ := json.Marshal(users)
	resp, err := http.Post("http://"+p.Query+"/v1/apps/chat/status/query", "application/json", strings.NewReader(`{"users":`+string(ids)+`}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable || resp.Header.Get("Presence-Rebuilding") != "" {
		return nil, false
	}
	var out struct{ Results []*status }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("lookup: %d", resp.StatusCode)
	}
	return out.Results, true
}

// requireSpread checks that every master of cluster holds some state.
func requireSpread(t *testing.T, cluster *redistest.Cluster) {
	t.Helper()
	for _, m := range cluster.Masters {
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr})
		n, err := rdb.DBSize(context.Background()).Result()
		rdb.Close()
		if err != nil || n == 0 {
			t.Fatalf("master %s holds %d keys (%v): the state is not spread", m.Addr, n, err)
		}
	}
}

// flushOneMaster empties, with FLUSHALL, a master of cluster that holds
// users but no checkpoint, and returns its address.
func flushOneMaster(t *testing.T, cluster *redistest.Cluster) string {
	t.Helper()
	ctx := context.Background()
	for _, m := range cluster.Masters {
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr})
		defer rdb.Close()
		checkpoints, err := rdb.Keys(ctx, "presence:checkpoint:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		users, err := rdb.Keys(ctx, "presence:{chat/u*}").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(checkpoints) == 0 && len(users) > 0 {
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			return m.Addr
		}
	}
	t.Fatal("every master holds a checkpoint or no user")
	return ""
}

// flushCluster empties every master of the test binary's cluster, for a
// test that uses the default key prefix, and returns the URL of a seed.
func flushCluster(t *testing.T) string {
	t.Helper()
	err := redistest.ClusterClient(t).ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		return m.FlushAll(ctx).Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return redistest.SharedCluster(t).SeedURL()
}
