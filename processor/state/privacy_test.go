package state_test

import (
	"slices"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

func setPrivacy(user string, invisible bool, rule string, version int64, at time.Time) redisstore.Change {
	return redisstore.Change{Op: redisstore.SetPrivacy, App: "chat", User: user,
		Privacy: redisstore.Privacy{Invisible: invisible, LastSeen: rule}, At: at, Version: version}
}

func clearPrivacy(user string, version int64, at time.Time) redisstore.Change {
	return redisstore.Change{Op: redisstore.ClearPrivacy, App: "chat", User: user, At: at, Version: version}
}

// What each change of an invisible user announces, and to whom: going
// invisible online is news for everyone (offline, at once), its sessions'
// comings and goings are news for its own sessions only, and ending it
// online is news for everyone again.
func TestPrivacyAnnouncements(t *testing.T) {
	c := &clock{t: t0}
	p := newPartition(c)
	ann := redisstore.User{App: "chat", User: "ann"}
	apply := func(ch redisstore.Change) redisstore.Outcome {
		t.Helper()
		o := p.Apply(ch, false)
		if o.Announce == redisstore.Now {
			p.MarkAnnounced(ann, o.Visible)
		}
		return o
	}
	steps := []struct {
		name     string
		change   redisstore.Change
		announce redisstore.Announce
		selfOnly bool
		state    string // the truth
	}{
		{"connect", conn("ann", "s1", "gw", "e", 1, t0), redisstore.Now, false, redisstore.Online},
		{"go invisible", setPrivacy("ann", true, "everyone", 2, t0.Add(time.Second)), redisstore.Now, false, redisstore.Online},
		{"another device", conn("ann", "s2", "gw", "e", 3, t0.Add(2*time.Second)), redisstore.Now, true, redisstore.Online},
		{"a device leaves", disc("ann", "s2", 4, t0.Add(3*time.Second)), redisstore.Now, true, redisstore.Online},
		{"last seen rule", setPrivacy("ann", true, "nobody", 5, t0.Add(4*time.Second)), redisstore.Nothing, false, redisstore.Online},
		{"visible again", clearPrivacy("ann", 6, t0.Add(5*time.Second)), redisstore.Now, false, redisstore.Online},
	}
	for _, s := range steps {
		o := apply(s.change)
		if !o.Applied || o.Announce != s.announce || o.Announce != redisstore.Nothing && o.SelfOnly != s.selfOnly {
			t.Fatalf("%s: applied %v, announce %v, self only %v; want announce %v, self only %v",
				s.name, o.Applied, o.Announce, o.SelfOnly, s.announce, s.selfOnly)
		}
		st, err := p.Status(ann)
		if err != nil || st.State != s.state {
			t.Fatalf("%s: status %+v, %v; want %s (the truth)", s.name, st, err, s.state)
		}
	}
	st, _ := p.Status(ann)
	if st.Privacy != nil {
		t.Errorf("privacy after its tombstone: %+v", st.Privacy)
	}

	// Invisible while offline: its audience saw offline already, so the
	// change is for its own sessions (none).
	apply(disc("ann", "s1", 7, t0.Add(6*time.Second)))
	p.MarkAnnounced(ann, p.Check(ann).Visible)
	if o := apply(setPrivacy("ann", true, "friends", 8, t0.Add(7*time.Second))); o.Announce == redisstore.Nothing || !o.SelfOnly {
		t.Errorf("going invisible offline: %+v, want an announcement for its own sessions only", o)
	}
	st, _ = p.Status(ann)
	if st.Privacy == nil || !st.Privacy.Invisible || st.Privacy.LastSeen != "friends" ||
		st.Privacy.HiddenSince != t0.Add(6*time.Second).UnixMilli() {
		t.Errorf("privacy %+v, want invisible, friends, hidden since its last seen", st.Privacy)
	}
}

// Going invisible online hides the user from then on; its hash holds the
// truth and the setting, which a Load restores; the privacy key dies
// with the user.
func TestPrivacyImageLoadAndDeath(t *testing.T) {
	c := &clock{t: t0}
	p := newPartition(c)
	ann := redisstore.User{App: "chat", User: "ann"}
	hid := t0.Add(time.Second)
	p.Apply(conn("ann", "s1", "gw", "e", 1, t0), false)
	p.Apply(setPrivacy("ann", true, "friends", 2, hid), false)
	img, ok := image(p, "ann")
	if !ok {
		t.Fatal("not dirty")
	}
	fields := map[string]string{}
	for i := 0; i < len(img.Fields); i += 2 {
		fields[img.Fields[i]] = img.Fields[i+1]
	}
	if want := "1:friends:" + ms(hid) + ":2"; fields["p"] != want { // hidden since, and at version 2
		t.Fatalf("field p = %q, want %q (image %q)", fields["p"], want, img.Fields)
	}

	q := newPartition(c)
	if err := q.Load("chat", "ann", fields, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, _ := q.Status(ann)
	want, _ := p.Status(ann)
	if got.Privacy == nil || *got.Privacy != *want.Privacy || got.State != redisstore.Online {
		t.Errorf("loaded %+v (privacy %+v), want %+v", got, got.Privacy, want.Privacy)
	}
	if err := q.Load("chat", "bob", map[string]string{"v": "1", "p": "2:x:0", "l": "1"}, t0.Add(time.Hour)); err == nil {
		t.Errorf("a malformed privacy loaded")
	}

	// Offline, then forgotten: the keys of its session and its privacy
	// are dead.
	p.Apply(disc("ann", "s1", 3, t0.Add(2*time.Second)), false)
	c.t = t0.Add(2 * time.Hour)
	p.Expire(c.t, 0)
	keys := p.DeadKeys(c.t, 0)
	if !slices.Contains(keys, schemas.PrivacyKey("chat", "ann")) || !slices.Contains(keys, schemas.SessionKey("chat", "ann", "s1")) {
		t.Errorf("dead keys %q, want the privacy's and the session's", keys)
	}
	if st, _ := p.Status(ann); st != nil {
		t.Errorf("forgotten user still shows %+v", st)
	}
	if err := p.CheckIndexes(); err != nil {
		t.Error(err)
	}
}

// A privacy restored to the default for a user who has nothing else to
// show forgets the user, as a custom status cleared does; one who set a
// privacy and a custom status keeps the one when the other is cleared.
func TestPrivacyAloneForgotten(t *testing.T) {
	c := &clock{t: t0}
	p := newPartition(c)
	ann := redisstore.User{App: "chat", User: "ann"}
	p.Apply(setPrivacy("ann", false, "nobody", 1, t0), false)
	p.Apply(setCustom("ann", 1, "busy", 2, t0), false)
	p.Apply(clearCustom("ann", 3, t0), false)
	if st, _ := p.Status(ann); st == nil || st.Privacy == nil {
		t.Fatalf("clearing the custom status forgot a user with a privacy: %+v", st)
	}
	p.Apply(clearPrivacy("ann", 4, t0), false)
	if st, _ := p.Status(ann); st != nil {
		t.Errorf("a user with nothing to show is remembered: %+v", st)
	}
}

// An invisible user's last session ending waits for the grace period as
// any offline does, and is then news for its own sessions only: its
// audience saw it offline since it hid.
func TestPrivacyGrace(t *testing.T) {
	c := &clock{t: t0}
	p := newPartition(c)
	ann := redisstore.User{App: "chat", User: "ann"}
	for _, ch := range []redisstore.Change{
		conn("ann", "s1", "gw", "e", 1, t0),
		setPrivacy("ann", true, "everyone", 2, t0),
	} {
		if o := p.Apply(ch, false); o.Announce == redisstore.Now {
			p.MarkAnnounced(ann, o.Visible)
		}
	}
	if o := p.Apply(disc("ann", "s1", 3, t0.Add(time.Second)), false); o.Announce != redisstore.AfterGrace {
		t.Fatalf("the last session of an invisible user ends: %+v, want AfterGrace", o)
	}
	if o := p.Check(ann); o.Announce != redisstore.Now || !o.SelfOnly {
		t.Errorf("after the grace period: %+v, want news for its own sessions only", o)
	}
	// Were it visible, its audience would be told.
	q := newPartition(c)
	q.Apply(conn("ann", "s1", "gw", "e", 1, t0), false)
	q.MarkAnnounced(ann, q.Check(ann).Visible)
	q.Apply(disc("ann", "s1", 2, t0.Add(time.Second)), false)
	if o := q.Check(ann); o.Announce != redisstore.Now || o.SelfOnly {
		t.Errorf("a visible user offline after the grace period: %+v, want news for all", o)
	}
}
