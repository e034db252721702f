package bench

// The run's Redis, one server or every master of a cluster: dialing it,
// emptying it, and reading its keys, memory and CPU.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/redisstore"
)

// dial returns a client of the Redis at raw, one server or a cluster as
// redisstore.Dial recognises them, with a pool of redisPoolSize
// connections (to each master of a cluster).
func dial(ctx context.Context, raw string) (redis.UniversalClient, error) {
	rdb, err := redisstore.Dial(ctx, raw)
	if err != nil {
		return nil, err
	}
	_, cluster := rdb.(*redis.ClusterClient)
	rdb.Close()
	if !cluster {
		opts, err := redisstore.ParseURL(raw)
		if err != nil {
			return nil, err
		}
		opts.PoolSize = redisPoolSize
		return redis.NewClient(opts), nil
	}
	opts, err := redis.ParseClusterURL(raw)
	if err != nil {
		// Not reached: Dial parsed it. Its text may hold the password.
		return nil, fmt.Errorf("parsing redis cluster url %s", redisstore.RedactURL(raw))
	}
	opts.PoolSize = redisPoolSize
	return redis.NewClusterClient(opts), nil
}

// flush empties the Redis database (FLUSHDB on every master of a
// cluster), whose keys are all the run's.
func (e *env) flush(ctx context.Context) error {
	err := redisstore.ForEachNode(ctx, e.rdb, func(ctx context.Context, c *redis.Client) error {
		return c.FlushDB(ctx).Err()
	})
	if err != nil {
		return fmt.Errorf("flushing redis: %w", err)
	}
	return nil
}

// countKeys counts the keys of the run's Redis database: DBSIZE, summed
// over the masters of a cluster.
func (e *env) countKeys(ctx context.Context) (int64, error) {
	n, err := sumNodes(ctx, e.rdb, func(ctx context.Context, c *redis.Client) (int64, error) {
		return c.DBSize(ctx).Result()
	})
	if err != nil {
		return 0, fmt.Errorf("counting keys: %w", err)
	}
	return n, nil
}

// usedMemory is Redis's used_memory, the bytes its allocator holds,
// summed over the masters of a cluster.
func (e *env) usedMemory(ctx context.Context) (int64, error) {
	n, err := sumNodes(ctx, e.rdb, func(ctx context.Context, c *redis.Client) (int64, error) {
		v, err := infoNumber(ctx, c, "memory", "used_memory")
		return int64(v), err
	})
	if err != nil {
		return 0, fmt.Errorf("reading redis memory: %w", err)
	}
	return n, nil
}

// usedCPU is the CPU time, user and system, Redis has used (every thread
// of redis-server), summed over the masters of a cluster.
func (e *env) usedCPU(ctx context.Context) (time.Duration, error) {
	s, err := sumNodes(ctx, e.rdb, func(ctx context.Context, c *redis.Client) (float64, error) {
		user, err := infoNumber(ctx, c, "cpu", "used_cpu_user")
		if err != nil {
			return 0, err
		}
		sys, err := infoNumber(ctx, c, "cpu", "used_cpu_sys")
		return user + sys, err
	})
	if err != nil {
		return 0, fmt.Errorf("reading redis cpu: %w", err)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// sumNodes returns the sum of what read returns of each node of rdb: the
// one server, or every master of a cluster.
func sumNodes[N int64 | float64](ctx context.Context, rdb redis.UniversalClient, read func(ctx context.Context, c *redis.Client) (N, error)) (N, error) {
	var mu sync.Mutex
	var sum N
	err := redisstore.ForEachNode(ctx, rdb, func(ctx context.Context, c *redis.Client) error {
		v, err := read(ctx, c)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		sum += v
		return nil
	})
	return sum, err
}

// infoNumber reads a number of a section of INFO of one server.
func infoNumber(ctx context.Context, c *redis.Client, section, field string) (float64, error) {
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(infoField(info, field), 64)
	if err != nil {
		return 0, fmt.Errorf("reading %s of %s: %w", field, c.Options().Addr, err)
	}
	return v, nil
}

// infoField returns the value of field in the text of INFO.
func infoField(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}
