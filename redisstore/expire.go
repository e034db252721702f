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

// scheduleSessions schedules, in p, the keys that changes make dead one
// day: a disconnected session's key the offline TTL after it ended, a
// custom status's key the offline TTL after it was set (when due, it is
// scheduled again while its user is known). Per partition, it is one
// write of the keys to schedule and one delete of the cleared statuses.
func (s *Store) scheduleSessions(ctx context.Context, p redis.Pipeliner, changes []Change) {
	due := map[int32]map[string]float64{} // partition -> record key -> due, -1 to unschedule
	for _, c := range changes {
		var key string
		switch c.Op {
		case Disconnect:
			key = schemas.SessionKey(c.App, c.User, c.Session)
		case SetCustom, ClearCustom:
			key = schemas.CustomStatusKey(c.App, c.User)
		default:
			continue
		}
		if due[c.Partition] == nil {
			due[c.Partition] = map[string]float64{}
		}
		due[c.Partition][key] = float64(c.At.Add(s.offlineTTL).UnixMilli())
		if c.Op == ClearCustom {
			due[c.Partition][key] = -1
		}
	}
	for partition, keys := range due {
		var add []redis.Z
		var rem []any
		for key, at := range keys {
			if at < 0 {
				rem = append(rem, key)
			} else {
				add = append(add, redis.Z{Score: at, Member: key})
			}
		}
		expire := s.expireKey(schemas.SessionsTopic, partition)
		if len(add) > 0 {
			p.ZAdd(ctx, expire, add...)
		}
		if len(rem) > 0 {
			p.ZRem(ctx, expire, rem...)
		}
	}
}

// scheduleSubscription is the command that schedules the key of a
// subscription for when it expires, or unschedules it.
func (s *Store) scheduleSubscription(c SubscriptionChange) command {
	key, member := s.expireKey(schemas.SubscriptionsTopic, c.Partition), schemas.SubscriptionKey(c.App, c.User, c.Subscriber)
	if c.Remove {
		return command{"zrem", key, member}
	}
	return command{"zadd", key, c.ExpiresAt.UnixMilli(), member}
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
	checks := make([]func() (time.Time, error), len(due))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range due {
			checks[i] = s.liveness(ctx, p, topic, k, now)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("checking %d keys due to expire: %w", len(due), err)
	}
	var dead []string
	var again []redis.Z
	for i, k := range due {
		until, err := checks[i]()
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

// liveness queues in p the reads that say whether the record key k of
// topic still shows in the state, and returns what they say once p has
// run: the zero time when the key is dead, a time after now when it may be
// dead then, now when it is alive with no known end.
//
//   - A subscription shows until it expires.
//   - A session's record shows while the session is live, and while its
//     user is offline but known: the user's last_seen may come from it.
//     Once the user is online again (last_seen is not shown) or forgotten,
//     it is dead.
//   - A custom status shows while its user is known.
func (s *Store) liveness(ctx context.Context, p redis.Pipeliner, topic, k string, now time.Time) func() (time.Time, error) {
	ids := schemas.SplitKey([]byte(k))
	dead := func() (time.Time, error) { return time.Time{}, nil }
	switch {
	case topic == schemas.SubscriptionsTopic && len(ids) == 3:
		expiry := p.ZScore(ctx, s.watchersKey(ids[0], ids[1]), ids[2])
		return func() (time.Time, error) {
			ms, err := expiry.Result()
			if err == redis.Nil || (err == nil && ms <= float64(now.UnixMilli())) {
				return dead()
			}
			return time.UnixMilli(int64(ms)), err
		}
	case len(ids) == 3: // a session
		user := s.userKey(ids[0], ids[1])
		fields, ttl := p.HMGet(ctx, user, sessionField(ids[2]), "l"), p.PTTL(ctx, user)
		return func() (time.Time, error) {
			v, err := fields.Result()
			switch {
			case err != nil:
				return time.Time{}, err
			case v[0] != nil: // live
				return now, nil
			case v[1] != nil: // offline, known until the hash expires
				return now.Add(max(ttl.Val(), time.Millisecond)), ttl.Err()
			}
			return dead()
		}
	case len(ids) == 2: // a custom status
		exists := p.Exists(ctx, s.userKey(ids[0], ids[1]))
		return func() (time.Time, error) {
			if exists.Val() > 0 {
				return now, exists.Err()
			}
			return time.Time{}, exists.Err()
		}
	}
	return dead // a malformed key
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
