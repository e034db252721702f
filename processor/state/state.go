// Package state is the state of the users of one partition of
// presence.sessions, kept in the memory of the processor that owns the
// partition: their sessions, custom statuses, privacy settings and last
// seen times, what their audiences were last told, their sessions by
// gateway, when each offline user is forgotten, and which keys of their
// records are dead, to be tombstoned (dead.go).
//
// A Partition applies records with the rules redisstore's apply.lua
// applies inside Redis today, to the same outcomes (a test runs both on
// the same records and compares every outcome and every hash); what it
// hands Redis is only the result: the whole hash of each user changed
// since the last flush (Partition.TakeDirty), to be written blindly. It
// knows nothing of Redis or Kafka.
//
// The rules, each as apply.lua has them:
//   - Versions: a record applies only when its offset is above the
//     user's version; an older one (a duplicate, a replay) changes
//     nothing, and so a replay of the compacted topic rebuilds the same
//     state.
//   - A connect adds or replaces its session and ends the user's last
//     seen; a disconnect removes its session and, when none is left, sets
//     last seen to its time. A gateway_lost disconnect (OnlyHere) applies
//     only to the session as its gateway and epoch hold it: a session
//     that reconnected elsewhere is kept and returned (Outcome.Kept), so
//     that its connect can be written again.
//   - While no session is live, the user is forgotten the offline TTL
//     after the latest record applied (a record that old is forgotten at
//     once); a user whose custom status is cleared who never connected is
//     forgotten at once (nothing is left to show).
//   - Announcements follow the visible state (devices and custom
//     status, see user.go), compared with what was last told: Now when it
//     differs, AfterGrace when the user went offline (told once the grace
//     period has passed, if still true).
//   - Activity (activity.go) is not apply.lua's either: an activity
//     record is a connect there; here it keeps the session's connect time,
//     and the aggregate is part of the visible state, AfterGrace when it
//     becomes less present. During a rebuild (quiet) the
//     state counts as told: history is not news.
//   - Privacy records (SetPrivacy, ClearPrivacy) are not apply.lua's:
//     only a Partition applies them (privacy.go), and an invisible user's
//     changes may be news for its own sessions only (Outcome.SelfOnly).
//
// A partition assigned is restored either from its records (Apply,
// quietly) or from the users' hashes in Redis (Load, see load.go); both
// give the same Partition.
//
// A Partition is used by one goroutine at a time.
package state

