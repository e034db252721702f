package state

import (
	"fmt"
	"strings"

	"github.com/presence-im/presence/schemas/status"
)

// Activity per session (status.Activity): each session keeps the code
// of what its client last reported (0 for active, which a client that
// never reports is; 'i' idle; 'b' background), one byte that fits in the
// session's padding, and the hash one more byte and a separator only when
// not active.
//
// An activity record is a Connect with Change.Report: it carries the
// whole session, under the session's own key, so that compaction, which
// keeps only the key's latest record, keeps a session whose connect it
// replaced. Applied to a live session of the same gateway and epoch it
// changes its activity only; applied to none it is the connect compaction
// kept (a gateway reports only for a session it holds, and a disconnect,
// later on the same key, replaces it).
//
// The user's aggregate, its most present session's, is part of its
// visible state, behind activityMark, only when not active: the visible
// state of a user who never reported is the one apply.lua computes, byte
// for byte. A change of one session's activity that leaves the aggregate
// alone leaves the visible state alone: no announcement, not even to the
// user's other sessions (what they show is the aggregate's to say; the
// session's own activity is read in lookups). A change of the aggregate
// is announced: toward more present at once, toward less present once
// the offline grace has passed, if still true (Apply), so that a user
// going idle and back within the grace says nothing. An invisible user's
// aggregate is news for its own sessions only (audienceView drops it).

// activityMark prefixes the aggregate's code in the visible state. No
// device type or id holds it (ids have no control characters).
const activityMark = "\x1b"

// activityCode returns a's code in memory: 0 for Active (and "").
func activityCode(a status.Activity) byte {
	if code := a.Code(); code != "" {
		return code[0]
	}
	return 0
}

// codeString returns the code as status.ActivityOfCode reads it.
func codeString(code byte) string {
	if code == 0 {
		return ""
	}
	return string(rune(code))
}

// parseActivityCode returns the code of a session's value in a hash.
func parseActivityCode(s string) (byte, error) {
	switch s {
	case "i", "b":
		return s[0], nil
	}
	return 0, fmt.Errorf("unknown activity %q", s)
}

// activity returns the code of u's aggregate: its most present session's
// (0, active, when any is, or none is live).
func (u *user) activity() byte {
	var most byte
	for i := range u.sessions {
		switch a := u.sessions[i].activity; {
		case a == 0:
			return 0
		case a == 'i' || most == 0:
			most = a
		}
	}
	return most
}

// activityOf returns the aggregate's code a visible state holds, and the
// state without it.
func activityOf(s string) (code byte, rest string) {
	prefix, t := "", s
	if r, ok := strings.CutPrefix(t, hidden); ok {
		prefix, t = hidden, r
	}
	if r, ok := strings.CutPrefix(t, activityMark); ok && r != "" {
		return r[0], prefix + r[1:]
	}
	return 0, s
}

// lessPresent says whether the visible state now differs from told only
// by a less present aggregate: news that waits for the grace.
func lessPresent(told, now string) bool {
	was, toldRest := activityOf(told)
	is, nowRest := activityOf(now)
	return toldRest == nowRest && rank(is) < rank(was)
}

// rank orders codes by presence: active highest.
func rank(code byte) int {
	switch code {
	case 0:
		return 2
	case 'i':
		return 1
	}
	return 0
}
