package state_test

import (
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas/status"
)

// report is the activity record of a session connected by conn.
func report(user, session, gw, epoch string, a status.Activity, version int64, at time.Time) redisstore.Change {
	c := conn(user, session, gw, epoch, version, at)
	c.Report, c.Activity = true, a
	return c
}

// What each change of a session's activity announces: only a change of
// the aggregate (the most present session's), toward more present at
// once, toward less present after the grace; a user idle and back within
// the grace says nothing. Each session's activity reads in the status,
// and a report keeps the session's connect time.
func TestActivityAnnouncements(t *testing.T) {
	p := newPartition(&clock{t: t0})
	ann := redisstore.User{App: "chat", User: "ann"}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	steps := []struct {
		name     string
		change   redisstore.Change
		announce redisstore.Announce
		check    bool // the grace has passed: check
		s1, s2   status.Activity
		all      status.Activity
	}{
		{"connect", conn("ann", "s1", "gw", "e", 1, at(0)), redisstore.Now, false, status.Active, "", status.Active},
		{"second device", conn("ann", "s2", "gw", "e", 2, at(1)), redisstore.Now, false, status.Active, status.Active, status.Active},
		{"one idle, one active", report("ann", "s2", "gw", "e", status.Idle, 3, at(2)), redisstore.Nothing, false, status.Active, status.Idle, status.Active},
		{"both idle", report("ann", "s1", "gw", "e", status.Idle, 4, at(3)), redisstore.AfterGrace, false, status.Idle, status.Idle, status.Idle},
		{"active within the grace", report("ann", "s1", "gw", "e", status.Active, 5, at(4)), redisstore.Nothing, false, status.Active, status.Idle, status.Active},
		{"idle again", report("ann", "s1", "gw", "e", status.Background, 6, at(5)), redisstore.AfterGrace, true, status.Background, status.Idle, status.Idle},
		{"less present still", report("ann", "s2", "gw", "e", status.Background, 7, at(6)), redisstore.AfterGrace, true, status.Background, status.Background, status.Background},
		{"more present at once", report("ann", "s2", "gw", "e", status.Idle, 8, at(7)), redisstore.Now, false, status.Background, status.Idle, status.Idle},
		{"the idle device leaves", disc("ann", "s2", 9, at(8)), redisstore.Now, false, status.Background, "", status.Background},
		{"a new device is active", conn("ann", "s3", "gw", "e", 10, at(9)), redisstore.Now, false, status.Background, "", status.Active},
	}
	for _, s := range steps {
		o := p.Apply(s.change, false)
		if !o.Applied || o.Announce != s.announce || o.SelfOnly {
			t.Fatalf("%s: %+v, want applied, announce %v for all", s.name, o, s.announce)
		}
		switch {
		case o.Announce == redisstore.Now:
			p.MarkAnnounced(ann, o.Visible)
		case s.check:
			c := p.Check(ann)
			if c.Announce != redisstore.Now {
				t.Fatalf("%s: check after the grace: %+v, want an announcement", s.name, c)
			}
			p.MarkAnnounced(ann, c.Visible)
		}
		st, err := p.Status(ann)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]status.Activity{}
		for _, x := range st.Sessions {
			got[x.Session] = x.Activity
			if x.Session == "s1" && !x.ConnectedAt.Equal(t0) {
				t.Errorf("%s: s1 connected at %v, want %v (a report keeps it)", s.name, x.ConnectedAt, t0)
			}
		}
		if got["s1"] != s.s1 || got["s2"] != s.s2 || st.Activity != s.all {
			t.Errorf("%s: sessions %v, aggregate %q; want s1 %q, s2 %q, aggregate %q", s.name, got, st.Activity, s.s1, s.s2, s.all)
		}
	}
	// Offline: no activity.
	p.Apply(disc("ann", "s1", 11, at(10)), false)
	p.Apply(disc("ann", "s3", 12, at(11)), false)
	if st, _ := p.Status(ann); st.State != redisstore.Offline || st.Activity != "" {
		t.Errorf("offline: %s %q, want no activity", st.State, st.Activity)
	}
}

