package status

import "testing"

// The aggregate is the most present session's activity, none offline;
// an invisible user's is masked with its sessions.
func TestAggregate(t *testing.T) {
	for _, c := range []struct {
		sessions []Activity
		want     Activity
	}{
		{nil, ""},
		{[]Activity{Background}, Background},
		{[]Activity{Background, Idle}, Idle},
		{[]Activity{Idle, Active, Background}, Active},
		{[]Activity{Background, Background}, Background},
	} {
		sessions := make([]Session, len(c.sessions))
		for i, a := range c.sessions {
			sessions[i].Activity = a
		}
		if got := Aggregate(sessions); got != c.want {
			t.Errorf("Aggregate(%v) = %q, want %q", c.sessions, got, c.want)
		}
	}
	for _, s := range []string{"", "Active", "away", "idle "} {
		if a, ok := ParseActivity(s); ok {
			t.Errorf("ParseActivity(%q) = %q, want refused", s, a)
		}
	}
	for _, a := range []Activity{Active, Idle, Background} {
		if got := ActivityOfCode(a.Code()); got != a {
			t.Errorf("%q: its code %q reads back as %q", a, a.Code(), got)
		}
		if got := ActivityFromProto(a.Proto()); got != a {
			t.Errorf("%q: its proto %v reads back as %q", a, a.Proto(), got)
		}
	}
	st := &Status{User: "ann", State: Online, Sessions: []Session{{Session: "s1", Activity: Idle}}, Activity: Idle}
	if m := (Privacy{Invisible: true}).Mask(st, Friend); m.Activity != "" || len(m.Sessions) != 0 {
		t.Errorf("invisible, masked for a friend: %+v, want no session and no activity", m)
	}
	if m := (Privacy{Invisible: true}).Mask(st, Self); m.Activity != Idle {
		t.Errorf("invisible, for herself: activity %q, want idle", m.Activity)
	}
}
