package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
)

// The users of some partitions of presence.sessions, read back from
// Redis: a processor assigned a partition can restore its users in memory
// from their hashes instead of reading the partition's records from the
// start. Redis has no index of a partition's users, so ScanUsers reads
// every key of the store (SCAN on every master) and keeps the user hashes
// P:{U} whose user key U falls in one of the partitions asked: scan all
// the partitions assigned at once, not one by one.

// StoredUser is a user's hash as Redis holds it.
type StoredUser struct {
	// Partition is the user's partition of presence.sessions.
	Partition int32
	App, User string
	// Fields is the whole hash (see store.go for its layout).
	Fields map[string]string
	// ExpireAt is when the key expires; zero when it persists.
	ExpireAt time.Time
	// key is the user's key, P:{U}.
	key string
}

// scanBatch is how many keys one SCAN call asks for, and how many users'
// hashes one pipeline reads; scanReaders, how many pipelines read at
// once on each node.
const (
	scanBatch   = 1000
	scanReaders = 4
)

// ScanUsers calls fn with each user Redis holds in the given partitions
// of presence.sessions, a topic of n partitions, once each, in no order. It reads
// every key of the store once, SCAN on each master at once, and the
// hashes (HGETALL) and expiries (PEXPIRETIME) of the users kept, pipelined
// by scanBatch, scanReaders pipelines at once per master; calls of fn are
// serialized. A key that expires meanwhile
// is skipped; a key written meanwhile may be read as before or after the
// write, so scan a partition no one writes. It stops at fn's first error.
func (s *Store) ScanUsers(ctx context.Context, n int, partitions []int32, fn func(StoredUser) error) error {
	wanted := make(map[int32]bool, len(partitions))
	for _, p := range partitions {
		wanted[p] = true
	}
	var mu sync.Mutex
	var failed error // fn's, after which it is not called again
	deliver := func(users []StoredUser) error {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range users {
			if failed != nil {
				return failed
			}
			failed = fn(u)
		}
		return failed
	}
	scan := func(ctx context.Context, c *redis.Client) error {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		// The scan hands batches of keys to scanReaders readers, so that
		// Redis reads one batch while this process decodes others.
		batches := make(chan []StoredUser)
		var wg sync.WaitGroup
		for range scanReaders {
			wg.Go(func() {
				for batch := range batches {
					if ctx.Err() != nil {
						continue // failed: drain
					}
					read, err := s.readUsers(ctx, c, batch)
					if err == nil {
						err = deliver(read)
					}
					if err != nil {
						cancel(err)
					}
				}
			})
		}
		err := s.scanPartitions(ctx, c, n, wanted, batches)
		close(batches)
		wg.Wait()
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return err
	}
	if err := ForEachNode(ctx, s.rdb, scan); err != nil {
		return fmt.Errorf("scanning the users of %d partitions of %s: %w", len(partitions), schemas.SessionsTopic, err)
	}
	return nil
}

// scanPartitions scans the keys of c and sends the users of the wanted
// partitions (of n) to batches, scanBatch at a time, unread.
func (s *Store) scanPartitions(ctx context.Context, c *redis.Client, n int, wanted map[int32]bool, batches chan<- []StoredUser) error {
	iter := c.Scan(ctx, 0, globEscaper.Replace(s.prefix)+":{*", scanBatch).Iterator()
	batch := make([]StoredUser, 0, scanBatch)
	// SCAN may return a key more than once (while Redis resizes its
	// table): each goes out once.
	sent := map[string]struct{}{}
	send := func() error {
		select {
		case batches <- batch:
			batch = make([]StoredUser, 0, scanBatch)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for iter.Next(ctx) {
		key := iter.Val()
		u, suffix := s.userOf(key)
		if suffix != "" || u == "" {
			continue
		}
		partition := int32(schemas.Partition([]byte(u), n))
		if !wanted[partition] {
			continue
		}
		if _, dup := sent[key]; dup {
			continue
		}
		ids := schemas.SplitKey([]byte(u))
		if len(ids) != 2 {
			continue // not a user's key
		}
		sent[key] = struct{}{}
		batch = append(batch, StoredUser{Partition: partition, App: ids[0], User: ids[1], key: key})
		if len(batch) == scanBatch {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	return send()
}

// readUsers reads the hash and expiry of each user of batch, in one
// pipeline, leaving out the keys gone meanwhile.
func (s *Store) readUsers(ctx context.Context, c *redis.Client, batch []StoredUser) ([]StoredUser, error) {
	hashes := make([]*redis.MapStringStringCmd, len(batch))
	expiries := make([]*redis.Cmd, len(batch))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range batch {
			k := u.key
			hashes[i] = p.HGetAll(ctx, k)
			expiries[i] = p.Do(ctx, "PEXPIRETIME", k) // -1 persistent, -2 missing
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := batch[:0]
	for i, u := range batch {
		at, err := expiries[i].Int64()
		if err != nil {
			return nil, err
		}
		if len(hashes[i].Val()) == 0 || at == -2 { // gone meanwhile
			continue
		}
		u.Fields = hashes[i].Val()
		if at > 0 {
			u.ExpireAt = time.UnixMilli(at).UTC()
		}
		out = append(out, u)
	}
	return out, nil
}
