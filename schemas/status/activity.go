package status

import (
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// Activity is how present a user is on a session, as a client reports it:
// Active, Idle or Background, from most to least present. On a Status it
// is the aggregate of the sessions (Aggregate), "" while offline, which
// JSON writes as null.
type Activity string

// Activities, most present first.
const (
	Active     Activity = "active"
	Idle       Activity = "idle"
	Background Activity = "background"
)

// MarshalJSON writes a as a JSON string, null when "".
func (a Activity) MarshalJSON() ([]byte, error) { return a.appendJSON(nil), nil }

func (a Activity) appendJSON(b []byte) []byte {
	if a == "" {
		return append(b, "null"...)
	}
	return appendString(b, string(a))
}

// rank orders activities by presence: Active highest, "" (none) lowest.
func (a Activity) rank() int {
	switch a {
	case Active:
		return 3
	case Idle:
		return 2
	case Background:
		return 1
	}
	return 0
}

// MorePresent says whether a is more present than b.
func (a Activity) MorePresent(b Activity) bool { return a.rank() > b.rank() }

// ParseActivity returns the activity a client names, false for anything
// else.
func ParseActivity(s string) (Activity, bool) {
	switch a := Activity(s); a {
	case Active, Idle, Background:
		return a, true
	}
	return "", false
}

// Aggregate returns the most present activity of sessions, "" when there
// is none (offline).
func Aggregate(sessions []Session) Activity {
	var most Activity
	for i := range sessions {
		if a := sessions[i].Activity; a.MorePresent(most) {
			most = a
		}
	}
	return most
}

// Code returns a as the user's hash and the processor's memory keep it:
// "" for Active (most sessions, no byte), "i" for Idle, "b" for
// Background.
func (a Activity) Code() string {
	switch a {
	case Idle:
		return "i"
	case Background:
		return "b"
	}
	return ""
}

// ActivityOfCode is the inverse of Code; anything unknown reads as Active.
func ActivityOfCode(code string) Activity {
	switch code {
	case "i":
		return Idle
	case "b":
		return Background
	}
	return Active
}

// ActivityFromProto returns the activity of a record; unset means Active.
func ActivityFromProto(a pb.Activity) Activity {
	switch a {
	case pb.Activity_ACTIVITY_IDLE:
		return Idle
	case pb.Activity_ACTIVITY_BACKGROUND:
		return Background
	}
	return Active
}

// Proto returns a as a record holds it; Active is unset (the default of a
// session, and no byte on the wire), "" too.
func (a Activity) Proto() pb.Activity {
	switch a {
	case Idle:
		return pb.Activity_ACTIVITY_IDLE
	case Background:
		return pb.Activity_ACTIVITY_BACKGROUND
	}
	return pb.Activity_ACTIVITY_UNSPECIFIED
}
