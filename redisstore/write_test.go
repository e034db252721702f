package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

// Write sets and deletes the fields of each user's image, replaces the
// hash of a whole one and forgets a user whose whole image is empty;
// once another
// processor has taken the partition, the former owner's writes are
// refused on every node and change nothing. On one Redis and on a
// 3-master cluster, with users on every master.
func TestWriteIsFenced(t *testing.T) {
	ctx := context.Background()
	for name, url := range map[string]string{
		"single":  redistest.URL(t),
		"cluster": redistest.SharedCluster(t).SeedURL(),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := redisstore.Open(ctx, url, redisstore.Options{Prefix: redistest.Prefix(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkFencedWrites(t, s)
		})
	}
}

func checkFencedWrites(t *testing.T, s *redisstore.Store) {
	ctx := context.Background()
	const n = 60
	at := time.UnixMilli(1_700_000_000_000)
	image := func(i int, device string) redisstore.Image {
		user := fmt.Sprintf("user-%d", i)
		return redisstore.Image{App: "chat", User: user,
			Fields: []string{"s1", device + "\x1fd1\x1fgw\x1f" + fmt.Sprint(at.UnixMilli()) + "\x1fe1", "v", "7"}, Whole: true}
	}
	var users []string
	var first []redisstore.Image
	for i := range n {
		users = append(users, fmt.Sprintf("user-%d", i))
		first = append(first, image(i, "phone"))
	}
	if err := s.Reset(ctx, schemas.SessionsTopic, "id", 8, map[int32]int64{3: 0, 4: 0}); err != nil {
		t.Fatal(err)
	}
	old, err := s.Own(ctx, schemas.SessionsTopic, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, old, first); err != nil {
		t.Fatal(err)
	}
	sts, err := s.Statuses(ctx, "chat", users)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range sts {
		if st == nil || st.State != "online" || len(st.Sessions) != 1 || st.Sessions[0].Device != "phone" {
			t.Fatalf("%s after a write: %+v, want online on a phone", users[i], st)
		}
	}

	// A second write changes what changed: user 0 goes offline with an
	// expiry (its session field deleted), user 1 is forgotten.
	offline := redisstore.Image{App: "chat", User: users[0], Fields: []string{"l", fmt.Sprint(at.UnixMilli()), "v", "8"},
		Removed: []string{"s1"}, ExpireAt: time.Now().Add(time.Hour)}
	gone := redisstore.Image{App: "chat", User: users[1], Whole: true}
	if err := s.Write(ctx, old, []redisstore.Image{offline, gone}); err != nil {
		t.Fatal(err)
	}
	sts, err = s.Statuses(ctx, "chat", users[:2])
	if err != nil {
		t.Fatal(err)
	}
	if st := sts[0]; st == nil || st.State != "offline" || len(st.Sessions) != 0 {
		t.Errorf("%s after going offline: %+v, want offline without sessions", users[0], st)
	}
	if sts[1] != nil {
		t.Errorf("%s after being forgotten: %+v, want unknown", users[1], sts[1])
	}

	// Another processor takes the partition: the former owner's writes,
	// to users of every node, are refused and change nothing.
	taker, err := s.Own(ctx, schemas.SessionsTopic, 3)
	if err != nil {
		t.Fatal(err)
	}
	var stale []redisstore.Image
	for i := 2; i < n; i++ {
		stale = append(stale, image(i, "zombie"))
	}
	if err := s.Write(ctx, old, stale); !errors.Is(err, redisstore.ErrFenced) {
		t.Fatalf("a write by the former owner: %v, want ErrFenced", err)
	}
	// Nor does it move the checkpoint; the new owner does.
	at0, to1 := map[int32]int64{3: 0}, map[int32]int64{3: 1}
	if err := s.Advance(ctx, schemas.SessionsTopic, at0, to1, map[int32]redisstore.Owner{3: old}, nil); !errors.Is(err, redisstore.ErrCheckpointMoved) {
		t.Fatalf("a checkpoint moved by the former owner: %v, want ErrCheckpointMoved", err)
	}
	if err := s.Advance(ctx, schemas.SessionsTopic, at0, to1, map[int32]redisstore.Owner{3: taker}, nil); err != nil {
		t.Fatalf("a checkpoint moved by the new owner: %v", err)
	}
	if cp, err := s.Checkpoint(ctx, schemas.SessionsTopic); err != nil || cp.Next[3] != 1 || len(cp.Next) != 2 {
		t.Fatalf("checkpoint after the new owner moved it: %+v, %v; want partition 3 at 1 of partitions 3 and 4", cp, err)
	}
	sts, err = s.Statuses(ctx, "chat", users[2:])
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range sts {
		if st == nil || st.Sessions[0].Device != "phone" {
			t.Errorf("%s after a refused write: %+v, want it unchanged", users[2+i], st)
		}
	}
	// The owner of another partition is not fenced by it; the new
	// owner writes.
	other, err := s.Own(ctx, schemas.SessionsTopic, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, other, stale[:1]); err != nil {
		t.Errorf("a write of another partition's owner: %v", err)
	}
	if err := s.Write(ctx, taker, stale); err != nil {
		t.Errorf("a write of the new owner: %v", err)
	}
}
