package state_test

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
)

// clock is a settable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.UnixMilli(1_800_000_000_000).UTC()

func newPartition(c *clock) *state.Partition {
	return state.New(state.Config{OfflineTTL: time.Hour, Now: c.now})
}

func conn(user, session, gw, epoch string, version int64, at time.Time) redisstore.Change {
	return redisstore.Change{Op: redisstore.Connect, App: "chat", User: user, Session: session, Device: "ios",
		DeviceID: "dev-" + session, Gateway: gw, Epoch: epoch, At: at, Version: version}
}

func disc(user, session string, version int64, at time.Time) redisstore.Change {
	return redisstore.Change{Op: redisstore.Disconnect, App: "chat", User: user, Session: session, At: at, Version: version}
}

func lost(user, session, gw, epoch string, version int64, at time.Time) redisstore.Change {
	c := disc(user, session, version, at)
	c.Gateway, c.Epoch, c.OnlyHere = gw, epoch, true
	return c
}

func setCustom(user string, status int, text string, version int64, at time.Time) redisstore.Change {
	return redisstore.Change{Op: redisstore.SetCustom, App: "chat", User: user, Custom: redisstore.Custom{Status: status, Text: text}, At: at, Version: version}
}

func clearCustom(user string, version int64, at time.Time) redisstore.Change {
	return redisstore.Change{Op: redisstore.ClearCustom, App: "chat", User: user, At: at, Version: version}
}

