package watch

import (
	"testing"
	"time"
)

// TestTransitionsRing: counts land in their second; a second reused by
// the ring starts again from zero; a change older than the ring holds,
// and the second still being counted, are left out of last.
func TestTransitionsRing(t *testing.T) {
	var tr transitions
	base := time.Unix(1_800_000_000, 0)
	tr.count(base, true)
	tr.count(base.Add(500*time.Millisecond), false)
	tr.count(base.Add(time.Second), true)
	tr.count(base.Add(TransitionSeconds*time.Second), true) // reuses base's slot
	tr.count(base, true)                                    // older than the ring now holds
	last := tr.last(base.Add(TransitionSeconds * time.Second))
	if len(last) != TransitionSeconds || last[0].At != base.Unix() || last[len(last)-1].At != base.Unix()+TransitionSeconds-1 {
		t.Fatalf("last spans %d seconds from %d, want %d from %d", len(last), last[0].At, TransitionSeconds, base.Unix())
	}
	if last[0] != (Second{At: base.Unix()}) {
		t.Errorf("the reused second shows %+v, want it empty", last[0])
	}
	if last[1] != (Second{At: base.Unix() + 1, Online: 1}) {
		t.Errorf("second 1: %+v, want 1 online", last[1])
	}
	last = tr.last(base.Add((TransitionSeconds + 1) * time.Second))
	if s := last[len(last)-1]; s != (Second{At: base.Unix() + TransitionSeconds, Online: 1}) {
		t.Errorf("second %d: %+v, want 1 online", s.At, s)
	}
}
