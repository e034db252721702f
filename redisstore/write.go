package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed write.lua
var writeSource string

// ErrFenced means another processor has taken the partition (Own) since
// this one did: it must stop writing the partition's users.
var ErrFenced = errors.New("partition owned by another processor")

// Image is what to write of a user's hash: the processor that owns the
// user's partition keeps the user in memory and writes the result, not
// the change, so Redis reads and parses nothing.
type Image struct {
	App, User string
	// Fields are set: fields and their values, in pairs.
	Fields []string
	// Removed are the fields deleted.
	Removed []string
	// Whole says Fields are the whole hash: every other field goes (the
	// key is deleted first), for a writer that does not know what the
	// hash holds. Whole without Fields forgets the user.
	Whole bool
	// ExpireAt is when the key expires, if not zero; zero leaves the
	// expiry as it is (a whole image has none).
	ExpireAt time.Time
}

// args appends the image's part of a call of write.lua (on a cluster) to
// args.
func (im Image) args(args []any, key string) []any {
	whole := ""
	if im.Whole {
		whole = "w"
	}
	args = append(args, key, whole, len(im.Fields))
	for _, f := range im.Fields {
		args = append(args, f)
	}
	args = append(args, len(im.Removed))
	for _, f := range im.Removed {
		args = append(args, f)
	}
	if !im.ExpireAt.IsZero() {
		return append(args, strconv.FormatInt(im.ExpireAt.UnixMilli(), 10))
	}
	return append(args, "")
}

// commands appends the commands that write the image to cmds.
func (im Image) commands(cmds []command, key string) []command {
	if im.Whole {
		cmds = append(cmds, command{"del", key})
	}
	if len(im.Fields) > 0 {
		cmds = append(cmds, withStrings(command{"hset", key}, im.Fields))
	}
	if len(im.Removed) > 0 {
		cmds = append(cmds, withStrings(command{"hdel", key}, im.Removed))
	}
	if !im.ExpireAt.IsZero() {
		cmds = append(cmds, command{"pexpireat", key, im.ExpireAt.UnixMilli()})
	}
	return cmds
}

// withStrings appends strs to cmd.
func withStrings(cmd command, strs []string) command {
	cmd = slices.Grow(cmd, len(strs))
	for _, s := range strs {
		cmd = append(cmd, s)
	}
	return cmd
}

// maxWritten bounds the users of one call of write.lua, and so the time
// Redis spends in one call without serving others (a microsecond or two
// each).
const maxWritten = 500

// Write writes images of users of the partition o owns: on a single Redis
// in fenced transactions (runWatched), on a cluster in as few script calls
// as the users' nodes allow (one per maxWritten users of one node),
// pipelined. It returns ErrFenced,
// and writes nothing more, when another processor has taken the partition
// since: its writes must win. Users whose call was not refused may have
// been written, which is harmless: the new owner writes every user the
// records since its checkpoint touch. On a Redis Cluster whose slots moved
// under it, Write reads the slots again and retries once.
func (s *Store) Write(ctx context.Context, o Owner, images []Image) error {
	if len(images) == 0 {
		return nil
	}
	err := s.write(ctx, o, images)
	if err != nil && !errors.Is(err, ErrFenced) && s.isCluster() {
		s.fences.forget()
		err = s.write(ctx, o, images)
	}
	if err != nil {
		return fmt.Errorf("writing %d users of %s partition %d: %w", len(images), o.topic, o.partition, err)
	}
	return nil
}

func (s *Store) write(ctx context.Context, o Owner, images []Image) error {
	if c, single := s.rdb.(*redis.Client); single && o.token != "" {
		groups := make([][]command, len(images)) // a user's commands in one transaction
		for i, im := range images {
			groups[i] = im.commands(nil, s.userKey(im.App, im.User))
		}
		return s.runWatched(ctx, c, o, groups)
	}
	keys := make([]string, len(images))
	for i, im := range images {
		keys[i] = s.userKey(im.App, im.User)
	}
	return s.runFenced(ctx, o, s.writer, keys, func(args []any, i int) []any {
		return images[i].args(args, keys[i])
	})
}

// runFenced runs script (write.lua or fenced.lua) over the items of keys,
// by index: one call per node and per maxWritten items, pipelined, each
// checking o's fence on its node; arg appends an item's arguments. It
// returns ErrFenced when a call found another token.
func (s *Store) runFenced(ctx context.Context, o Owner, script *redis.Script, keys []string, arg func(args []any, i int) []any) error {
	groups, err := s.byNode(ctx, keys)
	if err != nil {
		return err
	}
	var cmds []*redis.Cmd
	err = s.scripted(ctx, script, func(p redis.Pipeliner) {
		for _, g := range groups {
			for call := range slices.Chunk(g.items, maxWritten) {
				args := make([]any, 0, 1+8*len(call))
				args = append(args, o.token)
				for _, i := range call {
					args = arg(args, i)
				}
				cmds = append(cmds, script.EvalSha(ctx, p, []string{s.fenceKey(g.tag, o.topic, o.partition)}, args...))
			}
		}
	})
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if n, err := c.Int(); err != nil {
			return err
		} else if n == 0 {
			return ErrFenced
		}
	}
	return nil
}

// nodeItems are the items (by index) whose keys one node serves, whose
// fence is tagged tag.
type nodeItems struct {
	tag   string
	items []int
}

// byNode groups the items of keys by the node that serves their keys: one
// group on a single Redis.
func (s *Store) byNode(ctx context.Context, keys []string) ([]nodeItems, error) {
	if !s.isCluster() {
		all := make([]int, len(keys))
		for i := range all {
			all[i] = i
		}
		return []nodeItems{{items: all}}, nil
	}
	r, err := s.fences.route(ctx, s)
	if err != nil {
		return nil, err
	}
	byTag := map[string]int{}
	var groups []nodeItems
	for i, key := range keys {
		tag := r.tagOf[r.owner[keySlot(key)]]
		g, ok := byTag[tag]
		if !ok {
			g = len(groups)
			byTag[tag] = g
			groups = append(groups, nodeItems{tag: tag})
		}
		groups[g].items = append(groups[g].items, i)
	}
	return groups, nil
}
