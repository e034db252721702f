package redisstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

// deadKeys returns the keys of partition 0 of topic dead at now, and
// marks them buried.
func deadKeys(t *testing.T, s *redisstore.Store, topic string, now time.Time) []string {
	t.Helper()
	ctx := context.Background()
	dead, err := s.DeadKeys(ctx, topic, 0, now, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Buried(ctx, topic, 0, dead); err != nil {
		t.Fatal(err)
	}
	slices.Sort(dead)
	return dead
}

// A subscription's record is dead once it has expired, not before, and
// not if it was renewed.
func TestDeadSubscriptionKeys(t *testing.T) {
	s := newStore(t, time.Hour)
	ctx := context.Background()
	now := time.Now()
	sub := func(user, subscriber string, expires time.Time) redisstore.SubscriptionChange {
		return redisstore.SubscriptionChange{App: "chat", User: user, Subscriber: subscriber, ExpiresAt: expires}
	}
	if err := s.ApplySubscriptions(ctx, redisstore.Owner{}, []redisstore.SubscriptionChange{
		sub("ann", "w1", now.Add(time.Minute)), sub("ann", "w2", now.Add(time.Minute)), sub("ann", "w3", now.Add(-time.Minute)),
	}, now); err != nil {
		t.Fatal(err)
	}
	got := deadKeys(t, s, schemas.SubscriptionsTopic, now)
	if want := []string{schemas.SubscriptionKey("chat", "ann", "w3")}; !slices.Equal(got, want) {
		t.Fatalf("dead now: %q, want the expired w3", got)
	}
	// w2 is renewed for an hour.
	if err := s.ApplySubscriptions(ctx, redisstore.Owner{}, []redisstore.SubscriptionChange{sub("ann", "w2", now.Add(time.Hour))}, now); err != nil {
		t.Fatal(err)
	}
	got = deadKeys(t, s, schemas.SubscriptionsTopic, now.Add(2*time.Minute))
	if want := []string{schemas.SubscriptionKey("chat", "ann", "w1")}; !slices.Equal(got, want) {
		t.Fatalf("dead in 2 minutes: %q, want w1 only", got)
	}
}

// The schedule of dead session keys an older release kept in Redis is
// deleted when a partition is taken: the processor knows them in memory.
// Its pending offline announcements are read, and deleted once made.
func TestOlderSchedules(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t), redistest.Prefix(t)
	s := redisstore.New(rdb, redisstore.Options{Prefix: prefix})
	old := []string{prefix + ":expire:" + schemas.SessionsTopic + ":3", prefix + ":grace:3"}
	other := []string{prefix + ":expire:" + schemas.SessionsTopic + ":4", prefix + ":grace:4"}
	for _, key := range append(old, other...) {
		if err := rdb.ZAdd(ctx, key, redis.Z{Score: 1, Member: "chat/ann/s1"}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.ZAdd(ctx, old[1], redis.Z{Score: 1_700_000_000_000, Member: "chat/bob"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.DropSessionsSchedule(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, old[0]).Val() != 0 || rdb.Exists(ctx, other...).Val() != 2 {
		t.Fatal("dropping partition 3's schedule of dead keys: want it gone and partition 4's kept")
	}
	pending, err := s.OldGraces(ctx, 3)
	want := redisstore.Pending{User: redisstore.User{App: "chat", User: "bob"}, Due: time.UnixMilli(1_700_000_000_000)}
	if err != nil || len(pending) != 1 || pending[0].User != want.User || !pending[0].Due.Equal(want.Due) {
		t.Fatalf("pending announcements of partition 3: %v, %v; want %v", pending, err, want)
	}
	owner, err := s.Own(ctx, schemas.SessionsTopic, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DropOldGraces(ctx, owner, 3); err != nil || rdb.Exists(ctx, old[1]).Val() != 0 {
		t.Fatalf("dropping partition 3's old announcements: %v", err)
	}
}
