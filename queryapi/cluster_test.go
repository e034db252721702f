package queryapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/redisstore/redistest"
)

// On a real 3-master Redis Cluster, lookups answer from every master, and
// /readyz is not ready while any master is down, even one that holds none
// of the users looked up; it is ready again once the master is back.
func TestClusterReadiness(t *testing.T) {
	cluster, err := redistest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Stop)
	addrs := make([]string, len(cluster.Masters))
	for i, m := range cluster.Masters {
		addrs[i] = m.Addr
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	h := newHarnessOn(t, rdb)
	for _, l := range lookups {
		if code, body := h.do(l.method, l.path, l.body); code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", l.method, l.path, code, body)
		}
	}
	if _, body := h.do("GET", "/v1/apps/chat/users/alice/status", ""); !strings.Contains(string(body), `"state":"online"`) {
		t.Fatalf("alice: %s, want her online", body)
	}
	if code, body := h.do("GET", "/readyz", ""); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}

	// The master holding none of the harness's users goes down.
	var down *redistest.Server
	for _, m := range cluster.Masters {
		c := redis.NewClient(&redis.Options{Addr: m.Addr})
		keys, err := c.Keys(t.Context(), h.prefix+":{*").Result() // users, not the masters' markers
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			down = m
		}
	}
	if down == nil {
		t.Fatal("every master holds a user of the harness")
	}
	down.Kill()
	if code, body := h.do("GET", "/readyz", ""); code != http.StatusServiceUnavailable || !strings.Contains(string(body), down.Addr) {
		t.Errorf("/readyz with master %s down: %d %s, want 503 naming it", down.Addr, code, body)
	}
	if err := down.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/readyz answers 200 once the master is back", func() bool {
		code, _ := h.do("GET", "/readyz", "")
		return code == http.StatusOK
	})
}
