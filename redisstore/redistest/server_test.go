package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// A server killed and restarted answers on the same address, with the
// writes it acknowledged when it keeps an append-only file, empty when it
// keeps nothing on disk.
func TestServerRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		keeps bool
	}{
		{"append-only", Options{AppendOnly: true}, true},
		{"no persistence", Options{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := NewServer(t, tc.opts)
			c := redis.NewClient(&redis.Options{Addr: s.Addr})
			t.Cleanup(func() { c.Close() })
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}

			s.Kill()
			if conn, err := net.Dial("tcp", s.Addr); err == nil {
				conn.Close()
				t.Fatal("a killed server accepts connections")
			}
			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}

			got, err := c.Get(ctx, "k").Result()
			switch {
			case tc.keeps && err != nil:
				t.Fatalf("after a restart, the acknowledged write is lost: %v", err)
			case tc.keeps && got != "v":
				t.Fatalf("after a restart, k = %q, want %q", got, "v")
			case !tc.keeps && !errors.Is(err, redis.Nil):
				t.Fatalf("after a restart without persistence, k = %q (err %v), want nothing", got, err)
			}
		})
	}
}

// A cluster started for tests has three masters that together serve every
// slot: keys of different slots land on different masters.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	rdb := ClusterClient(t)
	for i := range 30 {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	sizes := map[string]int64{}
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		mu.Lock()
		sizes[m.Options().Addr] = n
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 3 {
		t.Fatalf("masters: %v, want 3", sizes)
	}
	for addr, n := range sizes {
		if n == 0 {
			t.Errorf("master %s holds none of 30 keys: %v", addr, sizes)
		}
	}
}