import (
	"cmp"
	"strconv"
	"strings"
	"time"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// Config configures a Partition. Zero values mean the documented
// defaults.
type Config struct {
	// OfflineTTL is how long a user with no live session is remembered
	// after the latest record applied to it (redisstore.DefaultOfflineTTL).
	OfflineTTL time.Duration
	// Now is the clock that says when offline users are forgotten
	// (time.Now); it must agree with Redis's, which expires their keys.
	Now func() time.Time
	// NoTombstones says the caller writes no tombstones: the partition
	// does not keep which record keys are dead (dead.go). Presence
	// replay sets it.
	NoTombstones bool
}

// Partition is the state of the users of one partition.
type Partition struct {
	ttl int64 // ms
	now func() time.Time
	// users holds every user Presence remembers, by schemas.UserKey.
	users map[string]*user
	// gateways holds, per gateway, the users with a session on it.
	gateways map[string]map[*user]struct{}
	// expiries is the queue of offline users by when they are forgotten.
	expiries expiryQueue
	// privacy holds the setting of each user flagged private
	// (privacy.go).
	privacy map[*user]redisstore.Privacy
	// told holds the state last told to the audience of the users
	// whose flag says so: those told something they no longer show
	// (until their change is announced), few at a time.
	told map[*user]string
	// dirty holds the users changed since the last TakeDirty, by key.
	dirty map[string]dirtyUser
	// noTombstones: Config.NoTombstones. dead holds the record keys
	// found dead, limbo those due to be (dead.go), in the order found;
	// taken, those DeadKeys returned last, until Buried.
	noTombstones       bool
	dead, limbo, taken []deadKey
	// replace: every user changed is written whole (SetReplace).
	replace bool
	// graces are the pending offline announcements from graceHead on,
	// in the order queued (grace.go).
	graces    []pending
	graceHead int
	// graceDue is the latest due time of each user queued (Unix ms);
	// graceNoRecord counts the users queued by no record.
	graceDue      map[redisstore.User]int64
	graceNoRecord int
}

// SetReplace says whether every user changed from now on is written
// whole, replacing its hash, rather than as the fields that changed: while
// Redis may hold a user newer than the memory it was changed from (the
// records after a restored checkpoint, which the partition's former owner
// may have written before it stopped).
func (p *Partition) SetReplace(replace bool) { p.replace = replace }

// New returns an empty Partition.
func New(cfg Config) *Partition {
	ttl := cmp.Or(cfg.OfflineTTL, redisstore.DefaultOfflineTTL)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Partition{ttl: ttl.Milliseconds(), now: cfg.Now, users: map[string]*user{},
		gateways: map[string]map[*user]struct{}{}, told: map[*user]string{}, dirty: map[string]dirtyUser{},
		privacy: map[*user]redisstore.Privacy{}, noTombstones: cfg.NoTombstones}
}

// Len returns how many users the partition remembers.
func (p *Partition) Len() int { return len(p.users) }

// Apply applies one record of the partition, and returns what apply.lua
// returns for it: whether it applied, what to announce, the visible state
// to pass to MarkAnnounced once announced, and the session a gateway_lost
// disconnect kept. During a rebuild (quiet) the outcome holds only
// Applied, and the state counts as announced. It follows apply.lua step
// by step.
func (p *Partition) Apply(c redisstore.Change, quiet bool) redisstore.Outcome {
	now := p.now().UnixMilli()
	key := schemas.UserKey(c.App, c.User)
	u := p.lookup(key, now)
	existed := u != nil
	if !existed {
		u = &user{key: key, version: -1} // kept if the record applies
	}
	// What was told, as the state was before the record.
	a, announced := p.announced(u), p.toldState(u)
	op, i, kept := resolve(u, c)
	// A report of a session not live is late (Outcome.Late) when its
	// disconnect was seen, or when it is news; in a rebuild it may be all
	// that compaction left of the session, and stands for its connect.
	late := false
	if op == redisstore.Connect && c.Report && i < 0 && (u.ended == c.Session || !quiet) {
		op, late = keep, c.Version > u.version
	}
	version := u.version
	o := redisstore.Outcome{Applied: op != keep && c.Version > u.version, Kept: kept, Late: late}
	if o.Applied {
		d, ok := p.dirty[key]
		if !ok {
			d.User = redisstore.User{App: c.App, User: c.User}
		}
		// Redis holds the user's key for sure only while the user is
		// online (no expiry): then what changes is enough. A user new
		// (or forgotten and known again) is written whole.
		d.whole = d.whole || p.replace || !ok && len(u.sessions) == 0 || !existed
		if !existed {
			p.users[key] = u
		}
		if gone := p.change(u, op, i, c); gone != "" && !d.whole {
			d.removed = append(d.removed, gone)
		}
		p.dirty[key] = d
		version = c.Version
	}
	exists := p.settle(u, op, o.Applied, existed || o.Applied, quiet, c.At.UnixMilli(), now)
	if quiet {
		return redisstore.Outcome{Applied: o.Applied, Late: o.Late}
	}
	state := offline
	if exists {
		state = p.visible(u)
	}
	o.Visible = strconv.FormatInt(version, 10) + ":" + state
	switch {
	case state == announced:
		return o
	case exists && a == sameAsVisible:
		// The state told is about to differ from the one shown: keep it.
		p.setAnnounced(u, announced)
	}
	o.SelfOnly = selfOnly(announced, state)
	if len(u.sessions) == 0 && announced[0] != offline[0] && op != keep || op != keep && lessPresent(announced, state) {
		o.Announce = redisstore.AfterGrace
	} else {
		o.Announce = redisstore.Now
	}
	return o
}

// keep is the op of a record that applies nothing: a gateway_lost
// disconnect of a session held elsewhere, or an unknown op.
const keep redisstore.Op = 0

// resolve returns what c does to u: its op (keep when it does nothing),
// the index of its session (-1: none), and, for a gateway_lost disconnect
// of a session another gateway or epoch holds, that session, which is
// kept.
func resolve(u *user, c redisstore.Change) (redisstore.Op, int, *redisstore.Session) {
	switch c.Op {
	case redisstore.SetCustom, redisstore.ClearCustom, redisstore.SetPrivacy, redisstore.ClearPrivacy:
		return c.Op, -1, nil
	case redisstore.Connect, redisstore.Disconnect:
	default:
		return keep, -1, nil
	}
	i := u.find(c.Session)
	if c.Op == redisstore.Disconnect && c.OnlyHere && i >= 0 {
		if h := u.sessions[i].host.Value(); h.gateway != c.Gateway || h.epoch != c.Epoch {
			kept := u.sessions[i].public(c.Session)
			return keep, i, &kept
		}
	}
	return c.Op, i, nil
}

// settle applies what follows a record of time at, which applied or not,
// to u, which exists (Redis holds its key) or not: the forgetting of a
// user left with nothing to show, last seen, the rebuild's "told", and
// the offline deadline. It returns whether u still exists.
func (p *Partition) settle(u *user, op redisstore.Op, applied, exists, quiet bool, at, now int64) bool {
	none := len(u.sessions) == 0
	switch {
	case applied && none && (op == redisstore.ClearCustom || op == redisstore.ClearPrivacy) &&
		u.flags&seen == 0 && u.custom == nil && u.flags&private == 0:
		// Nothing left to show: the user never connected.
		p.forget(u)
		return false
	case !exists:
		return false
	}
	if applied && none && op == redisstore.Disconnect {
		u.lastSeen = at
		u.flags |= seen
	}
	if quiet {
		p.setAnnounced(u, sameAsVisible)
	}
	if applied && none {
		p.expireAt(u, at+p.ttl)
		if u.expireAt <= now { // a deadline already past forgets at once
			p.forget(u)
			return false
		}
	}
	return true
}

// change applies a record newer than the user: op on the session at index
// i (-1: none). It returns the field of the user's hash the change
// removes, if any.
func (p *Partition) change(u *user, op redisstore.Op, i int, c redisstore.Change) (gone string) {
	u.version = c.Version
	switch op {
	case redisstore.Connect:
		s := newSession(c.Session, c.DeviceID, c.Device, c.Gateway, c.Epoch, c.At.UnixMilli(), activityCode(c.Activity))
		if i >= 0 && c.Report && u.sessions[i].host == s.host {
			s.at = u.sessions[i].at // the session's report: still connected since then
		}
		if i >= 0 {
			p.unindex(u, i)
			u.sessions[i] = s
		} else {
			u.sessions = append(u.sessions, s)
		}
		p.index(u, s.gateway())
		u.flags &^= seen
		u.unend(c.Session)
		p.online(u)
	case redisstore.Disconnect:
		if i >= 0 {
			gone = "s" + c.Session
			p.unindex(u, i)
			u.sessions = append(u.sessions[:i], u.sessions[i+1:]...)
			if len(u.sessions) == 0 {
				u.sessions = nil // let the array go
			}
		}
		if len(u.sessions) > 0 {
			p.schedule(u, c.Session, c.At.UnixMilli()+p.ttl)
		} else {
			p.end(u, c.Session)
		}
	case redisstore.SetCustom:
		custom := encodeCustom(c.Custom)
		u.custom = &custom
		u.flags &^= oldCustom
	case redisstore.ClearCustom:
		if u.custom != nil {
			gone = "c"
		}
		u.custom = nil
		u.flags &^= oldCustom // its record is a tombstone
	case redisstore.SetPrivacy:
		p.setPrivacy(u, c)
	case redisstore.ClearPrivacy:
		if p.clearPrivacy(u) {
			gone = "p"
		}
	}
	return gone
}

// Check returns what apply.lua's check returns for a user, changing
// nothing: Announce is Now when the visible state differs from what was
// told (the offline grace period of a user has passed).
func (p *Partition) Check(who redisstore.User) redisstore.Outcome {
	u := p.lookup(schemas.UserKey(who.App, who.User), p.now().UnixMilli())
	if u == nil {
		return redisstore.Outcome{Visible: "-1:" + offline}
	}
	state := p.visible(u)
	o := redisstore.Outcome{Visible: strconv.FormatInt(u.version, 10) + ":" + state}
	if told := p.toldState(u); state != told {
		o.Announce = redisstore.Now
		o.SelfOnly = selfOnly(told, state)
	}
	return o
}

// MarkAnnounced records that the audience of a user was told visible, as
// an Outcome of Apply or Check returned it. A user forgotten since was
// told offline, which is what a user not known shows.
func (p *Partition) MarkAnnounced(who redisstore.User, visible string) {
	u := p.lookup(schemas.UserKey(who.App, who.User), p.now().UnixMilli())
	version, state, ok := strings.Cut(visible, ":")
	if u == nil || !ok {
		return
	}
	if version == strconv.FormatInt(u.version, 10) {
		p.setAnnounced(u, sameAsVisible) // the user still shows it
	} else {
		p.setAnnounced(u, state)
	}
}

// lookup returns the user of key, nil when not known or due to be
// forgotten at now (then it is forgotten).
func (p *Partition) lookup(key string, now int64) *user {
	u := p.users[key]
	if u != nil && len(u.sessions) == 0 && u.expireAt <= now {
		p.forget(u)
		return nil
	}
	return u
}

// forget removes a user with no live session; Redis deletes or expires
// its key. The keys of its records are dead.
func (p *Partition) forget(u *user) {
	if p.users[u.key] == u {
		delete(p.users, u.key)
		p.buryAll(u)
	}
	p.clearPrivacy(u)
	p.setAnnounced(u, "")
}
