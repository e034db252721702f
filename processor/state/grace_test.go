package state_test

import (
	"slices"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
)

// Pending offline announcements come out in the order queued once due,
// stay queued until Done, and the oldest can be dropped.
func TestGraceQueue(t *testing.T) {
	c := &clock{t0}
	p := newPartition(c)
	user := func(name string) redisstore.User { return redisstore.User{App: "chat", User: name} }
	p.Delay([]redisstore.User{user("ann"), user("bob")}, t0)
	p.Delay([]redisstore.User{user("cid")}, t0.Add(time.Second))
	p.Delay([]redisstore.User{user("dan")}, t0.Add(time.Minute))
	due := func(at time.Time, limit int, want ...string) {
		t.Helper()
		var got []string
		for _, u := range p.Due(at, limit) {
			got = append(got, u.User)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("due at %v (limit %d): %q, want %q", at.Sub(t0), limit, got, want)
		}
	}
	due(t0.Add(-time.Millisecond), 10)
	due(t0, 10, "ann", "bob")
	due(t0.Add(time.Second), 2, "ann", "bob") // not done: still first
	p.Done(1)
	due(t0.Add(time.Second), 10, "bob", "cid")
	p.Done(2)
	due(t0.Add(time.Hour), 10, "dan")
	p.Delay([]redisstore.User{user("eve")}, t0.Add(2*time.Minute))
	p.DropDueBefore(t0.Add(90 * time.Second))
	if p.Pending() != 1 {
		t.Fatalf("after dropping those due before 90s: %d pending, want 1 (eve)", p.Pending())
	}
	due(t0.Add(time.Hour), 10, "eve")
	p.Done(5)
	if p.Pending() != 0 {
		t.Fatalf("after Done of more than queued: %d pending", p.Pending())
	}
}
