package state_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/status"
)

// A restore from the topic equals a restore from Redis. Random records
// (those of TestSameAsRedis) are folded quietly into the partitions of a
// topic of three, as a processor restores a partition from its records,
// and the images they hand out are written to Redis as the processor
// writes them (Own, then Write, batch after batch). Each partition is
// then restored from Redis alone (ScanUsers, then Load) and must equal the
// folded one: the same image of every user (hash and expiry), the same
// gateways and sessions on each, the same grace-period checks. Then the
// same live records, with announcements marked, are applied to both, and
// every outcome and every image written must be the same: the restored
// partition goes on as the folded one would. It runs on a single Redis
// and on a Redis Cluster, whose masters ScanUsers reads at once.
func TestRestoreFromRedisEqualsTheRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		rdb  func(t *testing.T) redis.UniversalClient
	}{
		{"single", func(t *testing.T) redis.UniversalClient { return redistest.Client(t) }},
		{"cluster", func(t *testing.T) redis.UniversalClient { return redistest.ClusterClient(t) }},
	} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s seed %d", tc.name, seed), func(t *testing.T) {
				testRestore(t, tc.rdb(t), seed)
			})
		}
	}
}

const restorePartitions = 3

func testRestore(t *testing.T, rdb redis.UniversalClient, seed uint64) {
	ctx := context.Background()
	gen := newDiff(t, seed) // its records, not its stores
	prefix := redistest.Prefix(t)
	store := redisstore.New(rdb, redisstore.Options{Prefix: prefix, OfflineTTL: diffTTL})
	now := time.Now()
	folded := newPartitions()
	owners := ownAll(t, store)
	// Keys beside the users' hashes, which a restore must pass over.
	for _, k := range []string{":{chat/ann}:f", ":{chat/ann}:w", ":gw:{gw-a}:0"} {
		if err := rdb.SAdd(ctx, prefix+k, "x").Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Restored after every few batches, so that users are met online,
	// offline and with custom statuses.
	var restored []*state.Partition
	seen := map[string]int{}
	for range 8 {
		for range 6 {
			for range 1 + gen.rng.IntN(12) {
				c := gen.record(now)
				if c.Op == redisstore.Connect && c.Version%2 == 0 { // an activity record (the generator's draws left alone)
					c.Report, c.Activity = true, []status.Activity{status.Active, status.Idle, status.Background}[c.Version/2%3]
				}
				folded[partitionOf(c.App, c.User)].Apply(c, true)
			}
			for p, part := range folded {
				if err := store.Write(ctx, owners[p], images(part.TakeDirty())); err != nil {
					t.Fatal(err)
				}
			}
		}
		restored = restore(t, store)
		for p := range folded {
			compareRestored(t, folded[p], restored[p])
			for _, im := range folded[p].Images() {
				f := pairs(im.Fields)
				switch {
				case im.ExpireAt.IsZero():
					seen["online"]++
				case f["l"] != "":
					seen["offline, last seen"]++
				default:
					seen["offline, never seen"]++
				}
				if f["c"] != "" {
					seen["custom"]++
				}
				for _, v := range f {
					if strings.HasSuffix(v, "\x1fi") || strings.HasSuffix(v, "\x1fb") {
						seen["not active"]++
					}
				}
			}
		}
	}
	for _, c := range []string{"online", "offline, last seen", "offline, never seen", "custom", "not active"} {
		if seen[c] == 0 {
			t.Errorf("no user restored was %s: %v", c, seen)
		}
	}

	// Live records, applied to both.
	for range 30 {
		var marked []redisstore.Change
		var visible []string
		for range 1 + gen.rng.IntN(12) {
			c := gen.record(now)
			p := partitionOf(c.App, c.User)
			want, got := folded[p].Apply(c, false), restored[p].Apply(c, false)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("record %+v: restored %s, folded %s", c, show(got), show(want))
			}
			if got.Announce == redisstore.Now && gen.rng.IntN(4) > 0 {
				marked, visible = append(marked, c), append(visible, got.Visible)
			}
		}
		for i, c := range marked {
			u := redisstore.User{App: c.App, User: c.User}
			folded[partitionOf(c.App, c.User)].MarkAnnounced(u, visible[i])
			restored[partitionOf(c.App, c.User)].MarkAnnounced(u, visible[i])
		}
		for p := range folded {
			want, got := folded[p].TakeDirty(), restored[p].TakeDirty()
			if len(got) != len(want) {
				t.Fatalf("partition %d: restored wrote %d users, folded %d", p, len(got), len(want))
			}
			for i := range want {
				if got[i].User != want[i].User || got[i].Gone != want[i].Gone || !got[i].ExpireAt.Equal(want[i].ExpireAt) ||
					!maps.Equal(pairs(got[i].Fields), pairs(want[i].Fields)) {
					t.Fatalf("partition %d: restored wrote %+v, folded %+v", p, got[i], want[i])
				}
			}
		}
	}
	for p := range folded {
		compareRestored(t, folded[p], restored[p])
	}
}

