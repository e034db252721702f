package state

import (
	"time"

	"github.com/presence-im/presence/schemas"
)

// Dead keys: compaction keeps the latest record of every key of
// presence.sessions forever, so a key whose latest record no longer shows
// in the state must be tombstoned for the topic to stay bounded. The
// partition knows which keys those are:
//
//   - The key of an offline user's latest disconnect shows while the user
//     is known: the user's last seen comes from it. The user keeps its
//     session's id (user.ended); it is dead once the user is forgotten.
//   - Any other ended session's key says nothing any more: the user has
//     been online since, or a later disconnect says its last seen. It is
//     dead when due, the offline TTL after it ended (at the latest, the
//     user's deadline when it was superseded). A session that ends while
//     others of its user are live is due the same way. (Redis's schedule,
//     before, could not tell: a key that came due while its user was
//     offline was kept until the user was forgotten.)
//   - A privacy setting's key is as a custom status's (below): it dies
//     with the user; a privacy restored to the default is a tombstone.
//   - A custom status's key shows while its user is known: it dies with
//     the user. A cleared custom status is a tombstone already, written
//     by the query API. The key of a user forgotten then known again
//     before it was tombstoned dies with the user's new life: its
//     tombstone is a clear, which the processor reads back, and which
//     would change the user now.
//
// Keys are checked against the state again when taken (DeadKeys): a key
// that a record made live again since (a session reconnected with the
// same id, a custom status set again, a user forgotten then back with a
// record on the same key) is not returned. What remains is a record
// written to the same key between the caller's last read of the
// partition and its tombstone (see processor/bound.go).

// deadKey is a record key found dead, or due to be.
type deadKey struct {
	// due is when it may be tombstoned (Unix ms).
	due int64
	// user is the user's key (schemas.UserKey), shared with the user.
	user string
	// session is the session's id; "" names the custom status's key
	// (no session id is empty).
	session string
}

// end records that session id of u, which is offline, has ended: its
// disconnect is the user's latest, and the one before is superseded.
func (p *Partition) end(u *user, id string) {
	if u.ended == id {
		return
	}
	if u.ended != "" {
		p.schedule(u, u.ended, u.expireAt)
	}
	u.ended = id
}

// unend forgets that session id of u has ended: a record made its key
// live again.
func (u *user) unend(id string) {
	if u.ended == id {
		u.ended = ""
	}
}

// schedule schedules the key of session id of u, superseded, for when
// it is due (Unix ms).
func (p *Partition) schedule(u *user, id string, due int64) {
	if !p.noTombstones {
		p.limbo = append(p.limbo, deadKey{due: due, user: u.key, session: id})
	}
}

// online schedules the ended session of u, back online, for the user's
// last deadline, the offline TTL after it ended at the latest.
func (p *Partition) online(u *user) {
	if u.ended != "" {
		p.schedule(u, u.ended, u.expireAt)
		u.ended = ""
	}
}

// buryAll marks every key u's records hold dead: u is forgotten.
func (p *Partition) buryAll(u *user) {
	if p.noTombstones {
		return
	}
	if u.ended != "" {
		p.dead = append(p.dead, deadKey{user: u.key, session: u.ended})
		u.ended = ""
	}
	if u.custom != nil || u.flags&oldCustom != 0 {
		p.dead = append(p.dead, deadKey{user: u.key})
	}
	if u.flags&(private|oldPrivacy) != 0 {
		p.dead = append(p.dead, deadKey{user: u.key, session: privacyRecord})
	}
}

// DeadKeys returns up to limit record keys of the partition (0: no
// limit) that are dead at now: their tombstone changes nothing the state
// shows. Tombstone them, then call Buried; until then, each call returns
// them again (those still dead). Call it only while the partition is
// caught up with its topic and not being rebuilt, so that the state
// checked is the latest the topic says; users due to be forgotten should
// be first (Expire).
func (p *Partition) DeadKeys(now time.Time, limit int) []string {
	ms := now.UnixMilli()
	if len(p.taken) > 0 {
		p.dead = append(p.taken, p.dead...)
		p.taken = nil
	}
	// The schedule is in the order keys ended, nearly that of their due
	// times: a key due behind a later one waits for it.
	for len(p.limbo) > 0 && p.limbo[0].due <= ms {
		p.dead = append(p.dead, p.limbo[0])
		p.limbo[0] = deadKey{}
		p.limbo = p.limbo[1:]
	}
	var keys []string
	returned := map[string]bool{}
	for len(p.dead) > 0 && (limit <= 0 || len(keys) < limit) {
		k := p.dead[0]
		p.dead[0] = deadKey{}
		p.dead = p.dead[1:]
		if !p.isDead(k, ms) {
			continue
		}
		if key := k.recordKey(); !returned[key] {
			returned[key] = true
			keys = append(keys, key)
			p.taken = append(p.taken, k)
		}
	}
	if len(p.dead) == 0 {
		p.dead = nil // let the array go
	}
	if len(p.limbo) == 0 {
		p.limbo = nil
	}
	return keys
}

// Buried records that the keys the last DeadKeys returned are
// tombstoned.
func (p *Partition) Buried() { p.taken = nil }

// isDead returns whether k shows nothing in the state at now.
func (p *Partition) isDead(k deadKey, now int64) bool {
	u := p.lookup(k.user, now)
	switch {
	case u == nil:
		return true
	case k.session == "":
		if u.custom == nil {
			u.flags |= oldCustom // dies with u
		}
		return false
	case k.session == privacyRecord:
		if u.flags&private == 0 {
			u.flags |= oldPrivacy // dies with u
		}
		return false
	case u.find(k.session) >= 0:
		return false // live again
	}
	return len(u.sessions) > 0 || u.ended != k.session
}

// recordKey is k's key in presence.sessions.
func (k deadKey) recordKey() string {
	if k.session == "" {
		return k.user // schemas.CustomStatusKey
	}
	if k.session == privacyRecord {
		return privacyKey(k.user)
	}
	ids := schemas.SplitKey([]byte(k.user))
	return schemas.SessionKey(ids[0], ids[1], k.session)
}