// image returns the user's image after flushing the partition, and
// whether it was dirty.
func image(p *state.Partition, user string) (state.Image, bool) {
	for _, img := range p.TakeDirty() {
		if img.User.User == user {
			return img, true
		}
	}
	return state.Image{}, false
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// Each rule of apply.lua, one record after another, with the image of the
// user's hash it leaves.
func TestRules(t *testing.T) {
	at := t0.Add(-time.Minute)
	sess := func(session, gw, epoch string, at time.Time) string {
		return "ios\x1fdev-" + session + "\x1f" + gw + "\x1f" + ms(at) + "\x1f" + epoch
	}
	steps := []struct {
		name    string
		change  redisstore.Change
		applied bool
		// fields is the image after the change; nil: not written.
		fields   []string
		gone     bool
		expireAt time.Time
		kept     bool
	}{
		{"connect", conn("ann", "s1", "gw-a", "e1", 10, at), true,
			[]string{"v", "10", "ss1", sess("s1", "gw-a", "e1", at)}, false, time.Time{}, false},
		{"duplicate", conn("ann", "s1", "gw-b", "e1", 10, at), false, nil, false, time.Time{}, false},
		{"older record", disc("ann", "s1", 9, at), false, nil, false, time.Time{}, false},
		{"reconnect elsewhere", conn("ann", "s1", "gw-b", "e1", 11, at.Add(time.Second)), true,
			[]string{"v", "11", "ss1", sess("s1", "gw-b", "e1", at.Add(time.Second))}, false, time.Time{}, false},
		{"gateway_lost of the old gateway keeps it", lost("ann", "s1", "gw-a", "e1", 12, at), false, nil, false, time.Time{}, true},
		{"gateway_lost of an old epoch keeps it", lost("ann", "s1", "gw-b", "e0", 13, at), false, nil, false, time.Time{}, true},
		{"custom status", setCustom("ann", 2, "busy", 14, at), true,
			[]string{"v", "14", "ss1", sess("s1", "gw-b", "e1", at.Add(time.Second)), "c", "2\x1fbusy"}, false, time.Time{}, false},
		{"gateway_lost of the holder ends it", lost("ann", "s1", "gw-b", "e1", 15, at.Add(2*time.Second)), true,
			[]string{"v", "15", "c", "2\x1fbusy", "l", ms(at.Add(2 * time.Second))}, false, at.Add(2*time.Second + time.Hour), false},
		{"gateway_lost of no session applies", lost("ann", "s9", "gw-b", "e1", 16, at.Add(3*time.Second)), true,
			[]string{"v", "16", "c", "2\x1fbusy", "l", ms(at.Add(3 * time.Second))}, false, at.Add(3*time.Second + time.Hour), false},
		{"clearing a status keeps a user who was seen", clearCustom("ann", 17, at.Add(4*time.Second)), true,
			[]string{"v", "17", "l", ms(at.Add(3 * time.Second))}, false, at.Add(4*time.Second + time.Hour), false},
		{"connect again persists", conn("ann", "s2", "gw-a", "e1", 18, at.Add(5*time.Second)), true,
			[]string{"v", "18", "ss2", sess("s2", "gw-a", "e1", at.Add(5*time.Second))}, false, time.Time{}, false},
		{"status of one never connected", setCustom("bob", 1, "hi", 19, at), true,
			[]string{"v", "19", "c", "1\x1fhi"}, false, at.Add(time.Hour), false},
		{"cleared: nothing left of one never connected", clearCustom("bob", 20, at), true, nil, true, time.Time{}, false},
		{"forgotten: an older record applies again", setCustom("bob", 3, "back", 5, at), true,
			[]string{"v", "5", "c", "3\x1fback"}, false, at.Add(time.Hour), false},
		{"a disconnect older than the TTL forgets at once", disc("cy", "s1", 21, t0.Add(-2*time.Hour)), true, nil, true, time.Time{}, false},
	}
	c := &clock{t0}
	p := newPartition(c)
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			o := p.Apply(step.change, false)
			if o.Applied != step.applied || (o.Kept != nil) != step.kept {
				t.Fatalf("outcome %+v, want applied %v, kept %v", o, step.applied, step.kept)
			}
			img, dirty := image(p, step.change.User)
			if dirty != (step.fields != nil || step.gone) {
				t.Fatalf("dirty %v, want %v", dirty, step.fields != nil || step.gone)
			}
			if !dirty {
				return
			}
			want := state.Image{User: redisstore.User{App: "chat", User: step.change.User}, Gone: step.gone, Fields: step.fields, ExpireAt: step.expireAt}
			img.Whole, img.Removed = false, nil // TestDelta
			if !reflect.DeepEqual(img, want) {
				t.Fatalf("image %+v, want %+v", img, want)
			}
			if err := p.CheckIndexes(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// What the audience must be told follows the visible state (devices and
// custom status), not session ids or versions; going offline waits for
// the grace period, and the check after it announces what is still
// true.
func TestAnnounce(t *testing.T) {
	c := &clock{t0}
	p := newPartition(c)
	ann := redisstore.User{App: "chat", User: "ann"}
	web := conn("ann", "s2", "gw-a", "e1", 2, t0)
	web.Device = "web"
	again := conn("ann", "s3", "gw-a", "e1", 7, t0)
	again.DeviceID = "dev-s1"
	steps := []struct {
		name   string
		change redisstore.Change
		want   redisstore.Announce
		mark   bool
	}{
		{"first connect", conn("ann", "s1", "gw-a", "e1", 1, t0), redisstore.Now, true},
		{"second device", web, redisstore.Now, true},
		{"custom status", setCustom("ann", 2, "busy", 3, t0), redisstore.Now, true},
		{"same custom status again", setCustom("ann", 2, "busy", 4, t0), redisstore.Nothing, false},
		{"second device leaves", disc("ann", "s2", 5, t0), redisstore.Now, false},
		{"last device leaves, the previous change not yet told", disc("ann", "s1", 6, t0), redisstore.AfterGrace, false},
		{"the same device back within the grace period", again, redisstore.Now, false},
		// Not yet told: a record read again (after a crash) says so.
		{"a duplicate", again, redisstore.Now, false},
	}
	for _, step := range steps {
		o := p.Apply(step.change, false)
		if o.Announce != step.want {
			t.Fatalf("%s: %+v, want announce %d", step.name, o, step.want)
		}
		if step.mark {
			p.MarkAnnounced(ann, o.Visible)
		}
	}
	// Told the state with ios and the custom status: ios is back, so
	// telling it now is still due (web left); once told, nothing is.
	o := p.Check(ann)
	if o.Announce != redisstore.Now || o.Visible != "7:ios\x1fdev-s1\x1d2\x1fbusy" {
		t.Fatalf("check: %+v, want the state with ios and the status to announce", o)
	}
	p.MarkAnnounced(ann, o.Visible)
	if o := p.Check(ann); o.Announce != redisstore.Nothing {
		t.Fatalf("check after marking: %+v", o)
	}
	// Gone for good: after the grace period the check says announce.
	if o := p.Apply(disc("ann", "s3", 8, t0), false); o.Announce != redisstore.AfterGrace {
		t.Fatalf("going offline: %+v", o)
	}
	if o := p.Check(ann); o.Announce != redisstore.Now || o.Visible != "8:\x1d2\x1fbusy" {
		t.Fatalf("check after going offline: %+v", o)
	}
	// A user Presence does not know shows offline, which nobody needs
	// to be told.
	if o := p.Check(redisstore.User{App: "chat", User: "nobody"}); o.Announce != redisstore.Nothing || o.Visible != "-1:\x1d" {
		t.Fatalf("check of an unknown user: %+v", o)
	}
}

// A rebuild's history counts as announced: nothing to tell after it, and
// a live change after it is told against it.
func TestQuiet(t *testing.T) {
	p := newPartition(&clock{t0})
	ann := redisstore.User{App: "chat", User: "ann"}
	for _, c := range []redisstore.Change{conn("ann", "s1", "gw-a", "e1", 1, t0), setCustom("ann", 1, "hi", 2, t0)} {
		if o := p.Apply(c, true); !o.Applied || o.Announce != redisstore.Nothing || o.Visible != "" {
			t.Fatalf("quiet apply: %+v, want applied and nothing else", o)
		}
	}
	if o := p.Check(ann); o.Announce != redisstore.Nothing {
		t.Fatalf("check after a rebuild: %+v", o)
	}
	if o := p.Apply(disc("ann", "s1", 3, t0), false); o.Announce != redisstore.AfterGrace {
		t.Fatalf("live disconnect after a rebuild: %+v", o)
	}
}

// A gateway_lost disconnect that finds its session held by another
// gateway or epoch keeps it and says what it holds, so that its connect
// can be written again; one that finds it held there ends it.
func TestKept(t *testing.T) {
	p := newPartition(&clock{t0})
	o := p.Apply(conn("ann", "s1", "gw-b", "e2", 1, t0), false)
	p.MarkAnnounced(redisstore.User{App: "chat", User: "ann"}, o.Visible)
	o = p.Apply(lost("ann", "s1", "gw-b", "e1", 2, t0), false)
	want := redisstore.Session{Session: "s1", Device: "ios", DeviceID: "dev-s1", Gateway: "gw-b",
		ConnectedAt: redisstore.Time{Time: t0}, Epoch: "e2", Activity: "active"}
	if o.Applied || o.Kept == nil || *o.Kept != want || o.Announce != redisstore.Nothing {
		t.Fatalf("gateway_lost of another epoch: %+v, want kept %+v", o, want)
	}
	if got := p.SessionsOf("gw-b"); len(got) != 1 {
		t.Fatalf("sessions of gw-b after a kept disconnect: %+v", got)
	}
	o = p.Apply(lost("ann", "s1", "gw-b", "e2", 3, t0), false)
	if !o.Applied || o.Kept != nil || o.Announce != redisstore.AfterGrace {
		t.Fatalf("gateway_lost of the holder: %+v", o)
	}
	if got := p.SessionsOf("gw-b"); len(got) != 0 {
		t.Fatalf("sessions of gw-b after it lost them: %+v", got)
	}
}

// An image replaces the hash whole unless its user was online (its key
// without expiry) when first changed since the last flush: then it says
// which fields went, but for those set again since.
func TestDelta(t *testing.T) {
	c := &clock{t0}
	p := newPartition(c)
	check := func(user string, whole bool, removed ...string) {
		t.Helper()
		img, dirty := image(p, user)
		if !dirty || img.Whole != whole || !reflect.DeepEqual(img.Removed, removed) {
			t.Fatalf("image of %s: dirty %v, whole %v, removed %q; want whole %v, removed %q", user, dirty, img.Whole, img.Removed, whole, removed)
		}
	}
	p.Apply(conn("ann", "s1", "gw", "e1", 1, t0), false)
	p.Apply(conn("ann", "s2", "gw", "e1", 2, t0), false)
	check("ann", true) // new
	p.Apply(disc("ann", "s1", 3, t0), false)
	p.Apply(setCustom("ann", 1, "hi", 4, t0), false)
	check("ann", false, "ss1")
	p.Apply(disc("ann", "s2", 5, t0), false)
	p.Apply(conn("ann", "s2", "gw", "e1", 6, t0), false)
	p.Apply(clearCustom("ann", 7, t0), false)
	check("ann", false, "c") // s2 is back
	p.Apply(disc("ann", "s2", 8, t0), false)
	check("ann", false, "ss2") // gone offline: its expiry set with it
	p.Apply(conn("ann", "s3", "gw", "e1", 9, t0), false)
	check("ann", true) // was offline: Redis may have let it expire
	// A partition taken, until caught up: Redis may hold users newer
	// than memory (written by the former owner after its checkpoint).
	p.SetReplace(true)
	p.Apply(conn("ann", "s4", "gw", "e1", 10, t0), false)
	check("ann", true)
	p.SetReplace(false)
	p.Apply(disc("ann", "s4", 11, t0), false)
	check("ann", false, "ss4")
}
