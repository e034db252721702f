package redisstore

import (
	"context"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Fences keep a processor that lost a partition from writing its users.
// The processor that takes a partition writes a new random token to the
// partition's fence (Own), one copy per node of a Redis Cluster:
//
//	P:fence:<topic>:<partition>          on a single Redis
//	P:fence:{<tag>}:<topic>:<partition>  on each master, <tag> as for the
//	                                     markers (masters.go)
//
// and every write of its users checks that the fence still holds its
// token. A former owner that wakes up finds the new token and writes
// nothing. On a single Redis the writes are a transaction that watches the
// fence (runWatched: WATCH, GET, MULTI … EXEC), so Redis runs them as
// native commands; on a Redis Cluster, whose transactions cannot span
// slots, one script call per node checks the fence and writes (write.lua,
// fenced.lua). A master added later holds no copy: writes to it are
// refused until the owner takes the partition again.

// Owner is a processor's hold on one partition of a topic, taken by Own.
type Owner struct {
	topic     string
	partition int32
	token     string
}

func (s *Store) fenceKey(tag, topic string, partition int32) string {
	if tag == "" {
		return s.prefix + ":fence:" + topic + ":" + strconv.Itoa(int(partition))
	}
	return s.prefix + ":fence:{" + tag + "}:" + topic + ":" + strconv.Itoa(int(partition))
}

// Own takes partition of topic for the caller: from then on, the writes
// of whoever took it before are refused (ErrFenced), and so are its moves
// of the partition's checkpoint (ErrCheckpointMoved; the token is also
// kept in the checkpoint hash).
func (s *Store) Own(ctx context.Context, topic string, partition int32) (Owner, error) {
	o := Owner{topic: topic, partition: partition, token: rand.Text()}
	tags := []string{""}
	if s.isCluster() {
		var err error
		if tags, err = s.fenceTags(ctx); err != nil {
			return Owner{}, err
		}
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, tag := range tags {
			p.Set(ctx, s.fenceKey(tag, topic, partition), o.token, 0)
		}
		p.HSet(ctx, s.checkpointKey(topic), fieldOwner+strconv.Itoa(int(partition)), o.token)
		return nil
	})
	if err != nil {
		return Owner{}, fmt.Errorf("taking %s partition %d: %w", topic, partition, err)
	}
	return o, nil
}

// fenceTags returns the tags of every fence copy to write on a cluster:
// every tag ever used, not only the current masters'. After a resharding a
// master may be tagged anew while the copy under its former tag stays on
// it: a former owner whose route is older would find its own token there.
// The highest tag ever used is kept in P:fence-tags.
func (s *Store) fenceTags(ctx context.Context) ([]string, error) {
	r, err := s.fences.route(ctx, s)
	if err != nil {
		return nil, err
	}
	high := 0
	for _, tag := range r.tags {
		n, err := strconv.Atoi(tag)
		if err != nil {
			return nil, fmt.Errorf("fence tag %q: %w", tag, err)
		}
		high = max(high, n)
	}
	key := s.prefix + ":fence-tags"
	used, err := s.rdb.Get(ctx, key).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading the fence tags: %w", err)
	}
	if high > used {
		if err := s.rdb.Set(ctx, key, high, 0).Err(); err != nil {
			return nil, fmt.Errorf("writing the fence tags: %w", err)
		}
	}
	tags := make([]string, max(high, used)+1)
	for i := range tags {
		tags[i] = strconv.Itoa(i)
	}
	return tags, nil
}

func (s *Store) isCluster() bool {
	_, ok := s.rdb.(*redis.ClusterClient)
	return ok
}

// route is which master of a cluster serves each slot, and the tag of
// each master's fences.
type route struct {
	owner []string          // slot -> address of its master
	tags  []string          // one per master
	tagOf map[string]string // master address -> its tag
}

// routes caches the route of a cluster until a write finds it wrong.
type routes struct {
	mu  sync.Mutex
	cur *route
}

func (rs *routes) forget() {
	rs.mu.Lock()
	rs.cur = nil
	rs.mu.Unlock()
}