// restore restores every partition from Redis alone.
func restore(t *testing.T, store *redisstore.Store) []*state.Partition {
	t.Helper()
	restored := newPartitions()
	err := store.ScanUsers(context.Background(), restorePartitions, []int32{0, 1, 2}, func(u redisstore.StoredUser) error {
		if want := partitionOf(u.App, u.User); int(u.Partition) != want {
			return fmt.Errorf("%s/%s found in partition %d, not %d", u.App, u.User, u.Partition, want)
		}
		return restored[u.Partition].Load(u.App, u.User, u.Fields, u.ExpireAt)
	})
	if err != nil {
		t.Fatal(err)
	}
	return restored
}

func newPartitions() []*state.Partition {
	out := make([]*state.Partition, restorePartitions)
	for i := range out {
		out[i] = state.New(state.Config{OfflineTTL: diffTTL})
	}
	return out
}

func partitionOf(app, user string) int {
	return schemas.Partition([]byte(schemas.UserKey(app, user)), restorePartitions)
}

// images are a partition's images as the processor writes them.
func images(dirty []state.Image) []redisstore.Image {
	out := make([]redisstore.Image, len(dirty))
	for i, d := range dirty {
		out[i] = redisstore.Image{App: d.User.App, User: d.User.User, Fields: d.Fields, Whole: true, ExpireAt: d.ExpireAt}
	}
	return out
}

// pairs is a hash's fields as a map: the order of a user's sessions is
// the order they connected in, which Redis does not keep.
func pairs(fields []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i]] = fields[i+1]
	}
	return m
}

// compareRestored fails unless a partition restored from Redis shows
// what the folded one does: every user's image, the gateways and their
// sessions, every user's grace-period check (of the diff's users, known
// or not), and consistent indexes.
func compareRestored(t *testing.T, folded, restored *state.Partition) {
	t.Helper()
	want, got := folded.Images(), restored.Images()
	if len(got) != len(want) {
		t.Fatalf("restored %d users, folded %d", len(got), len(want))
	}
	for key, w := range want {
		g, ok := got[key]
		if !ok || !g.ExpireAt.Equal(w.ExpireAt) || !maps.Equal(pairs(g.Fields), pairs(w.Fields)) {
			t.Fatalf("user %s: restored %+v (known %v), folded %+v", key, g, ok, w)
		}
	}
	if !slices.Equal(restored.Gateways(), folded.Gateways()) {
		t.Fatalf("gateways: restored %v, folded %v", restored.Gateways(), folded.Gateways())
	}
	for _, gw := range folded.Gateways() {
		if g, w := restored.SessionsOf(gw), folded.SessionsOf(gw); !reflect.DeepEqual(g, w) {
			t.Fatalf("sessions of %s: restored %+v, folded %+v", gw, g, w)
		}
	}
	for _, app := range diffApps {
		for _, name := range diffUsers {
			u := redisstore.User{App: app, User: name}
			if g, w := restored.Check(u), folded.Check(u); !reflect.DeepEqual(g, w) {
				t.Fatalf("check of %v: restored %s, folded %s", u, show(g), show(w))
			}
		}
	}
	if err := restored.CheckIndexes(); err != nil {
		t.Fatal(err)
	}
}

