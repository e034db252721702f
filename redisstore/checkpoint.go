package redisstore

import (
	"context"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
)

//go:embed advance.lua
var advanceSource string

// ErrCheckpointMoved means a checkpoint was not what its writer expected:
// Redis lost state, or another processor owns the partition.
var ErrCheckpointMoved = errors.New("checkpoint moved")

// Checkpoint says which part of a topic the state holds.
type Checkpoint struct {
	// TopicID and Partitions identify the topic the state was built from;
	// TopicID is empty when the state holds nothing yet.
	TopicID    string
	Partitions int
	// Next holds, per partition, the offset of the first record the state
	// does not hold. A partition without an entry holds nothing, and may
	// hold debris of a lost state: Reset it before applying to it.
	Next map[int32]int64
	// Rebuild holds, per partition being rebuilt, the end of the history
	// the rebuild must apply (the partition's end when it was reset): the
	// state of that partition is incomplete until Next reaches it, and
	// its records before it are history, not news.
	Rebuild map[int32]int64
	// Told holds, per partition of presence.sessions, the offset from
	// which the offline announcements of the records before Next may not
	// all have been made (their grace period was running): those of the
	// records before it were. A partition without one has none pending.
	Told map[int32]int64
}

// globEscaper escapes the characters SCAN's MATCH pattern treats specially.
var globEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`)

const (
	fieldTopicID    = "topic-id"
	fieldPartitions = "partitions"
	// fieldRebuild prefixes the partition of a rebuild target.
	fieldRebuild = "rebuild:"
	// fieldOwner prefixes the partition of the token of its owner (Own).
	fieldOwner = "owner:"
	// fieldTold prefixes the partition of its Checkpoint.Told. It starts
	// with fieldOwner, whose fields releases before it skip when they
	// read checkpoints.
	fieldTold = fieldOwner + "told:"
)

func (s *Store) checkpointKey(topic string) string {
	return s.prefix + ":checkpoint:" + topic
}

// generationKey holds the generation of the state: a random value written
// anew whenever a rebuild begins (Reset) or checkpoints are forgotten
// (Forget), and lost with the data when Redis loses it. A reader that saw
// one generation and finds another knows the state changed under it, even
// when the checkpoints are back by then (see Generation).
func (s *Store) generationKey() string { return s.prefix + ":generation" }

// Generation returns the generation of the state, "" when there is none (a
// Redis that lost its data, or a state built before generations existed).
// Read it before Rebuilding: a lookup that finds another generation than
// the one read with the last count must read the count anew
// (StatusesIntact).
func (s *Store) Generation(ctx context.Context) (string, error) {
	g, err := s.rdb.Get(ctx, s.generationKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("reading the generation of the state: %w", err)
	}
	return g, nil
}

// newGeneration writes a new generation of the state.
func (s *Store) newGeneration(ctx context.Context) error {
	if err := s.rdb.Set(ctx, s.generationKey(), rand.Text(), 0).Err(); err != nil {
		return fmt.Errorf("writing a new generation of the state: %w", err)
	}
	return nil
}

// Checkpoint reads the checkpoint of topic. On a Redis Cluster it first
// checks that no master lost its data, and forgets every checkpoint if one
// did (see masters.go).
func (s *Store) Checkpoint(ctx context.Context, topic string) (Checkpoint, error) {
	if err := s.guardMasters(ctx); err != nil {
		return Checkpoint{}, fmt.Errorf("reading checkpoint of %s: %w", topic, err)
	}
	return s.readCheckpoint(ctx, topic)
}

func (s *Store) readCheckpoint(ctx context.Context, topic string) (Checkpoint, error) {
	raw, err := s.rdb.HGetAll(ctx, s.checkpointKey(topic)).Result()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("reading checkpoint of %s: %w", topic, err)
	}
	cp := Checkpoint{TopicID: raw[fieldTopicID], Next: make(map[int32]int64, len(raw)), Rebuild: map[int32]int64{}, Told: map[int32]int64{}}
	for field, value := range raw {
		offsets := cp.Next
		if p, ok := strings.CutPrefix(field, fieldRebuild); ok {
			field, offsets = p, cp.Rebuild
		} else if p, ok := strings.CutPrefix(field, fieldTold); ok {
			field, offsets = p, cp.Told
		}
		if strings.HasPrefix(field, fieldOwner) {
			continue
		}
		switch field {
		case fieldTopicID:
		case fieldPartitions:
			cp.Partitions, err = strconv.Atoi(value)
		default:
			var partition int64
			if partition, err = strconv.ParseInt(field, 10, 32); err == nil {
				offsets[int32(partition)], err = strconv.ParseInt(value, 10, 64)
			}
		}
		if err != nil {
			return Checkpoint{}, fmt.Errorf("reading checkpoint %s[%s]=%q: %w", topic, field, value, err)
		}
	}
	return cp, nil
}

// Advance moves the checkpoints of topic from the offsets in from to those
// in to, atomically, only if every one is still at its from offset and,
// for each partition in owners, still owned by that owner (see Own);
// otherwise it writes nothing and returns ErrCheckpointMoved. Call it only
// once the records before the new offsets are applied. A partition that
// reaches its rebuild target is rebuilt. told, when it has a partition,
// is that partition's Checkpoint.Told from then on.
func (s *Store) Advance(ctx context.Context, topic string, from, to map[int32]int64, owners map[int32]Owner, told map[int32]int64) error {
	args := make([]any, 0, 5*len(to))
	for p, next := range to {
		expected, pending := "", ""
		if f, ok := from[p]; ok {
			expected = strconv.FormatInt(f, 10)
		}
		if t, ok := told[p]; ok {
			pending = strconv.FormatInt(t, 10)
		}
		args = append(args, strconv.Itoa(int(p)), expected, next, owners[p].token, pending)
	}
	if len(args) == 0 {
		return nil
	}
	moved, err := s.advance.Run(ctx, s.rdb, []string{s.checkpointKey(topic)}, args...).Text()
	if err != nil {
		return fmt.Errorf("advancing checkpoints of %s: %w", topic, err)
	}
	if moved != "" {
		return fmt.Errorf("%w: %s partition %s, expected %v", ErrCheckpointMoved, topic, moved, from)
	}
	return nil
}

// topicKeys are the suffixes of the user keys materialized from each
// topic (see store.go and graph.go). The mirror P:{U}:s of subscriptions
// is not reset with its topic: it lives in the subscriber's slot, and
// what a rebuild leaves there expires with the subscriptions it mirrors.
var topicKeys = map[string][]string{
	schemas.SessionsTopic:      {""},
	schemas.FriendsTopic:       {":f"},
	schemas.SubscriptionsTopic: {":w"},
}

// userOf returns the user key U and the suffix of a key P:{U}<suffix>.
func (s *Store) userOf(key string) (user, suffix string) {
	rest := strings.TrimPrefix(key, s.prefix+":{")
	end := strings.LastIndexByte(rest, '}')
	if end < 0 {
		return "", ""
	}
	return rest[:end], rest[end+1:]
}

// Reset empties the state of some partitions of topic, a topic with id
// topicID and n partitions, to rebuild them: it removes their checkpoints
// (so that they count as unbuilt from then on) and writes a new
// generation, deletes what was materialized from their records, then
// starts their checkpoints at offset 0, with ends (partition -> end offset
// now) as their rebuild targets. It reads every key of the store once, so
// it is meant for rebuilds, not the hot path.
func (s *Store) Reset(ctx context.Context, topic, topicID string, n int, ends map[int32]int64) error {
	if len(ends) == 0 {
		return nil
	}
	reset := make(map[int]bool, len(ends))
	unbuilt := make([]string, 0, 3*len(ends))
	for p := range ends {
		reset[int(p)] = true
		unbuilt = append(unbuilt, strconv.Itoa(int(p)), fieldRebuild+strconv.Itoa(int(p)), fieldTold+strconv.Itoa(int(p)))
	}
	if err := s.rdb.HDel(ctx, s.checkpointKey(topic), unbuilt...).Err(); err != nil {
		return fmt.Errorf("removing the checkpoints of %d partitions of %s: %w", len(ends), topic, err)
	}
	if err := s.newGeneration(ctx); err != nil {
		return err
	}
	suffixes := topicKeys[topic]
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, globEscaper.Replace(s.prefix)+":{*", 1000).Iterator()
		var doomed []string
		for iter.Next(ctx) {
			key := iter.Val()
			user, suffix := s.userOf(key)
			if slices.Contains(suffixes, suffix) && reset[schemas.Partition([]byte(user), n)] {
				doomed = append(doomed, key)
			}
			if len(doomed) == 1000 {
				if err := unlink(ctx, c, doomed); err != nil {
					return err
				}
				doomed = doomed[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return unlink(ctx, c, doomed)
	}
	err := ForEachNode(ctx, s.rdb, scan)
	for p := range ends {
		if err != nil {
			break
		}
		doomed := []string{s.expireKey(topic, p)}
		if topic == schemas.SessionsTopic {
			doomed = append(doomed, s.graceKey(p))
		}
		for _, key := range doomed { // one by one: they are in different slots
			if err = s.rdb.Unlink(ctx, key).Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("deleting the state of %d partitions of %s: %w", len(ends), topic, err)
	}
	fields := []any{fieldTopicID, topicID, fieldPartitions, n}
	for p, end := range ends {
		fields = append(fields, strconv.Itoa(int(p)), 0)
		if end > 0 {
			fields = append(fields, fieldRebuild+strconv.Itoa(int(p)), end)
		}
	}
	if err := s.rdb.HSet(ctx, s.checkpointKey(topic), fields...).Err(); err != nil {
		return fmt.Errorf("starting checkpoints of %s: %w", topic, err)
	}
	return s.markMasters(ctx)
}

// unlink deletes keys, one UNLINK each in one pipeline: they belong to
// different users, so to different slots of a Redis Cluster.
func unlink(ctx context.Context, c *redis.Client, keys []string) error {
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Unlink(ctx, k)
		}
		return nil
	})
	return err
}

// Unbuilt returns how many partitions of the checkpoint's topic are not
// yet built: being rebuilt, or without a checkpoint; a topic never built
// counts as one.
func (cp Checkpoint) Unbuilt() int {
	if cp.TopicID == "" {
		return 1
	}
	return len(cp.Rebuild) + max(cp.Partitions-len(cp.Next), 0)
}

// Forget deletes the checkpoints of topic, every partition's, so that each
// processor finds its partitions unbuilt: its next checkpoint fails to
// advance (ErrCheckpointMoved) and it rebuilds them. It is how a state
// built from another topic, or another partition count, is replaced.
func (s *Store) Forget(ctx context.Context, topic string) error {
	if err := s.rdb.Del(ctx, s.checkpointKey(topic)).Err(); err != nil {
		return fmt.Errorf("forgetting the checkpoints of %s: %w", topic, err)
	}
	return s.newGeneration(ctx)
}

// Rebuilding returns how many partitions of the state topics are not yet
// built: being rebuilt, or without a checkpoint (lost, or never built); a
// topic never built counts as one. While it is above 0 the state is
// incomplete. On a Redis Cluster, a master that lost its data makes every
// partition count as unbuilt; it only reads: forgetting the checkpoints is
// the processors' (Checkpoint), so that readers never race a rebuild that
// has begun.
func (s *Store) Rebuilding(ctx context.Context) (int, error) {
	lost, err := s.mastersLost(ctx)
	if err != nil {
		return 0, err
	}
	pending := 0
	for _, topic := range schemas.StateTopics {
		cp, err := s.readCheckpoint(ctx, topic)
		if err != nil {
			return 0, err
		}
		if lost {
			pending += max(cp.Partitions, 1)
		} else {
			pending += cp.Unbuilt()
		}
	}
	return pending, nil
}
