package redisstore_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

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

// The index of a gateway's sessions follows connects and disconnects.
func TestGatewayIndex(t *testing.T) {
	s := newStore(t, time.Hour)
	ctx := context.Background()
	c1 := connect("ann", "a1", 1, base)
	c1.Epoch = "e1"
	c2 := connect("bob", "b1", 2, base)
	c2.Epoch = "e1"
	d2 := disconnect("bob", "b1", 3, base)
	d2.Gateway = "gw-1"
	apply(t, s, c1, c2, d2)
	gws, err := s.Gateways(ctx)
	if err != nil || !slices.Equal(gws, []string{"gw-1"}) {
		t.Fatalf("gateways: %v, %v", gws, err)
	}
	sessions, err := s.GatewaySessions(ctx, "gw-1")
	if err != nil || len(sessions) != 1 {
		t.Fatalf("sessions of gw-1: %+v, %v; want only ann's a1", sessions, err)
	}
	if got := sessions[0]; got.App != "chat" || got.User != "ann" || got.Session != "a1" || got.Epoch != "e1" || !got.ConnectedAt.Equal(base) {
		t.Fatalf("session of gw-1: %+v; want ann's a1 of epoch e1, connected at %v", got, base)
	}
	if err := s.Unindex(ctx, "gw-1", sessions, true); err != nil {
		t.Fatal(err)
	}
	if gws, _ := s.Gateways(ctx); len(gws) != 0 {
		t.Fatalf("gateways after unindexing the last session: %v", gws)
	}
}

// Sessions indexed by a release before the index had buckets (one hash
// per gateway) are still found, and removed, after an upgrade.
func TestGatewayIndexBeforeBuckets(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t)
	s := redisstore.New(rdb, redisstore.Options{Prefix: prefix, OfflineTTL: time.Hour})
	if err := rdb.HSet(ctx, prefix+":gw:{gw-old}", "chat/ann/a1", "e1\x1f"+strconv.FormatInt(base.UnixMilli(), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	sessions, err := s.GatewaySessions(ctx, "gw-old")
	if err != nil || len(sessions) != 1 || sessions[0].User != "ann" || sessions[0].Epoch != "e1" || !sessions[0].ConnectedAt.Equal(base) {
		t.Fatalf("sessions of the old index: %+v, %v; want ann's a1 of epoch e1", sessions, err)
	}
	if err := s.Unindex(ctx, "gw-old", sessions, true); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, prefix+":gw:{gw-old}").Val(); n != 0 {
		t.Fatalf("old index left after unindexing its last session")
	}
}

// A gateway in the one set of gateways releases before wrote is still
// listed, and forgotten once gone; gateways are spread over sets of
// their own (on a cluster, over its masters).
func TestGatewaySetBeforeSpread(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t)
	s := redisstore.New(rdb, redisstore.Options{Prefix: prefix, OfflineTTL: time.Hour})
	if err := rdb.SAdd(ctx, prefix+":gateways", "gw-old").Err(); err != nil {
		t.Fatal(err)
	}
	var changes []redisstore.Change
	for i := range 20 {
		c := connect(fmt.Sprintf("u%d", i), "s", int64(i+1), base)
		c.Gateway = fmt.Sprintf("gw-%d", i)
		changes = append(changes, c)
	}
	apply(t, s, changes...)
	gws, err := s.Gateways(ctx)
	if err != nil || len(gws) != 21 || !slices.Contains(gws, "gw-old") {
		t.Fatalf("gateways: %v, %v; want gw-old and 20 more", gws, err)
	}
	if sets := rdb.Keys(ctx, prefix+":gateways:*").Val(); len(sets) < 2 {
		t.Errorf("20 gateways are in %d sets, want them spread", len(sets))
	}
	if err := s.Unindex(ctx, "gw-old", nil, true); err != nil {
		t.Fatal(err)
	}
	if gws, _ := s.Gateways(ctx); len(gws) != 20 || slices.Contains(gws, "gw-old") {
		t.Fatalf("gateways once gw-old is gone: %v", gws)
	}
}