// An invisible user's aggregate is news for its own sessions only (after
// the grace, as anyone's less present).
func TestActivityInvisible(t *testing.T) {
	p := newPartition(&clock{t: t0})
	ann := redisstore.User{App: "chat", User: "ann"}
	for _, c := range []redisstore.Change{conn("ann", "s1", "gw", "e", 1, t0), setPrivacy("ann", true, "everyone", 2, t0)} {
		p.MarkAnnounced(ann, p.Apply(c, false).Visible)
	}
	o := p.Apply(report("ann", "s1", "gw", "e", status.Idle, 3, t0), false)
	if o.Announce != redisstore.AfterGrace || !o.SelfOnly {
		t.Fatalf("an invisible user idle: %+v, want news for its own sessions only after the grace", o)
	}
	o = p.Check(ann)
	if o.Announce != redisstore.Now || !o.SelfOnly {
		t.Fatalf("an invisible user idle: %+v, want news for its own sessions only", o)
	}
}

// A partition that replays the topic compacted (the session's key keeps
// only its latest record, the activity record) holds the session as the
// one that saw every record does, with its activity: online, idle.
func TestActivityCompacted(t *testing.T) {
	records := []redisstore.Change{
		conn("ann", "s1", "gw", "e", 1, t0),
		conn("ann", "s2", "gw", "e", 2, t0),
		report("ann", "s1", "gw", "e", status.Idle, 3, t0.Add(time.Minute)),
		report("ann", "s2", "gw", "e", status.Background, 4, t0.Add(time.Minute)),
	}
	ann := redisstore.User{App: "chat", User: "ann"}
	whole, compacted := newPartition(&clock{t: t0}), newPartition(&clock{t: t0})
	for _, c := range records {
		whole.Apply(c, true)
	}
	for _, c := range records[2:] { // each session key's latest
		compacted.Apply(c, true)
	}
	for name, p := range map[string]interface {
		Status(redisstore.User) (*redisstore.Status, error)
	}{"whole": whole, "compacted": compacted} {
		st, err := p.Status(ann)
		if err != nil || st.State != redisstore.Online || len(st.Sessions) != 2 || st.Activity != status.Idle ||
			st.Sessions[0].Activity == st.Sessions[1].Activity {
			t.Fatalf("%s: %+v, %v; want online, idle and background, aggregate idle", name, st, err)
		}
	}
}

// An activity report of a session that has ended, news, brings nothing
// back: it applies nothing and is Late, so that the processor writes the
// session's disconnect again. In a rebuild the same report stands for the
// session's connect, which compaction may have removed.
func TestActivityAfterDisconnect(t *testing.T) {
	p := newPartition(&clock{t: t0})
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	p.Apply(conn("ann", "s1", "gw", "e", 1, at(0)), false)
	p.Apply(disc("ann", "s1", 2, at(1)), false)
	o := p.Apply(report("ann", "s1", "gw", "e", status.Idle, 3, at(2)), false)
	if o.Applied || !o.Late || o.Announce != redisstore.Nothing {
		t.Errorf("a report after the disconnect: %+v, want not applied, late", o)
	}
	if st, _ := p.Status(redisstore.User{App: "chat", User: "ann"}); st == nil || st.State != status.Offline || len(st.Sessions) != 0 {
		t.Errorf("after a late report ann is %+v, want offline without sessions", st)
	}
	// The disconnect written again applies; the report read again (a
	// redelivery) is then older than the state, and not late.
	if o := p.Apply(disc("ann", "s1", 4, at(2)), false); !o.Applied {
		t.Errorf("the disconnect written again: %+v, want applied", o)
	}
	if o := p.Apply(report("ann", "s1", "gw", "e", status.Idle, 3, at(2)), false); o.Late || o.Applied {
		t.Errorf("the report read again after the disconnect written again: %+v", o)
	}

	rebuilt := newPartition(&clock{t: t0})
	if o := rebuilt.Apply(report("ann", "s1", "gw", "e", status.Idle, 3, at(2)), true); !o.Applied || o.Late {
		t.Errorf("a report in a rebuild: %+v, want applied as the session's connect", o)
	}
	if st, _ := rebuilt.Status(redisstore.User{App: "chat", User: "ann"}); st == nil || len(st.Sessions) != 1 {
		t.Errorf("rebuilt from a report alone, ann is %+v, want online with its session", st)
	}
}
