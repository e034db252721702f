package redistest

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of three masters and no replicas, each a
// redis-server on a free loopback port that keeps nothing on disk.
type Cluster struct {
	Masters []*Server
}

// StartCluster starts three cluster nodes, joins them with redis-cli
// --cluster create (the 16384 slots spread evenly), and waits until every
// node says the cluster is ok.
func StartCluster() (*Cluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli is not installed (make test installs it with redis-server): %w", err)
	}
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for range 3 {
		s, err := StartWith(Options{cluster: true})
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Masters = append(c.Masters, s)
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.Command(cli, args...)
	DieWithTest(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("creating a redis cluster: %w; redis-cli wrote: %s", err, out)
	}
	if err := c.waitOK(20 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// waitOK waits until every node says cluster_state:ok.
func (c *Cluster) waitOK(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, s := range c.Masters {
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			info, err := rdb.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				rdb.Close()
				return fmt.Errorf("redis cluster node %s not ok after %s: %v %q", s.Addr, limit, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rdb.Close()
	}
	return nil
}

// URL is the cluster in go-redis's cluster URL form:
// redis://h1:p1?addr=h2:p2&addr=h3:p3.
func (c *Cluster) URL() string {
	q := url.Values{}
	for _, s := range c.Masters[1:] {
		q.Add("addr", s.Addr)
	}
	u := url.URL{Scheme: "redis", Host: c.Masters[0].Addr, RawQuery: q.Encode()}
	return u.String()
}

// SeedURL is the URL of one node alone, from which a client finds the
// others.
func (c *Cluster) SeedURL() string { return c.Masters[0].URL() }

// Stop stops every node.
func (c *Cluster) Stop() {
	for _, s := range c.Masters {
		s.Stop()
	}
}

var sharedCluster struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// SharedCluster returns the test binary's Redis Cluster, starting it on
// first use; Main stops it. Tests share it, each with a key prefix of its
// own (see Prefix).
func SharedCluster(t testing.TB) *Cluster {
	t.Helper()
	sharedCluster.once.Do(func() {
		sharedCluster.cluster, sharedCluster.err = StartCluster()
	})
	if sharedCluster.err != nil {
		t.Fatalf("redis cluster for tests: %v", sharedCluster.err)
	}
	return sharedCluster.cluster
}

// ClusterClient returns a client of the test binary's Redis Cluster,
// closed when the test ends.
func ClusterClient(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c := SharedCluster(t)
	addrs := make([]string, len(c.Masters))
	for i, s := range c.Masters {
		addrs[i] = s.Addr
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
