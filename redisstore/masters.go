package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
)

// The loss of one master of a Redis Cluster. The checkpoints live on one
// master, the users of every partition on all of them: a master that loses
// its data (a FLUSHALL, a restart without persistence, a replica promoted
// empty) takes users of every partition with it while the checkpoints say
// the state is whole. So each master holds a marker:
//
//	P:alive:{<tag>}  string: the tags of every marker, space-separated
//
// where <tag> is the first of "0", "1", ... whose slot the master serves.
// The markers are written when partitions are reset for a rebuild, when
// checkpoints are found without any marker (a state built before them),
// and whenever a master without one appears (a new master, a resharding). A
// marker named by another that is missing means its master lost its data:
// Checkpoint then forgets the checkpoints of every state topic, as a
// FLUSHALL of a single Redis loses them, so that every processor rebuilds
// its partitions and lookups say the state is being rebuilt. A master
// that holds no marker after a resharding moved it away is not watched
// until the next check writes it one. On a single Redis the checkpoints
// themselves are lost with the data, and no marker is written.

func (s *Store) markerKey(tag string) string { return s.prefix + ":alive:{" + tag + "}" }

// markers is what the markers of a cluster say.
type markers struct {
	// mine holds one tag per master, for the slots each serves now.
	mine []string
	// known holds mine and the tags the markers of mine name.
	known []string
	// lost holds the tags named by a marker present but missing.
	lost []string
	// present says some marker is present; unmarked, that a tag of mine
	// has none and is named by none (a new master).
	present, unmarked bool
}

// readMarkers reads the markers of a cluster.
func (s *Store) readMarkers(ctx context.Context, c *redis.ClusterClient) (markers, error) {
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		return markers{}, fmt.Errorf("reading the slots of the cluster: %w", err)
	}
	var m markers
	if m.mine, err = s.markerTags(slots); err != nil {
		return markers{}, err
	}
	values, err := s.getMarkers(ctx, c, m.mine)
	if err != nil {
		return markers{}, err
	}
	known := slices.Clone(m.mine)
	for _, v := range values {
		known = append(known, strings.Fields(v)...)
	}
	slices.Sort(known)
	m.known = slices.Compact(known)
	var others []string
	for _, tag := range m.known {
		if _, ok := values[tag]; !ok && !slices.Contains(m.mine, tag) {
			others = append(others, tag)
		}
	}
	found, err := s.getMarkers(ctx, c, others)
	if err != nil {
		return markers{}, err
	}
	maps.Copy(found, values)
	m.present = len(found) > 0
	present := slices.Sorted(maps.Keys(found))
	s.present.Store(&present)
	for _, tag := range m.known {
		if _, ok := found[tag]; ok {
			continue
		}
		if namedBy(found, tag) {
			m.lost = append(m.lost, tag)
		} else {
			m.unmarked = true
		}
	}
	return m, nil
}

// namedBy says whether a marker of found names tag.
func namedBy(found map[string]string, tag string) bool {
	for _, v := range found {
		if slices.Contains(strings.Fields(v), tag) {
			return true
		}
	}
	return false
}

// getMarkers reads the markers of tags: tag -> value, for those present.
func (s *Store) getMarkers(ctx context.Context, c *redis.ClusterClient, tags []string) (map[string]string, error) {
	cmds := make([]*redis.StringCmd, len(tags))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, tag := range tags {
			cmds[i] = p.Get(ctx, s.markerKey(tag))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading the markers of the masters: %w", err)
	}
	out := map[string]string{}
	for i, cmd := range cmds {
		// Only a marker Redis says is not there is missing: one that
		// could not be read is no sign of a loss.
		switch v, err := cmd.Result(); {
		case err == nil:
			out[tags[i]] = v
		case !errors.Is(err, redis.Nil):
			return nil, fmt.Errorf("reading the marker of a master: %w", err)
		}
	}
	return out, nil
}

// markerTags returns one tag per master of slots: the first of "0", "1",
// ... whose slot the master serves.
func (s *Store) markerTags(slots []redis.ClusterSlot) ([]string, error) {
	owner := slotOwners(slots)
	masters := map[string]bool{}
	for _, addr := range owner {
		if addr != "" {
			masters[addr] = true
		}
	}
	tagged := map[string]bool{}
	var tags []string
	for i := 0; len(tags) < len(masters) && i < 64*keySlots; i++ {
		tag := strconv.Itoa(i)
		if addr := owner[keySlot(s.markerKey(tag))]; addr != "" && !tagged[addr] {
			tagged[addr] = true
			tags = append(tags, tag)
		}
	}
	if len(tags) < len(masters) {
		return nil, fmt.Errorf("finding a marker key for each of %d masters: found %d", len(masters), len(tags))
	}
	return tags, nil
}

// writeMarkers writes the marker of every tag of mine, each naming known.
// The markers missing are first created naming only themselves: the
// masters are written side by side, and a processor reading them
// meanwhile (another member rebuilding its partitions) would otherwise
// see a marker naming one not yet written, take it for a lost master and
// forget every checkpoint.
func (s *Store) writeMarkers(ctx context.Context, c *redis.ClusterClient, mine, known []string) error {
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, tag := range mine {
			p.SetNX(ctx, s.markerKey(tag), tag, 0)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("creating the markers of the masters: %w", err)
	}
	value := strings.Join(known, " ")
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, tag := range mine {
			p.Set(ctx, s.markerKey(tag), value, 0)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing the markers of the masters: %w", err)
	}
	return nil
}

// markMasters writes a marker on every master that has none, once the
// state is being built.
func (s *Store) markMasters(ctx context.Context) error {
	c, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return nil
	}
	m, err := s.readMarkers(ctx, c)
	if err != nil {
		return err
	}
	return s.writeMarkers(ctx, c, m.mine, m.mine)
}

// mastersLost reports, on a cluster, whether a master lost its data (a
// marker named by another is missing), writing nothing.
func (s *Store) mastersLost(ctx context.Context) (bool, error) {
	c, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return false, nil
	}
	m, err := s.readMarkers(ctx, c)
	if err != nil {
		return false, err
	}
	return len(m.lost) > 0, nil
}

// guardMasters checks, on a cluster, that no master lost its data. If
// one did, it forgets the checkpoints of every state topic, then marks
// the masters anew: every processor finds its partitions unbuilt and
// rebuilds them. A master without a marker gets one.
func (s *Store) guardMasters(ctx context.Context) error {
	c, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return nil
	}
	m, err := s.readMarkers(ctx, c)
	if err != nil {
		return err
	}
	switch {
	case len(m.lost) > 0:
		for _, topic := range schemas.StateTopics {
			if err := s.Forget(ctx, topic); err != nil {
				return err
			}
		}
		return s.writeMarkers(ctx, c, m.mine, m.mine)
	case m.unmarked && m.present:
		return s.writeMarkers(ctx, c, m.mine, m.known)
	case !m.present:
		// State built before markers were: mark it. A store never
		// built stays without a key.
		for _, topic := range schemas.StateTopics {
			n, err := c.Exists(ctx, s.checkpointKey(topic)).Result()
			if err != nil {
				return fmt.Errorf("reading checkpoints: %w", err)
			}
			if n > 0 {
				return s.writeMarkers(ctx, c, m.mine, m.mine)
			}
		}
	}
	return nil
}
