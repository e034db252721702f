// Package redisstore is the materialized state of Presence in Redis: the
// layout of its keys, the fenced writes of the users a processor owns, the
// batch reads of the query API, and the checkpoints that say which prefix
// of each partition the state holds. apply.lua, the versioned apply of
// session records inside Redis that came before, stays as the reference
// the processor's in-memory state is tested against.
//
// Layout (P is the configured prefix, U is schemas.UserKey(app, user)):
//
//	P:{U}                hash: "v" version, "s<session>" one field per live
//	                     session, "c" custom status, "l" last seen (Unix
//	                     ms) while offline (see write.go)
//	P:{U}:f, :w, :s      friends and subscriptions (see graph.go)
//	P:{U}:r              subscriptions admitted under the cap, not yet
//	                     applied (see subscriptioncap.go)
//	P:grace:<partition>  users whose going offline is announced once the
//	                     grace period has passed (see grace.go)
//	P:expire:presence.subscriptions:<partition>
//	                     subscription keys to tombstone once dead (see
//	                     expire.go)
//	P:fence:<topic>:<partition>, P:fence:{<tag>}:<topic>:<partition>
//	                     the token of a partition's owner, one copy per
//	                     master of a cluster (see fence.go)
//	P:alive:{<tag>}      one marker per master of a Redis Cluster (see
//	                     masters.go)
//	P:checkpoint:<topic> hash: partition -> next offset to apply, rebuild
//	                     targets, owners' tokens, and the id and partition
//	                     count of the topic the state was built from (see
//	                     checkpoint.go)
//	P:generation         a random value written anew whenever a rebuild
//	                     begins (see checkpoint.go)
//
// All keys of one user share the hash tag {U}, so a Redis Cluster keeps them
// on one node.
package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
)

var (
	//go:embed apply.lua
	applySource string
	//go:embed announced.lua
	announcedSource string
)

// DefaultPrefix starts every key unless Options.Prefix says otherwise.
const DefaultPrefix = "presence"

// DefaultOfflineTTL is how long an offline user is remembered.
const DefaultOfflineTTL = 168 * time.Hour

// Options configure a Store. Zero values mean the documented defaults.
type Options struct {
	// Prefix starts every key (DefaultPrefix).
	Prefix string
	// OfflineTTL is how long a user with no live session is remembered
	// after its last disconnect (DefaultOfflineTTL).
	OfflineTTL time.Duration
}

// Store reads and writes the state of Presence in Redis.
type Store struct {
	rdb        redis.UniversalClient
	prefix     string
	offlineTTL time.Duration
	apply      *redis.Script
	announced  *redis.Script
	advance    *redis.Script
	reserve    *redis.Script
	writer     *redis.Script
	commands   *redis.Script
	// scripts holds the source of apply and announced.
	scripts map[*redis.Script]string
	// loaded says, on a sharded Redis, that apply or announced was
	// loaded on every node and no call has failed since (see scripted).
	loaded map[*redis.Script]*atomic.Bool
	// present holds, on a Redis Cluster, the tags of the masters' markers
	// found at their last read: a lookup checks they are still there
	// (StatusesIntact).
	present atomic.Pointer[[]string]
	// fences caches, on a Redis Cluster, which master serves each slot
	// and the tag of its fences (fence.go).
	fences routes
}

// New returns a Store over rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.OfflineTTL <= 0 {
		opts.OfflineTTL = DefaultOfflineTTL
	}
	writer, commands := writeSource, fencedSource
	if _, cluster := rdb.(*redis.ClusterClient); !cluster {
		// One server lets a script reach keys it does not declare
		// without the flag, which Redis-compatible servers that embed
		// an older Lua runtime (miniredis, for presence dev) refuse.
		writer, commands = withoutFlags(writer), withoutFlags(commands)
	}
	s := &Store{rdb: rdb, prefix: opts.Prefix, offlineTTL: opts.OfflineTTL, apply: redis.NewScript(applySource),
		announced: redis.NewScript(announcedSource), advance: redis.NewScript(advanceSource),
		reserve: redis.NewScript(reserveSource), writer: redis.NewScript(writer),
		commands: redis.NewScript(commands)}
	s.scripts = map[*redis.Script]string{s.apply: applySource, s.announced: announcedSource, s.writer: writer, s.commands: commands}
	s.loaded = map[*redis.Script]*atomic.Bool{s.apply: new(atomic.Bool), s.announced: new(atomic.Bool), s.writer: new(atomic.Bool), s.commands: new(atomic.Bool)}
	return s
}

// withoutFlags returns a script's source without its first line when that
// line is a shebang of flags (#!lua flags=...).
func withoutFlags(source string) string {
	if first, rest, ok := strings.Cut(source, "\n"); ok && strings.HasPrefix(first, "#!lua") {
		return rest
	}
	return source
}

// Open connects to the Redis at url, one server or a cluster (see Dial),
// and checks that every master answers. Its errors never hold the
// password. Close the Store when done.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	rdb, err := Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	s := New(rdb, opts)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("redis at %s: %w", RedactURL(url), err)
	}
	return s, nil
}

// OfflineTTL is how long a user with no live session is remembered.
func (s *Store) OfflineTTL() time.Duration { return s.offlineTTL }

// Close closes the Redis client.
func (s *Store) Close() error { return s.rdb.Close() }

// Ping checks that Redis answers: every master of a cluster.
func (s *Store) Ping(ctx context.Context) error {
	err := ForEachNode(ctx, s.rdb, func(ctx context.Context, c *redis.Client) error {
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("%s: %w", c.Options().Addr, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}
	return nil
}

func (s *Store) userKey(app, user string) string {
	var b [80]byte
	return string(s.appendUserKey(b[:0], app, user))
}

// appendUserKey appends userKey(app, user) to b: <prefix>:{<app>/<user>},
// the user's schemas.UserKey the hash tag that keeps all the user's keys
// in one slot of a cluster.
func (s *Store) appendUserKey(b []byte, app, user string) []byte {
	b = append(b, s.prefix...)
	b = append(b, ":{"...)
	b = schemas.AppendUserKey(b, app, user)
	return append(b, '}')
}
