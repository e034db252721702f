package state_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/schemas"
)

// sweep forgets the users due at now, then returns the keys dead at now,
// sorted, and marks them buried, as the processor's sweep does.
func sweep(t *testing.T, p *state.Partition, now time.Time) []string {
	t.Helper()
	p.Expire(now, 0)
	dead := p.DeadKeys(now, 0)
	p.Buried()
	if err := p.CheckIndexes(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(dead)
	return dead
}

func sessionKey(user, session string) string { return schemas.SessionKey("chat", user, session) }
func customKey(user string) string           { return schemas.CustomStatusKey("chat", user) }

// A session's record is dead once its user is forgotten, or the offline
// TTL after it ended when its user was online since (then a later record
// says what the user shows); while its user is offline but known and
// its last seen may come from it, it lives. The user's custom status
// dies with the user; a session back online is not dead. (The scenario
// redisstore's schedule was tested with.)
func TestDeadSessionKeys(t *testing.T) {
	const ttl = time.Hour
	c := &clock{t0}
	p := newPartition(c)
	// ann: two devices, both gone; bob: gone, then back on the same
	// session; cid: one device gone, one online.
	p.Apply(conn("ann", "a1", "gw", "e", 1, t0), false)
	p.Apply(setCustom("ann", 1, "away", 2, t0), false)
	p.Apply(conn("ann", "a2", "gw", "e", 3, t0), false)
	p.Apply(disc("ann", "a1", 4, t0), false)
	p.Apply(disc("ann", "a2", 5, t0.Add(time.Minute)), false)
	p.Apply(conn("bob", "b1", "gw", "e", 6, t0), false)
	p.Apply(disc("bob", "b1", 7, t0), false)
	p.Apply(conn("bob", "b1", "gw", "e", 8, t0.Add(time.Second)), false)
	p.Apply(conn("cid", "c1", "gw", "e", 9, t0), false)
	p.Apply(conn("cid", "c2", "gw", "e", 10, t0), false)
	p.Apply(disc("cid", "c1", 11, t0), false)

	c.t = t0.Add(ttl - time.Second)
	if dead := sweep(t, p, c.t); len(dead) != 0 {
		t.Fatalf("dead before the offline TTL: %q", dead)
	}
	// The TTL of a1 and c1 has passed: cid is online, so c1's record
	// says nothing; a1 ended while ann was online, so her last seen
	// comes from a later disconnect (a2's): it says nothing either
	// (Redis's schedule, which could not tell, kept it until ann was
	// forgotten). Her custom status and a2 live on, as does bob's b1,
	// online.
	c.t = t0.Add(ttl + time.Second)
	if got, want := sweep(t, p, c.t), []string{sessionKey("ann", "a1"), sessionKey("cid", "c1")}; !slices.Equal(got, want) {
		t.Fatalf("dead after the TTL of a1 and c1: %q, want %q", got, want)
	}
	// ann is forgotten at a2's end + TTL.
	c.t = t0.Add(ttl + time.Minute)
	want := []string{customKey("ann"), sessionKey("ann", "a2")}
	if got := sweep(t, p, c.t); !slices.Equal(got, want) {
		t.Fatalf("dead once ann is forgotten: %q, want %q", got, want)
	}
	c.t = t0.Add(10 * ttl)
	if dead := sweep(t, p, c.t); len(dead) != 0 {
		t.Fatalf("dead with bob and cid online: %q", dead)
	}
	if n := p.Scheduled(); n != 0 {
		t.Fatalf("%d keys still scheduled, want none", n)
	}
}

// A session that reconnects with the id of one that ended is live again,
// whether it ended while its user was offline or online; the sessions a
// user ended before coming back online with another id are due the TTL
// after the user's last record before.
func TestDeadKeysReconnect(t *testing.T) {
	const ttl = time.Hour
	c := &clock{t0}
	p := newPartition(c)
	// ann, offline, comes back on the same session.
	p.Apply(conn("ann", "s1", "gw", "e", 1, t0), false)
	p.Apply(disc("ann", "s1", 2, t0), false)
	p.Apply(conn("ann", "s1", "gw", "e", 3, t0.Add(time.Minute)), false)
	// bob, online on two devices, loses one and gets it back.
	p.Apply(conn("bob", "b1", "gw", "e", 4, t0), false)
	p.Apply(conn("bob", "b2", "gw", "e", 5, t0), false)
	p.Apply(disc("bob", "b1", 6, t0), false)
	p.Apply(conn("bob", "b1", "gw", "e", 7, t0.Add(time.Minute)), false)
	// cy, offline, comes back on another session: c1 ended at t0.
	p.Apply(conn("cy", "c1", "gw", "e", 8, t0), false)
	p.Apply(disc("cy", "c1", 9, t0), false)
	p.Apply(conn("cy", "c2", "gw", "e", 10, t0.Add(10*time.Minute)), false)

	c.t = t0.Add(ttl - time.Second)
	if dead := sweep(t, p, c.t); len(dead) != 0 {
		t.Fatalf("dead before the offline TTL: %q", dead)
	}
	c.t = t0.Add(ttl)
	if got, want := sweep(t, p, c.t), []string{sessionKey("cy", "c1")}; !slices.Equal(got, want) {
		t.Fatalf("dead at the TTL: %q, want cy's c1 only (ann's s1 and bob's b1 are live)", got)
	}
	// ann leaves again: s1 is hers until she is forgotten.
	p.Apply(disc("ann", "s1", 11, c.t), false)
	if dead := sweep(t, p, c.t.Add(ttl-time.Millisecond)); len(dead) != 0 {
		t.Fatalf("dead before ann is forgotten: %q", dead)
	}
	c.t = c.t.Add(ttl)
	if got, want := sweep(t, p, c.t), []string{sessionKey("ann", "s1")}; !slices.Equal(got, want) {
		t.Fatalf("dead once ann is forgotten: %q, want %q", got, want)
	}
}

// Of an offline user's ended sessions, only the latest disconnect's key
// says something (its last seen): one before it, superseded, is due the
// offline TTL after it ended, though the user is still known.
func TestDeadKeysSuperseded(t *testing.T) {
	const ttl = time.Hour
	c := &clock{t0}
	p := newPartition(c)
	p.Apply(conn("ann", "s1", "gw", "e", 1, t0), false)
	p.Apply(disc("ann", "s1", 2, t0), false)
	// A disconnect of a session ann no longer holds (as a gateway
	// that lost it may write) says her last seen now.
	p.Apply(disc("ann", "s2", 3, t0.Add(10*time.Minute)), false)
	c.t = t0.Add(ttl)
	if got, want := sweep(t, p, c.t), []string{sessionKey("ann", "s1")}; !slices.Equal(got, want) {
		t.Fatalf("dead at s1's TTL: %q, want %q (s2's says ann's last seen)", got, want)
	}
	c.t = t0.Add(ttl + 10*time.Minute)
	if got, want := sweep(t, p, c.t), []string{sessionKey("ann", "s2")}; !slices.Equal(got, want) {
		t.Fatalf("dead once ann is forgotten: %q, want %q", got, want)
	}
}

// A custom status's key lives while its user is known, online or not, and
// dies with the user; a cleared one is a tombstone already.
func TestDeadCustomKeys(t *testing.T) {
	const ttl = time.Hour
	c := &clock{t0}
	p := newPartition(c)
	// ann sets one and never connects; bob sets one, online; cy clears
	// hers before leaving; dee sets one, then clears it, never having
	// connected (forgotten at once).
	p.Apply(setCustom("ann", 1, "away", 1, t0), false)
	p.Apply(conn("bob", "b1", "gw", "e", 2, t0), false)
	p.Apply(setCustom("bob", 1, "busy", 3, t0), false)
	p.Apply(conn("cy", "c1", "gw", "e", 4, t0), false)
	p.Apply(setCustom("cy", 1, "busy", 5, t0), false)
	p.Apply(clearCustom("cy", 6, t0), false)
	p.Apply(disc("cy", "c1", 7, t0), false)
	p.Apply(setCustom("dee", 1, "x", 8, t0), false)
	p.Apply(clearCustom("dee", 9, t0), false)
	if dead := sweep(t, p, c.t); len(dead) != 0 {
		t.Fatalf("dead at once: %q (dee's clear is a tombstone already)", dead)
	}
	c.t = t0.Add(ttl)
	want := []string{customKey("ann"), sessionKey("cy", "c1")}
	if got := sweep(t, p, c.t); !slices.Equal(got, want) {
		t.Fatalf("dead after the TTL: %q, want %q (bob is online)", got, want)
	}
	c.t = t0.Add(100 * ttl)
	if dead := sweep(t, p, c.t); len(dead) != 0 {
		t.Fatalf("dead much later: %q, want none (bob is online)", dead)
	}
}

// A user forgotten when a newer record arrives past its deadline (not by
// Expire) leaves its keys dead, but for the key of that record, which it
// makes live again, and for its custom status's, which dies with the
// user's new life: its tombstone, a clear the processor reads back, would
// change the user now.
func TestDeadKeysLazilyForgotten(t *testing.T) {
	const ttl = time.Hour
	later := t0.Add(2 * ttl)
	cases := []struct {
		name   string
		record func(p *state.Partition)
		want   []string
	}{
		{"back on the same session", func(p *state.Partition) { p.Apply(conn("ann", "s1", "gw", "e", 10, later), false) },
			[]string{sessionKey("ann", "s2")}},
		{"the same session's disconnect again", func(p *state.Partition) { p.Apply(disc("ann", "s1", 10, later), false) },
			[]string{sessionKey("ann", "s2")}},
		{"a custom status again", func(p *state.Partition) { p.Apply(setCustom("ann", 2, "back", 10, later), false) },
			[]string{sessionKey("ann", "s1"), sessionKey("ann", "s2")}},
		{"another session", func(p *state.Partition) { p.Apply(conn("ann", "s3", "gw", "e", 10, later), false) },
			[]string{sessionKey("ann", "s1"), sessionKey("ann", "s2")}},
	}
	for _, tc := range cases {
		c := &clock{t0}
		p := newPartition(c)
		p.Apply(conn("ann", "s1", "gw", "e", 1, t0), false)
		p.Apply(conn("ann", "s2", "gw", "e", 2, t0), false)
		p.Apply(setCustom("ann", 1, "away", 3, t0), false)
		p.Apply(disc("ann", "s1", 4, t0), false)
		p.Apply(disc("ann", "s2", 5, t0), false)
		c.t = later
		tc.record(p) // ann is forgotten, then the record applies
		if got := p.DeadKeys(c.t, 0); !sameSet(got, tc.want) {
			t.Errorf("%s: dead %q, want %q", tc.name, got, tc.want)
		}
		p.Buried()
		// ann's new life ends: its keys die with it, and the custom
		// status's with them.
		p.Apply(disc("ann", "s1", 11, later), false)
		p.Apply(disc("ann", "s3", 12, later), false)
		c.t = later.Add(ttl)
		if got, want := sweep(t, p, c.t), []string{customKey("ann"), sessionKey("ann", "s1"), sessionKey("ann", "s3")}; !slices.Equal(got, want) {
			t.Errorf("%s, once ann is forgotten again: dead %q, want %q", tc.name, got, want)
		}
	}
}

// Keys found dead stay returned until Buried (a tombstone that failed
// is written again), each once, limit at a time, and are checked again:
// one a record made live meanwhile is not returned.
func TestDeadKeysUntilBuried(t *testing.T) {
	const ttl = time.Hour
	c := &clock{t0}
	p := newPartition(c)
	for i, u := range []string{"ann", "bob", "cy"} {
		p.Apply(conn(u, "s1", "gw", "e", int64(2*i), t0), false)
		p.Apply(disc(u, "s1", int64(2*i+1), t0), false)
	}
	c.t = t0.Add(ttl)
	p.Expire(c.t, 0)
	first := p.DeadKeys(c.t, 2)
	if len(first) != 2 {
		t.Fatalf("limit 2: %q", first)
	}
	if again := p.DeadKeys(c.t, 2); !slices.Equal(again, first) {
		t.Fatalf("not buried, again: %q, want %q", again, first)
	}
	// The first comes back on the same session before its tombstone.
	ids := schemas.SplitKey([]byte(first[0]))
	p.Apply(conn(ids[1], "s1", "gw", "e", 10, c.t), false)
	rest := p.DeadKeys(c.t, 0)
	if want := []string{sessionKey("ann", "s1"), sessionKey("bob", "s1"), sessionKey("cy", "s1")}; !sameSet(append(rest, first[0]), want) {
		t.Fatalf("after %s came back: %q", ids[1], rest)
	}
	p.Buried()
	if dead := p.DeadKeys(c.t, 0); len(dead) != 0 {
		t.Fatalf("after Buried: %q", dead)
	}
}

// A rebuild (quiet) tracks dead keys as live records do, and a record
// older than the offline TTL, which forgets its user at once, leaves its
// user's keys dead; a partition that writes no tombstones keeps none.
func TestDeadKeysQuiet(t *testing.T) {
	const ttl = time.Hour
	old := t0.Add(-2 * ttl)
	records := func(p *state.Partition, quiet bool) {
		p.Apply(conn("ann", "s1", "gw", "e", 1, old), quiet)
		p.Apply(setCustom("ann", 1, "away", 2, old), quiet)
		p.Apply(disc("ann", "s1", 3, old), quiet) // forgets ann at once
		p.Apply(conn("bob", "b1", "gw", "e", 4, t0), quiet)
		p.Apply(conn("bob", "b2", "gw", "e", 5, t0), quiet)
		p.Apply(disc("bob", "b1", 6, t0), quiet)
		p.Apply(conn("cy", "c1", "gw", "e", 7, t0), quiet)
		p.Apply(disc("cy", "c1", 8, t0), quiet)
	}
	c := &clock{t0}
	var got [2][]string
	for i, quiet := range []bool{false, true} {
		p := newPartition(c)
		records(p, quiet)
		got[i] = append(sweep(t, p, t0), sweep(t, p, t0.Add(ttl))...)
	}
	want := []string{customKey("ann"), sessionKey("ann", "s1"), sessionKey("bob", "b1"), sessionKey("cy", "c1")}
	if !slices.Equal(got[0], want) || !slices.Equal(got[1], want) {
		t.Fatalf("dead keys live %q, quiet %q, want %q", got[0], got[1], want)
	}
	p := state.New(state.Config{OfflineTTL: ttl, Now: c.now, NoTombstones: true})
	records(p, true)
	if dead := sweep(t, p, t0.Add(ttl)); len(dead) != 0 || p.Scheduled() != 0 {
		t.Fatalf("without tombstones: %q dead, %d scheduled", dead, p.Scheduled())
	}
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// A flood of disconnects of sessions an offline user never held (a
// gateway gone wrong, or hostile) keeps one of them on the user, the
// latest; the others are due the offline TTL after they ended, and then
// all dead.
func TestDeadKeysFlood(t *testing.T) {
	const ttl, n = time.Hour, 1000
	c := &clock{t0}
	p := newPartition(c)
	for i := range n {
		p.Apply(disc("ann", "s"+strconv.Itoa(i), int64(i), t0), false)
	}
	if got := p.Scheduled(); got != n-1 {
		t.Fatalf("%d keys scheduled, want %d", got, n-1)
	}
	c.t = t0.Add(ttl - time.Millisecond)
	if dead := sweep(t, p, c.t); len(dead) != 0 {
		t.Fatalf("%d dead before the TTL", len(dead))
	}
	// At the TTL ann is forgotten too: every key is dead, each once.
	c.t = t0.Add(ttl)
	if dead := sweep(t, p, c.t); len(dead) != n || len(slices.Compact(dead)) != n {
		t.Fatalf("%d dead at the TTL, want %d, each once", len(dead), n)
	}
}
