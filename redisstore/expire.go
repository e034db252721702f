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
// (an expired subscription) must be tombstoned, or a compacted topic would
// keep it forever. The keys of presence.subscriptions are scheduled when
// they are applied, per partition, in a sorted set scored by when they
// may become dead:
//
//	P:expire:<topic>:<partition>  sorted set: record key -> due (Unix ms)
//
// When due, a key is checked against the state: the dead ones are returned
// for tombstoning, the live ones (a subscription renewed) are scheduled
// again. The dead keys of presence.sessions (ended sessions, the custom
// status of a user who expired) are known to the processor that owns the
// partition, in memory (processor/state): Redis holds no schedule of them.

func (s *Store) expireKey(topic string, partition int32) string {
	return s.prefix + ":expire:" + topic + ":" + strconv.Itoa(int(partition))
}

// graceKey is where releases before this one kept a partition's pending
// offline announcements (a sorted set of user keys by when due).
func (s *Store) graceKey(partition int32) string {
	return s.prefix + ":grace:" + strconv.Itoa(int(partition))
}

// DropSessionsSchedule deletes the schedule of dead keys of a partition
// of presence.sessions that releases before this one kept in Redis: the
// processor that owns the partition knows them in memory now.
func (s *Store) DropSessionsSchedule(ctx context.Context, partition int32) error {
	if err := s.rdb.Del(ctx, s.expireKey(schemas.SessionsTopic, partition)).Err(); err != nil {
		return fmt.Errorf("deleting the old schedule of dead keys of %s/%d: %w", schemas.SessionsTopic, partition, err)
	}
	return nil
}

// Pending is an offline announcement a release before this one kept in
// Redis: the user, and when it is due.
type Pending struct {
	User
	Due time.Time
}

// OldGraces returns the offline announcements of a partition of
// presence.sessions that a release before this one left pending in Redis.
// They stay there until DropOldGraces, so that whoever owns the partition
// makes them even if it moves again meanwhile.
func (s *Store) OldGraces(ctx context.Context, partition int32) ([]Pending, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, s.graceKey(partition), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the old offline announcements of %s/%d: %w", schemas.SessionsTopic, partition, err)
	}
	var out []Pending
	for _, z := range zs {
		member, _ := z.Member.(string)
		if parts := schemas.SplitKey([]byte(member)); len(parts) == 2 {
			out = append(out, Pending{User: User{App: parts[0], User: parts[1]}, Due: time.UnixMilli(int64(z.Score))})
		}
	}
	return out, nil
}

// DropOldGraces deletes what OldGraces returns, for the partition's owner
// o (ErrFenced when another has taken it), once they are all made.
func (s *Store) DropOldGraces(ctx context.Context, o Owner, partition int32) error {
	if err := s.runCommands(ctx, o, []command{{"del", s.graceKey(partition)}}); err != nil {
		return fmt.Errorf("deleting the old offline announcements of %s/%d: %w", schemas.SessionsTopic, partition, err)
	}
	return nil
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

// DeadKeys returns up to limit record keys of a partition of topic
// (presence.subscriptions) that were due at now and are dead: their tombstone changes nothing the state
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
// topic still shows in the state, and returns what it says once p has
// run: the zero time when the key is dead, a time after now when it may
// be dead then. A subscription shows until it expires; a key of another
// topic, or a malformed one, is dead.
func (s *Store) liveness(ctx context.Context, p redis.Pipeliner, topic, k string, now time.Time) func() (time.Time, error) {
	ids := schemas.SplitKey([]byte(k))
	if topic != schemas.SubscriptionsTopic || len(ids) != 3 {
		return func() (time.Time, error) { return time.Time{}, nil }
	}
	expiry := p.ZScore(ctx, s.watchersKey(ids[0], ids[1]), ids[2])
	return func() (time.Time, error) {
		ms, err := expiry.Result()
		if err == redis.Nil || (err == nil && ms <= float64(now.UnixMilli())) {
			return time.Time{}, nil
		}
		return time.UnixMilli(int64(ms)), err
	}
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
