package state

import (
	"strings"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// Privacy (status.Privacy): invisibility and who sees a user's last seen.
// Few users set one, so the partition keeps the settings in a map of its
// own (Partition.privacy) and a user's flag (private) says it has one: a
// user without pays one bit test and no word of memory.
//
// The state keeps the truth, and writes it to the user's hash (field "p"
// beside the others); readers mask it per viewer (status.Privacy.Mask).
// What changes here is what an announcement decides:
//
//   - The visible state of an invisible user is its visible state behind
//     the prefix hidden: a change of its devices is still a change, so
//     its own other sessions are told the truth (sync).
//   - What its friends and subscribers see of it is audienceView: offline
//     with its custom status. An announcement that leaves that view as
//     they were told it is for the user's own sessions only
//     (Outcome.SelfOnly): going invisible while online tells them
//     "offline" once, at once (no grace: the user chose it, no link
//     flapped); the user's sessions coming and going while invisible tell
//     them nothing; ending invisibility while online tells them "online".
//   - Who may see the last seen changes nothing of the visible state (last
//     seen is not part of it): a rule is applied when read, and announced
//     with the next change.

// hidden prefixes the visible state of an invisible user. No device type
// or id holds it (ids have no control characters).
const hidden = "\x1c"

// privacyRecord, as a deadKey's session, names the key of the user's
// privacy record (schemas.PrivacyKey): no session id holds a control
// character.
const privacyRecord = "\x00"

// privacyOf returns u's setting, ok false when u has the default.
func (p *Partition) privacyOf(u *user) (redisstore.Privacy, bool) {
	if u.flags&private == 0 {
		return redisstore.Privacy{}, false
	}
	return p.privacy[u], true
}

// setPrivacy sets u's setting to c's. Going invisible records the last
// seen shown meanwhile (now if the user is online, else its last seen,
// none if never seen) and the version shown meanwhile (c's); staying
// invisible keeps them.
func (p *Partition) setPrivacy(u *user, c redisstore.Change) {
	next := c.Privacy
	next.HiddenSince, next.HiddenVersion = 0, 0
	if next.Invisible {
		switch before, ok := p.privacyOf(u); {
		case ok && before.Invisible:
			next.HiddenSince, next.HiddenVersion = before.HiddenSince, before.HiddenVersion
		case len(u.sessions) > 0:
			next.HiddenSince, next.HiddenVersion = c.At.UnixMilli(), c.Version
		case u.flags&seen != 0:
			next.HiddenSince, next.HiddenVersion = u.lastSeen, c.Version
		default:
			next.HiddenVersion = c.Version
		}
	}
	p.privacy[u] = next
	u.flags |= private
	u.flags &^= oldPrivacy
}

// clearPrivacy restores u's default setting, and says whether it had
// another (its hash's field "p" is gone).
func (p *Partition) clearPrivacy(u *user) bool {
	had := u.flags&private != 0
	delete(p.privacy, u)
	u.flags &^= private | oldPrivacy // its record is a tombstone
	return had
}

// visible returns u's visible state (user.visible), behind hidden while
// u is invisible.
func (p *Partition) visible(u *user) string {
	if pv, ok := p.privacyOf(u); ok && pv.Invisible {
		return hidden + u.visible()
	}
	return u.visible()
}

// audienceView returns what a user's friends and subscribers see of the
// visible state s: an invisible user's shows no device.
func audienceView(s string) string {
	if rest, ok := strings.CutPrefix(s, hidden); ok {
		_, custom, _ := strings.Cut(rest, offline)
		return offline + custom
	}
	return s
}

// selfOnly says whether a user whose audience was told the visible state
// told now shows state: only its own sessions have anything to learn.
func selfOnly(told, state string) bool { return audienceView(told) == audienceView(state) }

// privacyKey returns the record key of u's privacy.
func privacyKey(userKey string) string {
	ids := schemas.SplitKey([]byte(userKey))
	return schemas.PrivacyKey(ids[0], ids[1])
}
