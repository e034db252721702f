package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
)

// Bounded topics: a record that no longer says anything about the state
// (the disconnect of a session whose user has been offline longer than the
// offline TTL, the custom status of a user who expired, an expired
// subscription) must be tombstoned, or a compacted topic would keep it
// forever. The keys of such records are scheduled when they are applied,
// per topic and partition, in a sorted set scored by when they may become
// dead:
//
//	P:expire:<topic>:<partition>  sorted set: record key -> due (Unix ms)
//
// When due, a key is checked against the state: the dead ones are returned
// for tombstoning, the live ones (a user back online, a subscription
// renewed) are scheduled again.

func (s *Store) expireKey(topic string, partition int32) string {
	return s.prefix + ":expire:" + topic + ":" + strconv.Itoa(int(partition))
}

// scheduleSession schedules, in p, the keys a change of a session makes
// dead one day: a disconnected session's key the offline TTL after it
// ended, and the user's custom status (if scheduled) no sooner.
func (s *Store) scheduleSession(ctx context.Context, p redis.Pipeliner, c Change) {
	key := s.expireKey(schemas.SessionsTopic, c.Partition)
	due := float64(c.At.Add(s.offlineTTL).UnixMilli())
	switch c.Op {
	case Disconnect:
		p.ZAdd(ctx, key, redis.Z{Score: due, Member: schemas.SessionKey(c.App, c.User, c.Session)})
		p.ZAddArgs(ctx, key, redis.ZAddArgs{XX: true, GT: true, Members: []redis.Z{{Score: due, Member: schemas.CustomStatusKey(c.App, c.User)}}})
	case SetCustom:
		p.ZAddArgs(ctx, key, redis.ZAddArgs{GT: true, Members: []redis.Z{{Score: due, Member: schemas.CustomStatusKey(c.App, c.User)}}})
	case ClearCustom:
		p.ZRem(ctx, key, schemas.CustomStatusKey(c.App, c.User))
	}
}

// scheduleSubscription schedules, in p, the key of a subscription for
// when it expires.
func (s *Store) scheduleSubscription(ctx context.Context, p redis.Pipeliner, c SubscriptionChange) {
	key, member := s.expireKey(schemas.SubscriptionsTopic, c.Partition), schemas.SubscriptionKey(c.App, c.User, c.Subscriber)
	if c.Remove {
		p.ZRem(ctx, key, member)
		return
	}
	p.ZAdd(ctx, key, redis.Z{Score: float64(c.ExpiresAt.UnixMilli()), Member: member})
}

// DeadKeys returns up to limit record keys of a partition of topic that
// were due at now and are dead: their tombstone changes nothing the state
// shows. Keys due but alive are scheduled again. Tombstone the keys
// returned, then pass them to Buried.
func (s *Store) DeadKeys(ctx context.Context, topic string, partition int32, now time.Time, limit int) ([]string, error) {
	key := s.expireKey(topic, partition)
	due, err := s.rdb.ZRangeByScore(ctx, key, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the keys of %s/%d due to expire: %w", topic, partition, err)
	}
	if len(due) == 0 {
		return nil, nil
	}
	checks := make([]redis.Cmder, len(due))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range due {
			checks[i] = s.liveness(ctx, p, topic, k)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("checking %d keys due to expire: %w", len(due), err)
	}
	var dead []string
	var again []redis.Z
	for i, k := range due {
		until, err := s.liveUntil(topic, k, checks[i], now)
		switch {
		case err != nil:
			return nil, err
		case until.After(now):
			again = append(again, redis.Z{Score: float64(until.UnixMilli()), Member: k})
		case !until.IsZero():
			// Alive with no end in sight (a session back online): it
			// is scheduled again when it ends.
			again = append(again, redis.Z{Score: float64(now.Add(s.offlineTTL).UnixMilli()), Member: k})
		default:
			dead = append(dead, k)
		}
	}
	if len(again) > 0 {
		if err := s.rdb.ZAdd(ctx, key, again...).Err(); err != nil {
			return nil, fmt.Errorf("scheduling %d live keys again: %w", len(again), err)
		}
	}
	return dead, nil
}

// liveness queues in p the read that says whether the record key k of
// topic still shows in the state.
func (s *Store) liveness(ctx context.Context, p redis.Pipeliner, topic, k string) redis.Cmder {
	ids := schemas.SplitKey([]byte(k))
	switch {
	case topic == schemas.SubscriptionsTopic && len(ids) == 3:
		return p.ZScore(ctx, s.watchersKey(ids[0], ids[1]), ids[2])
	case len(ids) == 3: // a session
		return p.HExists(ctx, s.userKey(ids[0], ids[1]), sessionField(ids[2]))
	case len(ids) == 2: // a custom status
		return p.Exists(ctx, s.userKey(ids[0], ids[1]))
	}
	return p.Echo(ctx, "") // a malformed key: dead
}

// liveUntil reads the answer of liveness: the zero time when the key is
// dead, a time after now when it will be dead then (a subscription), now
// when it is alive with no known end.
func (s *Store) liveUntil(topic, k string, cmd redis.Cmder, now time.Time) (time.Time, error) {
	switch c := cmd.(type) {
	case *redis.FloatCmd: // a subscription's expiry
		expiry, err := c.Result()
		if err == redis.Nil || (err == nil && expiry <= float64(now.UnixMilli())) {
			return time.Time{}, nil
		}
		return time.UnixMilli(int64(expiry)), err
	case *redis.BoolCmd: // a session still live
		if c.Val() {
			return now, c.Err()
		}
		return time.Time{}, c.Err()
	case *redis.IntCmd: // a user still known
		if c.Val() > 0 {
			return now, c.Err()
		}
		return time.Time{}, c.Err()
	}
	return time.Time{}, nil
}

// Buried removes keys a partition of topic has tombstoned from its
// schedule.
func (s *Store) Buried(ctx context.Context, topic string, partition int32, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	members := make([]any, len(keys))
	for i, k := range keys {
		members[i] = k
	}
	if err := s.rdb.ZRem(ctx, s.expireKey(topic, partition), members...).Err(); err != nil {
		return fmt.Errorf("removing %d tombstoned keys from the schedule: %w", len(keys), err)
	}
	return nil
}
