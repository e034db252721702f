package state_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// compacted is presence.sessions as compaction leaves it: the latest
// record of each key, none of a key tombstoned. (A custom status's
// tombstone is a clear, which a replay applies: it is kept.)
type compacted map[string]redisstore.Change

// replay applies what c holds, in offset order, to a new partition, as a
// rebuild does.
func (c compacted) replay(clk *clock) *state.Partition {
	recs := make([]redisstore.Change, 0, len(c))
	for _, r := range c {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b redisstore.Change) int { return int(a.Version - b.Version) })
	p := newPartition(clk)
	for _, r := range recs {
		p.Apply(r, true)
	}
	return p
}

// Random records of a few users, with a sweep now and then that
// tombstones the keys DeadKeys returns: after each sweep, a replay of the
// topic as compaction leaves it with the tombstones shows every user as a
// replay of it without them does (but for versions). Dead means exactly
// that: the record's absence changes nothing. Once every user is
// forgotten, no record is left but tombstones: no dead key was missed.
func TestDeadKeysCompaction(t *testing.T) {
	users := []string{"ann", "bob", "cy"}
	sweeps, tombstones := 0, 0
	for seed := range 40 {
		r := rand.New(rand.NewPCG(uint64(seed), 14))
		clk := &clock{t0}
		live := newPartition(clk)
		// with is the topic with the tombstones, without the topic
		// had no key been tombstoned.
		with, without := compacted{}, compacted{}
		offset := int64(0)
		write := func(key string, c redisstore.Change) {
			offset++
			c.Version = offset
			with[key], without[key] = c, c
			live.Apply(c, false)
		}
		for range 400 {
			clk.t = clk.t.Add(time.Duration(r.IntN(15)) * time.Minute) // the TTL is an hour
			u, s := users[r.IntN(len(users))], "s"+strconv.Itoa(r.IntN(3))
			switch n := r.IntN(40); {
			case n < 14:
				write(sessionKey(u, s), conn(u, s, "gw", "e", 0, clk.t))
			case n < 30:
				write(sessionKey(u, s), disc(u, s, 0, clk.t))
			case n < 35:
				write(customKey(u), setCustom(u, 1+r.IntN(2), "x", 0, clk.t))
			case n < 37:
				write(customKey(u), clearCustom(u, 0, clk.t))
			default:
				sweeps++
				live.Expire(clk.t, 0)
				for _, key := range live.DeadKeys(clk.t, 0) {
					tombstones++
					ids := schemas.SplitKey([]byte(key))
					if len(ids) == 3 {
						delete(with, key)
						continue
					}
					// A custom status's tombstone is a clear, which
					// the processor reads back.
					offset++
					clear := clearCustom(ids[1], offset, clk.t)
					with[key] = clear
					live.Apply(clear, false)
				}
				live.Buried()
				a, b := with.replay(clk), without.replay(clk)
				for _, u := range users {
					key := schemas.UserKey("chat", u)
					if got, want := a.Shown(key), b.Shown(key); !slices.Equal(got, want) {
						t.Fatalf("seed %d, offset %d: %s replayed with the tombstones shows %q, without them %q", seed, offset, u, got, want)
					}
				}
			}
		}
		// Every session ends and every user is forgotten: nothing is
		// left but tombstones (clears).
		for _, u := range users {
			for s := range 3 {
				write(sessionKey(u, "s"+strconv.Itoa(s)), disc(u, "s"+strconv.Itoa(s), 0, clk.t))
			}
		}
		clk.t = clk.t.Add(2 * time.Hour)
		live.Expire(clk.t, 0)
		for _, key := range live.DeadKeys(clk.t, 0) {
			if len(schemas.SplitKey([]byte(key))) == 3 {
				delete(with, key)
			} else {
				with[key] = clearCustom("", 0, clk.t)
			}
		}
		live.Buried()
		for key, c := range with {
			if c.Op != redisstore.ClearCustom {
				t.Fatalf("seed %d: %s holds a record though its user is forgotten: %+v", seed, key, c)
			}
		}
		if err := live.CheckIndexes(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if n := live.Scheduled(); n != 0 {
			t.Fatalf("seed %d: %d keys scheduled with every user forgotten", seed, n)
		}
	}
	t.Logf("%d sweeps, %d tombstones", sweeps, tombstones)
	if tombstones < sweeps {
		t.Fatalf("%d tombstones in %d sweeps: too few to show anything", tombstones, sweeps)
	}
}
