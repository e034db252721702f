package state_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
)

// What an announcement reads from memory (Status, AppendRoutes) is what
// it would read from Redis once the partition's images are written
// (Statuses, Routes): random records (those of TestSameAsRedis) are
// applied to the partitions of a topic of three and written batch after
// batch, and after each batch every user of the diff, known or not, reads
// the same from both.
func TestStatusAndRoutesFromMemoryEqualRedis(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) { testFromMemory(t, seed) })
	}
}

func testFromMemory(t *testing.T, seed uint64) {
	ctx := context.Background()
	gen := newDiff(t, seed) // its records, not its stores
	store := redisstore.New(redistest.Client(t), redisstore.Options{Prefix: redistest.Prefix(t), OfflineTTL: diffTTL})
	parts := newPartitions()
	owners := ownAll(t, store)
	now := time.Now()
	seen := map[string]int{}
	for range 60 {
		for range 1 + gen.rng.IntN(12) {
			c := gen.record(now)
			parts[partitionOf(c.App, c.User)].Apply(c, false)
		}
		for p, part := range parts {
			if err := store.Write(ctx, owners[p], images(part.TakeDirty())); err != nil {
				t.Fatal(err)
			}
		}
		for _, app := range diffApps {
			statuses, err := store.Statuses(ctx, app, diffUsers)
			if err != nil {
				t.Fatal(err)
			}
			routes, err := store.Routes(ctx, app, diffUsers)
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range diffUsers {
				part := parts[partitionOf(app, name)]
				got, err := part.Status(redisstore.User{App: app, User: name})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, statuses[i]) {
					t.Fatalf("%s/%s: status from memory %+v, from Redis %+v", app, name, got, statuses[i])
				}
				gotRoutes, wantRoutes := part.AppendRoutes(nil, app, name), routes[name]
				for _, r := range [][]redisstore.Route{gotRoutes, wantRoutes} {
					slices.SortFunc(r, func(a, b redisstore.Route) int { return strings.Compare(a.Session, b.Session) })
				}
				if !slices.Equal(gotRoutes, wantRoutes) {
					t.Fatalf("%s/%s: routes from memory %v, from Redis %v", app, name, gotRoutes, wantRoutes)
				}
				switch {
				case got == nil:
					seen["unknown"]++
				case len(got.Sessions) > 1:
					seen["online, sessions"]++
				case got.State == redisstore.Offline && got.LastSeen != nil:
					seen["offline, last seen"]++
				}
				if got != nil && got.Custom != nil {
					seen["custom"]++
				}
			}
		}
	}
	for _, c := range []string{"unknown", "online, sessions", "offline, last seen", "custom"} {
		if seen[c] == 0 {
			t.Errorf("no user read was %s: %v", c, seen)
		}
	}
}
