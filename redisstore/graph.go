package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Friends and subscriptions, as the processor materializes them from
// presence.friends and presence.subscriptions:
//
//	P:{U}:f  set: U's friends
//	P:{U}:w  sorted set: who watches U, scored by expiry (Unix ms)
//	P:{U}:s  sorted set: whom U watches, scored by expiry (Unix ms)
//
// P:{U}:w lives in U's slot and partition, like the records it comes from;
// P:{U}:s is its mirror, kept so that a subscriber's subscriptions can be
// counted and listed.

func (s *Store) friendsKey(app, user string) string  { return s.userKey(app, user) + ":f" }
func (s *Store) watchersKey(app, user string) string { return s.userKey(app, user) + ":w" }
func (s *Store) watchingKey(app, user string) string { return s.userKey(app, user) + ":s" }

// Friends returns the friends of user, in no particular order.
func (s *Store) Friends(ctx context.Context, app, user string) ([]string, error) {
	friends, err := s.rdb.SMembers(ctx, s.friendsKey(app, user)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading friends of %q: %w", user, err)
	}
	return friends, nil
}

// Watching returns the users subscriber watches at now, each with the
// expiry of its subscription.
func (s *Store) Watching(ctx context.Context, app, subscriber string, now time.Time) (map[string]time.Time, error) {
	return s.liveMembers(ctx, s.watchingKey(app, subscriber), now)
}

// Watchers returns who watches user at now, each with the expiry of its
// subscription.
func (s *Store) Watchers(ctx context.Context, app, user string, now time.Time) (map[string]time.Time, error) {
	return s.liveMembers(ctx, s.watchersKey(app, user), now)
}

// liveMembers reads the members of a sorted set scored by expiry that have
// not expired at now.
func (s *Store) liveMembers(ctx context.Context, key string, now time.Time) (map[string]time.Time, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	out := make(map[string]time.Time, len(zs))
	for _, z := range zs {
		out[z.Member.(string)] = time.UnixMilli(int64(z.Score))
	}
	return out, nil
}
