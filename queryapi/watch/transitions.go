package watch

import (
	"time"
)

// TransitionSeconds is how many seconds of transitions the Feed counts.
const TransitionSeconds = 60

// Second is what the Feed counted in one second of the change records'
// time: users coming online (from offline, or first seen online) and users
// going offline (from online, or first seen offline). A user's change that
// leaves it online (a second device, a custom status) counts nothing.
type Second struct {
	At      int64 `json:"at"` // Unix seconds
	Online  int   `json:"online"`
	Offline int   `json:"offline"`
}

// transitions counts, per second of the records' time, the changes that
// moved a user between online and offline, for the last
// TransitionSeconds seconds: a ring indexed by the Unix second.
type transitions [TransitionSeconds]Second

// count adds a change at at, online or not, to its second; a change older
// than the ring holds is left out.
func (t *transitions) count(at time.Time, online bool) {
	sec := at.Unix()
	s := &t[uint64(sec)%TransitionSeconds]
	if s.At != sec {
		if s.At > sec {
			return // older than the ring holds
		}
		*s = Second{At: sec}
	}
	if online {
		s.Online++
	} else {
		s.Offline++
	}
}

// last returns the TransitionSeconds seconds up to now (excluded: it is
// still being counted), the oldest first; a second without a change
// counts zero.
func (t *transitions) last(now time.Time) []Second {
	end := now.Unix()
	out := make([]Second, 0, TransitionSeconds)
	for sec := end - TransitionSeconds; sec < end; sec++ {
		s := t[uint64(sec)%TransitionSeconds]
		if s.At != sec {
			s = Second{At: sec}
		}
		out = append(out, s)
	}
	return out
}

// Transitions returns the users coming online and going offline per
// second over the last TransitionSeconds seconds, as read from
// presence.changes, the oldest first.
func (f *Feed) Transitions() []Second {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.transitions.last(f.cfg.Now())
}
