package redisstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
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

// A session's record is dead once it has ended for the offline TTL and
// its user is online (the record says nothing any more) or forgotten;
// while its user is offline but known, the user's last_seen may come from
// it, so it lives. The user's custom status dies with the user; a session
// back online is not dead.
func TestDeadSessionKeys(t *testing.T) {
	const ttl = time.Hour
	s := newStore(t, ttl)
	custom := redisstore.Change{Op: redisstore.SetCustom, App: "chat", User: "ann", Custom: redisstore.Custom{Status: 1, Text: "away"}}
	custom.At, custom.Version = base, 2
	// ann: two devices, both gone; bob: gone, then back on the same
	// session; cid: one device gone, one online.
	apply(t, s, connect("ann", "a1", 1, base), custom, connect("ann", "a2", 3, base),
		disconnect("ann", "a1", 4, base), disconnect("ann", "a2", 5, base.Add(time.Minute)),
		connect("bob", "b1", 6, base), disconnect("bob", "b1", 7, base), connect("bob", "b1", 8, base.Add(time.Second)),
		connect("cid", "c1", 9, base), connect("cid", "c2", 10, base), disconnect("cid", "c1", 11, base))

	if dead := deadKeys(t, s, schemas.SessionsTopic, base.Add(ttl-time.Second)); len(dead) != 0 {
		t.Fatalf("dead before the offline TTL: %q", dead)
	}
	// The TTL of a1 and c1 has passed: cid is online, so c1's record
	// says nothing; ann is offline and known (a2 ended a minute later),
	// so a1's lives on, as do her custom status and bob's b1, online.
	got := deadKeys(t, s, schemas.SessionsTopic, base.Add(ttl+time.Second))
	if want := []string{schemas.SessionKey("chat", "cid", "c1")}; !slices.Equal(got, want) {
		t.Fatalf("dead after the TTL of a1 and c1: %q, want %q", got, want)
	}
	// ann's hash expires at a2's end + TTL (Redis's clock: that is in
	// the future here, so expire it by hand as time would).
	if st := status(t, s, "ann"); st == nil {
		t.Fatal("ann forgotten too early")
	}
	later := base.Add(3 * ttl)
	expireUser(t, s, "ann")
	got = deadKeys(t, s, schemas.SessionsTopic, later)
	want := []string{schemas.CustomStatusKey("chat", "ann"), schemas.SessionKey("chat", "ann", "a1"),
		schemas.SessionKey("chat", "ann", "a2"), schemas.SessionKey("chat", "ann", "gone")}
	if !slices.Equal(got, want) {
		t.Fatalf("dead once ann expired: %q, want %q", got, want)
	}
	if dead := deadKeys(t, s, schemas.SessionsTopic, later.Add(2*ttl)); len(dead) != 0 {
		t.Fatalf("dead with bob and cid online: %q", dead)
	}
}

// expireUser deletes a user's hash, as its expiry would.
func expireUser(t *testing.T, s *redisstore.Store, user string) {
	t.Helper()
	// The offline hash expires at its last record's time + TTL: a record
	// far in the past makes it expire now.
	apply(t, s, disconnect(user, "gone", 1<<40, time.Unix(0, 0)))
	if st := status(t, s, user); st != nil {
		t.Fatalf("%s did not expire: %+v", user, st)
	}
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
