package state

import (
	"slices"
	"strings"
	"unique"
)

// The visible state of a user is what the user's audience is told: the
// user's devices, each "<device>\x1f<device id>", sorted and joined by
// "\x1e", then "\x1d", then the encoded custom status (empty when none).
// Session ids, versions and times are not part of it, so a device that
// reconnects is no news. It is the string apply.lua compares, byte for
// byte, so that an announcement decided here is the one Redis decided.
const (
	// offline is the visible state of a user Presence does not know:
	// no device, no custom status.
	offline = "\x1d"
	// sameAsVisible, as a user's announced state, means the audience
	// was last told the visible state the user shows now (apply.lua's
	// "a" = "="): it costs no copy of the state, and most users are in
	// it between their changes.
	sameAsVisible = "="
)

// host is a gateway and its boot epoch, interned: all the sessions of one
// gateway's boot share one copy.
type host struct{ gateway, epoch string }

// session is one live session of a user. Its strings shared by many
// sessions (device type, gateway, epoch) are interned handles of one
// word each; its id and device id are its own, in one string (one
// allocation, which holds nothing of the record they came from).
type session struct {
	// ids is the session id then the device id; idLen, the id's length.
	ids   string
	idLen uint32
	// activity is the code of the session's activity
	// (status.Activity.Code): 0 for active, 'i' or 'b' (activity.go).
	activity byte
	// at is when it connected, Unix milliseconds.
	at     int64
	device unique.Handle[string]
	host   unique.Handle[host]
}

func newSession(id, deviceID, device, gateway, epoch string, at int64, activity byte) session {
	return session{ids: id + deviceID, idLen: uint32(len(id)), at: at, activity: activity,
		device: unique.Make(device), host: unique.Make(host{gateway, epoch})}
}

func (s *session) id() string       { return s.ids[:s.idLen] }
func (s *session) deviceID() string { return s.ids[s.idLen:] }

func (s *session) gateway() string { return s.host.Value().gateway }

// user is what a partition keeps of one user: what the user's Redis hash
// shows, what the user's audience was last told (with Partition.told),
// and when the user is forgotten. It holds no map: a user has few sessions, found by a scan.
// A custom status, which most users lack, is a pointer; an announcement
// not yet made, which few users have at a time, is kept by the
// partition (Partition.told).
type user struct {
	// key is schemas.UserKey(app, user), the same string as the
	// partition's map key.
	key      string
	sessions []session
	// custom is the custom status, encoded as Redis holds it.
	custom *string
	// ended is, while the user is offline, the id of the session of its
	// latest disconnect, whose record says its last seen (dead.go).
	ended string
	// version is the offset of the latest record applied.
	version int64
	// lastSeen is when the last session ended (Unix ms), while no
	// session is live and a disconnect made it so (seen).
	lastSeen int64
	// expireAt is when the user is forgotten (Unix ms): the offline TTL
	// after the latest record applied, while no session is live.
	expireAt int64
	flags    uint8
}

// Flags of a user.
const (
	// seen: lastSeen holds a time.
	seen uint8 = 1 << iota
	// queued: the user is in the partition's expiry queue.
	queued
	// same: the audience was last told what the user shows now
	// (sameAsVisible).
	same
	// told: the audience was last told the state Partition.told holds.
	told
	// oldCustom: the key of the custom status holds a record of an
	// earlier life of the user, forgotten since, which this one does
	// not show: it dies with this one (dead.go).
	oldCustom
	// private: the user has a privacy setting, in Partition.privacy
	// (privacy.go).
	private
	// oldPrivacy: as oldCustom, for the key of the privacy setting.
	oldPrivacy
)

// customValue is the encoded custom status, "" when none (an encoded
// status is never empty).
func (u *user) customValue() string {
	if u.custom == nil {
		return ""
	}
	return *u.custom
}

// find returns the index of the session with id, -1 when none.
func (u *user) find(id string) int {
	for i := range u.sessions {
		if u.sessions[i].id() == id {
			return i
		}
	}
	return -1
}

// visible returns the user's visible state (see offline), but for its
// privacy: Partition.visible adds that.
func (u *user) visible() string {
	var b strings.Builder
	if a := u.activity(); a != 0 {
		b.WriteString(activityMark)
		b.WriteByte(a)
	}
	switch len(u.sessions) {
	case 0:
	case 1:
		s := &u.sessions[0]
		b.WriteString(s.device.Value())
		b.WriteByte(sep)
		b.WriteString(s.deviceID())
	default:
		devices := make([]string, len(u.sessions))
		for i := range u.sessions {
			devices[i] = u.sessions[i].device.Value() + string(sep) + u.sessions[i].deviceID()
		}
		slices.Sort(devices)
		b.WriteString(strings.Join(devices, "\x1e"))
	}
	b.WriteString(offline)
	b.WriteString(u.customValue())
	return b.String()
}

// announced is what the audience of u was last told, as apply.lua's "a"
// holds it: "" offline (nothing was told, or the user was forgotten
// since), sameAsVisible, or the state itself.
func (p *Partition) announced(u *user) string {
	switch {
	case u.flags&same != 0:
		return sameAsVisible
	case u.flags&told != 0:
		return p.told[u]
	}
	return ""
}

// setAnnounced sets what announced returns.
func (p *Partition) setAnnounced(u *user, a string) {
	u.flags &^= same | told
	delete(p.told, u)
	switch a {
	case "":
	case sameAsVisible:
		u.flags |= same
	default:
		u.flags |= told
		p.told[u] = a
	}
}

// toldState returns the visible state the audience of u was last told.
func (p *Partition) toldState(u *user) string {
	switch a := p.announced(u); a {
	case "":
		return offline
	case sameAsVisible:
		return p.visible(u)
	default:
		return a
	}
}
