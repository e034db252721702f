package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// AreFriends says, for each of users, whether viewer is its friend (a
// member of its friends set), in one pipelined round trip; none for no
// users. A reader asks it only for the statuses whose privacy shows a
// friend more than anyone (status.Privacy.NeedsFriendship).
func (s *Store) AreFriends(ctx context.Context, app, viewer string, users []string) ([]bool, error) {
	if len(users) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.BoolCmd, len(users))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			cmds[i] = p.SIsMember(ctx, s.friendsKey(app, u), viewer)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading whether %q is a friend of %d users: %w", viewer, len(users), err)
	}
	out := make([]bool, len(users))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// Watching returns the users subscriber watches at now, each with the
// expiry of its subscription.
func (s *Store) Watching(ctx context.Context, app, subscriber string, now time.Time) (map[string]time.Time, error) {
	key := s.watchingKey(app, subscriber)
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

// FriendChange is one record of presence.friends: User's half of a
// friendship, added or removed.
type FriendChange struct {
	App, User, Friend string
	Remove            bool
}

// ApplyFriends applies changes in one pipelined round trip, in order.
// Adding and removing set members is idempotent, so applying a change
// twice, or re-applying a suffix of a partition in order, ends in the same
// sets.
func (s *Store) ApplyFriends(ctx context.Context, o Owner, changes []FriendChange) error {
	cmds := make([]command, len(changes))
	for i, c := range changes {
		op := "sadd"
		if c.Remove {
			op = "srem"
		}
		cmds[i] = command{op, s.friendsKey(c.App, c.User), c.Friend}
	}
	if err := s.runCommands(ctx, o, cmds); err != nil {
		return fmt.Errorf("applying %d friendship changes: %w", len(changes), err)
	}
	return nil
}

// SubscriptionChange is one record of presence.subscriptions: Subscriber
// watches User until ExpiresAt, or stops watching.
type SubscriptionChange struct {
	App, User, Subscriber string
	ExpiresAt             time.Time
	Remove                bool
	// Partition is the record's partition.
	Partition int32
}

// ApplySubscriptions applies changes in one pipelined round trip, in
// order, at now: a subscription already expired is removed rather than
// added, and the expired members of every set it touches are pruned.
func (s *Store) ApplySubscriptions(ctx context.Context, o Owner, changes []SubscriptionChange, now time.Time) error {
	past := strconv.FormatInt(now.UnixMilli(), 10)
	cmds := make([]command, 0, 7*len(changes))
	for _, c := range changes {
		watchers, watching := s.watchersKey(c.App, c.User), s.watchingKey(c.App, c.Subscriber)
		if c.Remove || !c.ExpiresAt.After(now) {
			cmds = append(cmds, command{"zrem", watchers, c.Subscriber}, command{"zrem", watching, c.User})
		} else {
			expiry := c.ExpiresAt.UnixMilli()
			cmds = append(cmds, command{"zadd", watchers, expiry, c.Subscriber}, command{"zadd", watching, expiry, c.User})
		}
		cmds = append(cmds, command{"zremrangebyscore", watchers, "-inf", past},
			command{"zremrangebyscore", watching, "-inf", past}, s.scheduleSubscription(c))
	}
	if err := s.runCommands(ctx, o, cmds); err != nil {
		return fmt.Errorf("applying %d subscription changes: %w", len(changes), err)
	}
	return nil
}

// Audience is a user as it is now and who may have to hear of it.
type Audience struct {
	// Status is nil when the user is not known (any more).
	Status   *Status
	Friends  []string
	Watchers []string
}

// Audiences reads the status, friends and live watchers of users, in one
// pipelined round trip, then prunes the expired watchers it met.
func (s *Store) Audiences(ctx context.Context, users []User, now time.Time) ([]Audience, error) {
	return s.AudiencesOf(ctx, users, nil, now)
}

// AudiencesOf is Audiences for users whose statuses the caller holds
// (the processor that owns them, in memory), given in statuses by index:
// then only their friends and watchers are read. With statuses nil, the
// statuses are read too.
func (s *Store) AudiencesOf(ctx context.Context, users []User, statuses []*Status, now time.Time) ([]Audience, error) {
	type reads struct {
		status   *redis.MapStringStringCmd
		friends  *redis.StringSliceCmd
		watchers *redis.ZSliceCmd
	}
	rs := make([]reads, len(users))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			rs[i] = reads{
				friends:  p.SMembers(ctx, s.friendsKey(u.App, u.User)),
				watchers: p.ZRangeWithScores(ctx, s.watchersKey(u.App, u.User), 0, -1),
			}
			if statuses == nil {
				rs[i].status = p.HGetAll(ctx, s.userKey(u.App, u.User))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the audience of %d users: %w", len(users), err)
	}
	out := make([]Audience, len(users))
	var expired []User
	for i, r := range rs {
		var st *Status
		if statuses != nil {
			st = statuses[i]
		} else if st, err = decodeStatus(users[i].User, r.status.Val()); err != nil {
			return nil, err
		}
		out[i] = Audience{Status: st, Friends: r.friends.Val()}
		for _, w := range r.watchers.Val() {
			if int64(w.Score) > now.UnixMilli() {
				out[i].Watchers = append(out[i].Watchers, w.Member.(string))
			} else if len(expired) == 0 || expired[len(expired)-1] != users[i] {
				expired = append(expired, users[i])
			}
		}
	}
	if len(expired) > 0 {
		past := strconv.FormatInt(now.UnixMilli(), 10)
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, u := range expired {
				p.ZRemRangeByScore(ctx, s.watchersKey(u.App, u.User), "-inf", past)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pruning the expired watchers of %d users: %w", len(expired), err)
		}
	}
	return out, nil
}

// sessionGateway returns the gateway of a session's value (see
// encodeSession): its third part.
func sessionGateway(value string) (string, bool) {
	_, rest, ok := strings.Cut(value, sep)
	if !ok {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, sep)
	if !ok {
		return "", false
	}
	gateway, _, ok := strings.Cut(rest, sep)
	return gateway, ok
}