// route returns the cached route, or reads the cluster's slots.
func (rs *routes) route(ctx context.Context, s *Store) (*route, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.cur != nil {
		return rs.cur, nil
	}
	slots, err := s.rdb.(*redis.ClusterClient).ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the slots of the cluster: %w", err)
	}
	tags, err := s.markerTags(slots)
	if err != nil {
		return nil, err
	}
	r := &route{owner: slotOwners(slots), tags: tags, tagOf: map[string]string{}}
	for _, tag := range tags {
		r.tagOf[r.owner[keySlot(s.markerKey(tag))]] = tag
	}
	rs.cur = r
	return r, nil
}

// slotOwners returns, per slot, the address of the master serving it ("" for
// none).
func slotOwners(slots []redis.ClusterSlot) []string {
	owner := make([]string, keySlots)
	for _, r := range slots {
		if len(r.Nodes) == 0 {
			continue
		}
		for slot := r.Start; slot <= r.End && slot < keySlots; slot++ {
			owner[slot] = r.Nodes[0].Addr
		}
	}
	return owner
}

//go:embed fenced.lua
var fencedSource string

// command is one write of a partition's owner: the command's name, its
// key, then the rest of its arguments.
type command []any

// runCommands runs cmds for the owner o, in order per node, each node's
// only while o still owns the partition (runWatched on a single Redis,
// fenced.lua on a cluster); ErrFenced when
// another took it. The zero Owner (a caller that took nothing, such as a
// test) runs them in a plain pipeline.
func (s *Store) runCommands(ctx context.Context, o Owner, cmds []command) error {
	if len(cmds) == 0 {
		return nil
	}
	if o.token == "" {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range cmds {
				p.Do(ctx, c...)
			}
			return nil
		})
		return err
	}
	if c, single := s.rdb.(*redis.Client); single {
		groups := make([][]command, len(cmds)) // each its own
		for i := range cmds {
			groups[i] = cmds[i : i+1]
		}
		return s.runWatched(ctx, c, o, groups)
	}
	keys := make([]string, len(cmds))
	for i, c := range cmds {
		keys[i] = c[1].(string)
	}
	run := func() error {
		return s.runFenced(ctx, o, s.commands, keys, func(args []any, i int) []any {
			return append(append(args, len(cmds[i])), cmds[i]...)
		})
	}
	err := run()
	if err != nil && !errors.Is(err, ErrFenced) && s.isCluster() {
		s.fences.forget()
		err = run()
	}
	return err
}

// maxTransaction bounds the commands of one transaction of runWatched, and
// so the time Redis spends in one EXEC without serving others (about a
// microsecond each).
const maxTransaction = 2000

// runWatched runs groups of commands on a single Redis in transactions of
// about maxTransaction commands, never splitting a group (a user's DEL and
// HSET: no reader may find the user missing between them), each
// transaction only while o still owns the partition: WATCH the fence,
// read it, then MULTI … EXEC, which Redis refuses when the fence was
// written since the WATCH. Redis so runs the commands natively, and the
// fence costs three round trips per transaction.
func (s *Store) runWatched(ctx context.Context, c *redis.Client, o Owner, groups [][]command) error {
	fence := s.fenceKey("", o.topic, o.partition)
	return c.Watch(ctx, func(tx *redis.Tx) error {
		for first := true; len(groups) > 0; first = false {
			var chunk [][]command
			chunk, groups = nextTransaction(groups)
			if !first { // EXEC ended the WATCH
				if err := tx.Watch(ctx, fence).Err(); err != nil {
					return err
				}
			}
			token, err := tx.Get(ctx, fence).Result()
			if errors.Is(err, redis.Nil) || err == nil && token != o.token {
				return ErrFenced
			} else if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for _, g := range chunk {
					for _, cmd := range g {
						p.Do(ctx, cmd...)
					}
				}
				return nil
			})
			if errors.Is(err, redis.TxFailedErr) {
				return ErrFenced
			} else if err != nil {
				return err
			}
		}
		return nil
	}, fence)
}

// nextTransaction splits the groups of the next transaction from the
// rest: as many whole groups as fit in maxTransaction commands, at least
// one.
func nextTransaction(groups [][]command) (next, rest [][]command) {
	n, size := 0, 0
	for n < len(groups) && (n == 0 || size+len(groups[n]) <= maxTransaction) {
		size += len(groups[n])
		n++
	}
	return groups[:n], groups[n:]
}
