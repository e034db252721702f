package state_test

import (
	"slices"
	"testing"
	"time"

	"github.com/presence-im/presence/processor/state"
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
	due := func(at time.Time, limit int, want ...string) int {
		t.Helper()
		var got []string
		users, n := p.Due(at, limit)
		for _, u := range users {
			got = append(got, u.User)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("due at %v (limit %d): %q, want %q", at.Sub(t0), limit, got, want)
		}
		return n
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
	if _, ok := p.PendingFrom(); ok {
		t.Fatal("after Done of more than queued: some pending")
	}
	if all, _ := p.Pending(); all != 0 {
		t.Fatalf("after Done of more than queued: %d pending", all)
	}

	// Gone, back, gone again within the grace: the grace runs from the
	// latest disconnect, and the user is checked once.
	p.Delay(user("eve"), 30, t0.Add(2*time.Second))
	p.Delay(user("fay"), 31, t0.Add(2*time.Second))
	p.Delay(user("eve"), 32, t0.Add(3*time.Second))
	if n := due(t0.Add(2*time.Second), 10, "fay"); n != 2 {
		t.Fatalf("at 2s the queue's first %d entries are taken, want 2 (eve's first, fay)", n)
	}
	p.Done(2)
	from(32)
	n := due(t0.Add(3*time.Second), 10, "eve")
	p.Done(n)
	p.Delay(user("gil"), 40, t0.Add(4*time.Second))
	p.Delay(user("gil"), 41, t0.Add(4*time.Second)) // the same time twice
	due(t0.Add(4*time.Second), 10, "gil")
	// The limit falls between gil's two entries: both are taken.
	if n := due(t0.Add(4*time.Second), 1, "gil"); n != 2 {
		t.Fatalf("gil's entries taken: %d, want 2", n)
	}
	p.Done(2)

	// An announcement an older release left pending (no record) does not
	// hold the watermark back, and is counted apart.
	p.Delay(user("old"), state.NoRecord, t0)
	p.Delay(user("hal"), 90, t0.Add(5*time.Second))
	from(90)
	if all, old := p.Pending(); all != 2 || old != 1 {
		t.Fatalf("pending %d, of no record %d; want 2, 1", all, old)
	}
	n = due(t0.Add(time.Hour), 10, "old", "hal")
	p.Done(n)
	if all, old := p.Pending(); all != 0 || old != 0 {
		t.Fatalf("pending %d, of no record %d after Done; want none", all, old)
	}
}