// Load refuses a hash no image makes and a user known already, and does
// not load an offline user whose deadline has passed (Redis is expiring
// its key).
func TestLoadRefuses(t *testing.T) {
	now := time.Now()
	later, past := now.Add(time.Minute), now.Add(-time.Minute)
	session := "web\x1fd1\x1fgw-a\x1f1700000000000\x1fe1"
	for _, tc := range []struct {
		name     string
		fields   map[string]string
		expireAt time.Time
		ok       bool
		known    int
	}{
		{"online", map[string]string{"v": "3", "ss1": session}, time.Time{}, true, 1},
		{"offline", map[string]string{"v": "3", "l": "1700000000000", "a": "="}, later, true, 1},
		{"offline, past its deadline", map[string]string{"v": "3", "l": "1700000000000"}, past, true, 0},
		{"offline without expiry", map[string]string{"v": "3", "l": "1700000000000"}, time.Time{}, false, 0},
		{"no version", map[string]string{"ss1": session}, time.Time{}, false, 0},
		{"bad version", map[string]string{"v": "x", "ss1": session}, time.Time{}, false, 0},
		{"unknown field", map[string]string{"v": "3", "ss1": session, "z": "1"}, time.Time{}, false, 0},
		{"short session", map[string]string{"v": "3", "ss1": "web\x1fd1"}, time.Time{}, false, 0},
		{"bad connected at", map[string]string{"v": "3", "ss1": "web\x1fd1\x1fgw-a\x1fnow\x1fe1"}, time.Time{}, false, 0},
		{"bad custom", map[string]string{"v": "3", "ss1": session, "c": "busy"}, time.Time{}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := state.New(state.Config{Now: func() time.Time { return now }})
			err := p.Load("chat", "ann", tc.fields, tc.expireAt)
			if (err == nil) != tc.ok || p.Len() != tc.known {
				t.Fatalf("Load: %v, %d users known; want ok %v, %d known", err, p.Len(), tc.ok, tc.known)
			}
			if tc.known == 1 {
				if err := p.Load("chat", "ann", tc.fields, tc.expireAt); err == nil {
					t.Fatal("a user known already was loaded again")
				}
			}
		})
	}
}

// DropDirty forgets the users changed without their images: the next
// TakeDirty hands out only those changed since.
func TestDropDirty(t *testing.T) {
	p := state.New(state.Config{})
	at := time.Now()
	connect := func(user string, version int64) redisstore.Change {
		return redisstore.Change{Op: redisstore.Connect, App: "chat", User: user, Session: "s1", Device: "web",
			DeviceID: "d1", Gateway: "gw-a", Epoch: "e1", At: at, Version: version}
	}
	p.Apply(connect("ann", 1), true)
	p.Apply(connect("bob", 2), true)
	p.DropDirty()
	if p.Dirty() != 0 || p.Len() != 2 {
		t.Fatalf("after DropDirty: %d dirty, %d known; want 0 and 2", p.Dirty(), p.Len())
	}
	p.Apply(connect("cy", 3), false)
	if got := p.TakeDirty(); len(got) != 1 || got[0].User.User != "cy" {
		t.Fatalf("TakeDirty = %+v, want cy alone", got)
	}
}

// ownAll takes every partition of the restore tests in store.
func ownAll(t *testing.T, store *redisstore.Store) [restorePartitions]redisstore.Owner {
	t.Helper()
	var owners [restorePartitions]redisstore.Owner
	for p := range owners {
		o, err := store.Own(context.Background(), schemas.SessionsTopic, int32(p))
		if err != nil {
			t.Fatal(err)
		}
		owners[p] = o
	}
	return owners
}
