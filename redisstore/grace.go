package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
)

// The offline grace period: a user who goes offline is announced only once
// the period has passed, and only if still offline, so that a flapping
// mobile link makes no offline/online pair. Pending announcements are kept
// per partition of presence.sessions, in a sorted set of user keys scored
// by when they are due, so they survive a restart of the processor and
// move with their partition.

func (s *Store) graceKey(partition int32) string {
	return s.prefix + ":grace:" + strconv.Itoa(int(partition))
}

// DelayAnnounce schedules the users of a partition to be checked at due,
// for the partition's owner o (ErrFenced when another has taken it).
func (s *Store) DelayAnnounce(ctx context.Context, o Owner, partition int32, users []User, due time.Time) error {
	if len(users) == 0 {
		return nil
	}
	zadd := command{"zadd", s.graceKey(partition)}
	for _, u := range users {
		zadd = append(zadd, due.UnixMilli(), schemas.UserKey(u.App, u.User))
	}
	if err := s.runCommands(ctx, o, []command{zadd}); err != nil {
		return fmt.Errorf("scheduling %d offline announcements: %w", len(users), err)
	}
	return nil
}

// DueAnnounces returns up to limit users of a partition due at now.
func (s *Store) DueAnnounces(ctx context.Context, partition int32, now time.Time, limit int) ([]User, error) {
	due, err := s.DueAnnouncesOf(ctx, []int32{partition}, now, limit)
	return due[partition], err
}

// DueAnnouncesOf returns up to limit users of each partition due at now,
// all in one pipelined round trip; a partition with none is absent.
func (s *Store) DueAnnouncesOf(ctx context.Context, partitions []int32, now time.Time, limit int) (map[int32][]User, error) {
	reads := make([]*redis.StringSliceCmd, len(partitions))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, partition := range partitions {
			reads[i] = p.ZRangeByScore(ctx, s.graceKey(partition), &redis.ZRangeBy{
				Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading due offline announcements: %w", err)
	}
	out := map[int32][]User{}
	for i, r := range reads {
		for _, k := range r.Val() {
			if parts := schemas.SplitKey([]byte(k)); len(parts) == 2 {
				out[partitions[i]] = append(out[partitions[i]], User{App: parts[0], User: parts[1]})
			}
		}
	}
	return out, nil
}

// DoneAnnounces removes users of a partition from the schedule, for the
// partition's owner o (ErrFenced when another has taken it: the new owner
// announces them).
func (s *Store) DoneAnnounces(ctx context.Context, o Owner, partition int32, users []User) error {
	if len(users) == 0 {
		return nil
	}
	zrem := command{"zrem", s.graceKey(partition)}
	for _, u := range users {
		zrem = append(zrem, schemas.UserKey(u.App, u.User))
	}
	if err := s.runCommands(ctx, o, []command{zrem}); err != nil {
		return fmt.Errorf("removing %d offline announcements: %w", len(users), err)
	}
	return nil
}
