package state_test

import (
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
)

// An offline user is forgotten the offline TTL after the latest record
// applied to it: when next looked up past then, or by Expire; a user
// online is never; a later record moves the deadline.
func TestExpiry(t *testing.T) {
	c := &clock{t0}
	p := newPartition(c)
	p.Apply(conn("ann", "s1", "gw-a", "e1", 1, t0), false)
	p.Apply(disc("ann", "s1", 2, t0), false)                          // ann: due at t0+1h
	p.Apply(setCustom("bob", 1, "hi", 3, t0), false)                  // bob: due at t0+1h
	p.Apply(setCustom("bob", 1, "hi", 4, t0.Add(time.Minute)), false) // bob: moved to t0+1h1m
	p.Apply(conn("cy", "s1", "gw-a", "e1", 5, t0), false)             // cy: online
	p.Apply(setCustom("dee", 1, "hi", 6, t0.Add(time.Hour)), false)   // dee: due at t0+2h
	p.TakeDirty()
	steps := []struct {
		name      string
		at        time.Time
		forgotten int
	}{
		{"before any deadline", t0.Add(time.Hour - time.Millisecond), 0},
		{"at ann's deadline, not bob's moved one", t0.Add(time.Hour), 1},
		{"at bob's moved deadline", t0.Add(time.Hour + time.Minute), 1},
	}
	for _, step := range steps {
		c.t = step.at
		if n := p.Expire(c.t, 0); n != step.forgotten {
			t.Fatalf("%s: %d forgotten, want %d", step.name, n, step.forgotten)
		}
	}
	if p.Len() != 2 {
		t.Fatalf("%d users known, want cy and dee", p.Len())
	}
	if o := p.Check(redisstore.User{App: "chat", User: "ann"}); o.Visible != "-1:\x1d" {
		t.Fatalf("ann after expiry: %+v, want unknown", o)
	}
	// Looked up past its deadline, dee is forgotten before Expire
	// reaches it: an older record then applies, as to a new key.
	c.t = t0.Add(2 * time.Hour)
	if o := p.Apply(setCustom("dee", 2, "old", 1, t0.Add(90*time.Minute)), false); !o.Applied {
		t.Fatalf("an old record after dee expired: %+v, want applied", o)
	}
	c.t = t0.Add(100 * time.Hour)
	if n := p.Expire(c.t, 0); n != 1 || p.Len() != 1 {
		t.Fatalf("much later: %d forgotten, %d known, want dee only (cy is online)", n, p.Len())
	}
	if imgs := p.TakeDirty(); len(imgs) != 1 || imgs[0].User.User != "dee" || !imgs[0].Gone {
		t.Fatalf("images after dee was forgotten: %+v, want dee gone", imgs)
	}
	if err := p.CheckIndexes(); err != nil {
		t.Fatal(err)
	}
}

// Expire forgets at most limit users a call.
func TestExpireLimit(t *testing.T) {
	c := &clock{t0}
	p := newPartition(c)
	for i, u := range []string{"a", "b", "c", "d", "e"} {
		p.Apply(disc(u, "s1", int64(i), t0), false)
	}
	c.t = t0.Add(2 * time.Hour)
	if n := p.Expire(c.t, 2); n != 2 || p.Len() != 3 {
		t.Fatalf("first call: %d forgotten, %d known", n, p.Len())
	}
	if n := p.Expire(c.t, 0); n != 3 || p.Len() != 0 {
		t.Fatalf("second call: %d forgotten, %d known", n, p.Len())
	}
}

// The sessions of a gateway, of every epoch, are found from memory, and
// follow reconnects and disconnects.
func TestSessionsOf(t *testing.T) {
	p := newPartition(&clock{t0})
	p.Apply(conn("ann", "s1", "gw-a", "e1", 1, t0), false)
	p.Apply(conn("ann", "s2", "gw-a", "e2", 2, t0), false)
	p.Apply(conn("bob", "s1", "gw-b", "e1", 3, t0), false)
	p.Apply(redisstore.Change{Op: redisstore.Connect, App: "game", User: "ann", Session: "s1", Device: "web", Gateway: "gw-a", Epoch: "e1", At: t0, Version: 4}, false)
	got := p.SessionsOf("gw-a")
	want := []string{"chat/ann/s1@e1", "chat/ann/s2@e2", "game/ann/s1@e1"}
	if len(got) != len(want) {
		t.Fatalf("sessions of gw-a: %+v", got)
	}
	for i, s := range got {
		if id := s.App + "/" + s.User + "/" + s.Session.Session + "@" + s.Epoch; id != want[i] {
			t.Fatalf("session %d of gw-a: %s, want %s", i, id, want[i])
		}
	}
	// ann's s1 moves to gw-b; ann stays on gw-a with s2.
	p.Apply(conn("ann", "s1", "gw-b", "e1", 5, t0), false)
	p.Apply(disc("game-less", "s1", 6, t0), false)
	if got := p.SessionsOf("gw-a"); len(got) != 2 {
		t.Fatalf("sessions of gw-a after s1 moved: %+v", got)
	}
	if got := p.SessionsOf("gw-b"); len(got) != 2 {
		t.Fatalf("sessions of gw-b after s1 moved: %+v", got)
	}
	p.Apply(disc("ann", "s2", 7, t0), false)
	p.Apply(redisstore.Change{Op: redisstore.Disconnect, App: "game", User: "ann", Session: "s1", At: t0, Version: 8}, false)
	if gws := p.Gateways(); len(gws) != 1 || gws[0] != "gw-b" {
		t.Fatalf("gateways after gw-a lost its sessions: %v", gws)
	}
	if err := p.CheckIndexes(); err != nil {
		t.Fatal(err)
	}
}
