package main

// Parallel replays. Every `presence replay` given the same --replay-group
// (not --group: PRESENCE_GROUP names the processors' group) joins
// that Kafka consumer group, which spreads the partitions among them and
// moves those of a process that stops to the others; the checkpoints in
// Redis say where each partition resumes, whoever applies it. A marker
// key, P:replay, names the group replaying into the prefix: a process of
// that group accepts the target although it is not empty, any other is
// refused. Its value is the group, preceded by "reset " while the first
// process of the group empties the target (--reset): a process joining
// then waits, so that it never starts from checkpoints about to be
// deleted. The marker is deleted once the whole is in Redis, by the last
// process to leave the group (see deleteGroup); a replay
// stopped early leaves it, so that the same --replay-group finishes the work.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// errReplayRunning means another replay is writing to the target.
var errReplayRunning = errors.New("another replay is running on the target")

// resetPhase prefixes the marker while the target is being emptied.
const resetPhase = "reset "

// swapMarker sets KEYS[1] to ARGV[2] (deletes it when ARGV[2] is "") only
// if it holds ARGV[1] ("" for missing); it returns 1 if it did.
var swapMarker = redis.NewScript(`
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1`)

func markerKey(prefix string) string { return prefix + ":replay" }

// claim takes the target for the replay of group: empty, it marks it; a
// replay of the same group under way (or stopped), it joins; with reset,
// it empties it first unless a live replay holds it.
func claim(ctx context.Context, cfg replayConfig, group string, rs *replayTarget, adm *kadm.Client, out io.Writer) error {
	key := markerKey(cfg.prefix)
	waited := false
	for {
		held, err := rs.rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("reading the replay marker of %s: %w", rs.name, err)
		}
		owner, resetting := strings.CutPrefix(held, resetPhase)
		live := false
		if owner != "" {
			if live, err = groupLive(ctx, adm, owner); err != nil {
				return err
			}
		}
		if owner != group && cfg.group != "" {
			// A group with members that does not replay into this target
			// (the processors' group, or a replay into another) must not
			// be joined: its partitions would go quiet.
			if inUse, err := groupLive(ctx, adm, group); err != nil {
				return err
			} else if inUse {
				return fmt.Errorf("%w: consumer group %s has members but is not replaying into %s; nothing was changed. "+
					"Choose a --replay-group of its own", errReplayRunning, group, rs.name)
			}
		}
		switch {
		case owner != "" && owner != group && live:
			return fmt.Errorf("%w: the replay of consumer group %s is writing to %s; nothing was changed. "+
				"Join it with --replay-group %s (without --reset), or wait for it to end", errReplayRunning, owner, rs.name, owner)
		case owner == group && cfg.reset && live:
			return fmt.Errorf("%w: the replay of consumer group %s is writing to %s and --reset would delete its work; nothing was changed. "+
				"Join it without --reset", errReplayRunning, owner, rs.name)
		case owner == group && resetting && !cfg.reset:
			// The first process of the group is emptying the target
			// (it joins the group once done, so it shows no member).
			if !waited {
				fmt.Fprintf(out, "replay: waiting for the --reset of %s by consumer group %s to end "+
					"(if that process died, run one with --reset again)\n", rs.name, group)
				waited = true
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w while waiting for the reset of %s by consumer group %s", errInterrupted, rs.name, group)
			case <-time.After(200 * time.Millisecond):
			}
			continue
		case owner == group && !cfg.reset:
			fmt.Fprintf(out, "replay: joining the replay of consumer group %s into %s\n", group, rs.name)
			return nil
		case owner != "" && !cfg.reset:
			return fmt.Errorf("%w: %s holds the partial state of a replay stopped early (consumer group %s); nothing was changed. "+
				"Finish it with --replay-group %s, or run again with --reset", errNotEmpty, rs.name, owner, owner)
		case owner == "" && !cfg.reset:
			state, err := heldState(ctx, rs.store, rs.rdb, cfg.prefix)
			if err != nil {
				return fmt.Errorf("looking at %s: %w", rs.name, err)
			}
			if state != "" {
				if again, err := rs.rdb.Get(ctx, key).Result(); err == nil && again != "" {
					continue // another process marked it, and has begun, since we read the marker
				}
				return fmt.Errorf("%w: %s holds %s; nothing was changed. Stop the processors writing to it and run again with --reset, "+
					"or replay into a new Redis or --key-prefix and point the services at it afterwards", errNotEmpty, rs.name, state)
			}
			if ok, err := swap(ctx, rs.rdb, key, "", group); err != nil || ok {
				return err
			}
			continue // another process marked it meanwhile
		}
		// --reset of a target that no live replay holds.
		if ok, err := swap(ctx, rs.rdb, key, held, resetPhase+group); err != nil {
			return err
		} else if !ok {
			continue
		}
		n, err := unlinkAll(ctx, rs.rdb, cfg.prefix)
		if err != nil {
			return fmt.Errorf("--reset: deleting the keys of %s: %w (%d deleted; run again to finish)", rs.name, err, n)
		}
		if _, err := swap(ctx, rs.rdb, key, resetPhase+group, group); err != nil {
			return err
		}
		fmt.Fprintf(out, "replay: --reset: deleted %d keys of %s\n", n, rs.name)
		return nil
	}
}

// release deletes the marker of group, once the whole is in Redis and the
// group is gone.
func release(ctx context.Context, rdb redis.UniversalClient, prefix, group string) error {
	_, err := swap(ctx, rdb, markerKey(prefix), group, "")
	return err
}

func swap(ctx context.Context, rdb redis.UniversalClient, key, from, to string) (bool, error) {
	n, err := swapMarker.Run(ctx, rdb, []string{key}, from, to).Int()
	if err != nil {
		return false, fmt.Errorf("writing the replay marker %s: %w", key, err)
	}
	return n == 1, nil
}

// groupLive reports whether the consumer group has members.
func groupLive(ctx context.Context, adm *kadm.Client, group string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	described, err := adm.DescribeGroups(ctx, group)
	if err == nil {
		err = described.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("describing consumer group %s: %w", group, err)
	}
	return len(described[group].Members) > 0, nil
}
