package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
)

// The cap counts reserved and applied subscriptions once each, live ones
// only; a renewal adds nothing; a refused request writes nothing; a
// released reservation no longer counts.
func TestReserveSubscriptions(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, time.Hour)
	now := base
	later := now.Add(time.Hour)
	reserve := func(limit int, users ...string) redisstore.Reservation {
		t.Helper()
		res, err := s.ReserveSubscriptions(ctx, "chat", "ann", users, limit, later, now)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// bob is applied already, and carl was, but has expired.
	err := s.ApplySubscriptions(ctx, redisstore.Owner{}, []redisstore.SubscriptionChange{
		{App: "chat", User: "bob", Subscriber: "ann", ExpiresAt: later},
		{App: "chat", User: "carl", Subscriber: "ann", ExpiresAt: now.Add(time.Second)},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second) // carl's has expired

	for _, c := range []struct {
		name  string
		limit int
		users []string
		want  redisstore.Reservation
	}{
		{"renew the applied one", 1, []string{"bob"}, redisstore.Reservation{Live: 1, Added: 0, Admitted: true}},
		{"one new at the cap", 1, []string{"bob", "cid"}, redisstore.Reservation{Live: 1, Added: 1, Admitted: false}},
		{"an expired one counts as new", 2, []string{"carl", "cid"}, redisstore.Reservation{Live: 1, Added: 2, Admitted: false}},
		{"two new within the cap", 3, []string{"carl", "cid"}, redisstore.Reservation{Live: 1, Added: 2, Admitted: true}},
		{"reserved ones count once", 3, []string{"bob", "carl", "cid"}, redisstore.Reservation{Live: 3, Added: 0, Admitted: true}},
		{"a fourth is over", 3, []string{"dan"}, redisstore.Reservation{Live: 3, Added: 1, Admitted: false}},
	} {
		if got := reserve(c.limit, c.users...); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if err := s.ReleaseSubscriptions(ctx, "chat", "ann", []string{"cid"}); err != nil {
		t.Fatal(err)
	}
	if got, want := reserve(3, "dan"), (redisstore.Reservation{Live: 2, Added: 1, Admitted: true}); got != want {
		t.Errorf("after releasing cid: %+v, want %+v", got, want)
	}
	// Past every expiry, nothing counts.
	now = later
	if got, want := reserve(1, "eve"), (redisstore.Reservation{Live: 0, Added: 1, Admitted: true}); got != want {
		t.Errorf("after the expiry: %+v, want %+v", got, want)
	}
}
