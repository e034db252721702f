package state_test

import (
	"slices"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
)

// Pending offline announcements come out in the order queued once due,
// stay queued until Done, and say from which record they are pending.
func TestGraceQueue(t *testing.T) {
	c := &clock{t0}
	p := newPartition(c)
	user := func(name string) redisstore.User { return redisstore.User{App: "chat", User: name} }
	if _, ok := p.PendingFrom(); ok {
		t.Fatal("an empty queue says some are pending")
	}
	p.Delay(user("ann"), 10, t0)
	p.Delay(user("bob"), 11, t0)
	p.Delay(user("cid"), 15, t0.Add(time.Second))
	p.Delay(user("dan"), 20, t0.Add(time.Minute))
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
	from := func(want int64) {
		t.Helper()
		if got, ok := p.PendingFrom(); !ok || got != want {
			t.Fatalf("pending from %d (%v), want %d", got, ok, want)
		}
	}
	due(t0.Add(-time.Millisecond), 10)
	due(t0, 10, "ann", "bob")
	due(t0.Add(time.Second), 2, "ann", "bob") // not done: still first
	from(10)
	p.Done(1)
	from(11)
	due(t0.Add(time.Second), 10, "bob", "cid")
	p.Done(2)
	from(20)
	due(t0.Add(time.Hour), 10, "dan")
	p.Done(5)
	if _, ok := p.PendingFrom(); ok || p.Pending() != 0 {
		t.Fatalf("after Done of more than queued: %d pending", p.Pending())
	}
}
