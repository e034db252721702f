package status

import (
	"fmt"
	"strconv"
	"strings"

	pb "github.com/presence-im/presence/schemas/presencepb"
)

// Privacy is a user's privacy setting, as the processor keeps it in the
// user's hash and readers apply it. Presence stores the truth; each
// reader masks a Status for its viewer (Mask): the query API's lookups
// and watches, the processor's notifications.
type Privacy struct {
	// Invisible: the user shows as offline, with no session, to everyone
	// but the user's own sessions (and backends).
	Invisible bool `json:"invisible"`
	// LastSeen says who may see the user's last seen time: Everyone,
	// Friends or Nobody.
	LastSeen string `json:"last_seen"`
	// HiddenSince is, while invisible, the last seen shown in its stead
	// (Unix ms, 0: none): when the invisibility began if the user was
	// online then, else the user's last seen at that time. Not served.
	HiddenSince int64 `json:"-"`
	// HiddenVersion is, while invisible, the version shown in its stead:
	// that of the record that made the user invisible (0: the truth's),
	// so that the version others see does not move while the user's own
	// devices come and go. Not served.
	HiddenVersion int64 `json:"-"`
}

// Last seen rules.
const (
	Everyone = "everyone"
	Friends  = "friends"
	Nobody   = "nobody"
)

// IsDefault says whether p is the setting of a user who never set one:
// visible, last seen to everyone.
func (p Privacy) IsDefault() bool {
	return !p.Invisible && (p.LastSeen == Everyone || p.LastSeen == "")
}

// Viewer is who a Status is shown to, as Mask needs to know it.
type Viewer uint8

const (
	// Anyone is a viewer that is neither the user nor a friend.
	Anyone Viewer = iota
	// Friend is a friend of the user.
	Friend
	// Self is the user (its own sessions) or a backend: it sees the truth.
	Self
)

// NeedsFriendship says whether Mask's answer for st under p depends on
// whether the viewer is a friend (Friend or Anyone), so that a reader asks
// Redis only for the statuses that need it.
func (p Privacy) NeedsFriendship(st *Status) bool {
	return p.LastSeen == Friends && st != nil && (st.State == Offline || p.Invisible)
}

// Mask returns st as viewer may see it under p: st itself for Self, for a
// default p, or for a nil st; else a copy that is offline with no session
// while p.Invisible (no activity, its last seen HiddenSince, its version
// HiddenVersion: nothing of it moves while the user is invisible), and
// without last seen when the rule does not show it to viewer.
func (p Privacy) Mask(st *Status, viewer Viewer) *Status {
	if st == nil || viewer == Self || p.IsDefault() {
		return st
	}
	m := *st
	if p.Invisible {
		m.State, m.Sessions, m.LastSeen, m.Activity = Offline, []Session{}, nil, ""
		if p.HiddenSince != 0 {
			t := millis(p.HiddenSince)
			m.LastSeen = &t
		}
		if p.HiddenVersion != 0 {
			m.Version = p.HiddenVersion
		}
	}
	if p.LastSeen == Nobody || p.LastSeen == Friends && viewer != Friend {
		m.LastSeen = nil
	}
	return &m
}

// Encode returns p as the user's hash holds it (field "p"):
// "<invisible 0|1>:<rule>:<hidden since ms>", then ":<hidden version>"
// when there is one.
func (p Privacy) Encode() string {
	inv := "0"
	if p.Invisible {
		inv = "1"
	}
	out := inv + ":" + p.LastSeen + ":" + strconv.FormatInt(p.HiddenSince, 10)
	if p.HiddenVersion != 0 {
		out += ":" + strconv.FormatInt(p.HiddenVersion, 10)
	}
	return out
}

// DecodePrivacy decodes what Encode wrote.
func DecodePrivacy(s string) (Privacy, error) {
	inv, rest, ok1 := strings.Cut(s, ":")
	rule, rest, ok2 := strings.Cut(rest, ":")
	since, version, hasVersion := strings.Cut(rest, ":")
	ms, err := strconv.ParseInt(since, 10, 64)
	var v int64
	if hasVersion && err == nil {
		v, err = strconv.ParseInt(version, 10, 64)
	}
	if !ok1 || !ok2 || err != nil || inv != "0" && inv != "1" || !validRule(rule) || v < 0 {
		return Privacy{}, fmt.Errorf("decoding privacy %q: malformed", s)
	}
	return Privacy{Invisible: inv == "1", LastSeen: rule, HiddenSince: ms, HiddenVersion: v}, nil
}

func validRule(r string) bool { return r == Everyone || r == Friends || r == Nobody }

// ParseLastSeenRule returns the rule a client names, "" for anything but
// "everyone", "friends" or "nobody".
func ParseLastSeenRule(s string) string {
	if validRule(s) {
		return s
	}
	return ""
}

// PrivacyFromProto returns the setting a record says (nil: the default).
// A HiddenSince or HiddenVersion a SessionEvent carries means nothing: the
// processor sets them.
func PrivacyFromProto(p *pb.Privacy) Privacy {
	out := Privacy{Invisible: p.GetInvisible(), LastSeen: Everyone, HiddenSince: p.GetHiddenSinceMs(), HiddenVersion: p.GetHiddenVersion()}
	switch p.GetLastSeen() {
	case pb.LastSeenRule_LAST_SEEN_RULE_FRIENDS:
		out.LastSeen = Friends
	case pb.LastSeenRule_LAST_SEEN_RULE_NOBODY:
		out.LastSeen = Nobody
	}
	return out
}

// Proto returns p as a record carries it.
func (p Privacy) Proto() *pb.Privacy {
	out := &pb.Privacy{Invisible: p.Invisible, LastSeen: pb.LastSeenRule_LAST_SEEN_RULE_EVERYONE, HiddenSinceMs: p.HiddenSince, HiddenVersion: p.HiddenVersion}
	switch p.LastSeen {
	case Friends:
		out.LastSeen = pb.LastSeenRule_LAST_SEEN_RULE_FRIENDS
	case Nobody:
		out.LastSeen = pb.LastSeenRule_LAST_SEEN_RULE_NOBODY
	}
	return out
}

// Masked returns st as viewer may see it under the user's own privacy
// (st.Privacy; nil: the default, st itself): see Privacy.Mask.
func (st *Status) Masked(viewer Viewer) *Status {
	if st == nil || st.Privacy == nil {
		return st
	}
	return st.Privacy.Mask(st, viewer)
}
