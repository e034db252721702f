package state

import (
	"fmt"
	"slices"
	"strconv"
)

// CheckIndexes returns an error when the partition's own indexes disagree
// with its users: each session is indexed under its gateway and nothing
// else is, each offline user is in the expiry queue, and only offline
// users keep ended sessions.
func (p *Partition) CheckIndexes() error {
	for gw, users := range p.gateways {
		for u := range users {
			if p.users[u.key] != u {
				return fmt.Errorf("gateway %s indexes %s, forgotten", gw, u.key)
			}
			if !holds(u, gw) {
				return fmt.Errorf("gateway %s indexes %s, which holds no session there", gw, u.key)
			}
		}
	}
	for u := range p.told {
		if p.users[u.key] != u || u.flags&told == 0 {
			return fmt.Errorf("the announcement told to %s is kept for a user forgotten or told else", u.key)
		}
	}
	inQueue := map[*user]bool{}
	for _, e := range p.expiries {
		inQueue[e.u] = true
	}
	for key, u := range p.users {
		if u.key != key {
			return fmt.Errorf("user %s is held under %s", u.key, key)
		}
		for i := range u.sessions {
			if _, ok := p.gateways[u.sessions[i].gateway()][u]; !ok {
				return fmt.Errorf("session %s of %s is not indexed under gateway %s", u.sessions[i].id(), key, u.sessions[i].gateway())
			}
		}
		if len(u.sessions) > 0 && u.ended != "" {
			return fmt.Errorf("user %s, online, keeps ended sessions %q", key, u.ended)
		}
		if len(u.sessions) == 0 && (!inQueue[u] || u.flags&queued == 0) {
			return fmt.Errorf("offline user %s is not in the expiry queue", key)
		}
	}
	return nil
}

func holds(u *user, gateway string) bool {
	for i := range u.sessions {
		if u.sessions[i].gateway() == gateway {
			return true
		}
	}
	return false
}

// Images returns the image of every user the partition knows, by user
// key, dirty or not, changing nothing.
func (p *Partition) Images() map[string]Image {
	out := make(map[string]Image, len(p.users))
	for key, u := range p.users {
		im := Image{Fields: u.fields()}
		if len(u.sessions) == 0 {
			im.ExpireAt = millis(u.expireAt)
		}
		out[key] = im
	}
	return out
}

// Shown returns what the partition shows of the user of key (a
// schemas.UserKey) now: its hash but for the version, field by field in
// sorted pairs, and, while offline, when it is forgotten; nil when the
// user is not known.
func (p *Partition) Shown(key string) []string {
	u := p.lookup(key, p.now().UnixMilli())
	if u == nil {
		return nil
	}
	f := u.fields()[2:] // without the version
	var pairs []string
	for i := 0; i < len(f); i += 2 {
		pairs = append(pairs, f[i]+"="+f[i+1])
	}
	slices.Sort(pairs)
	if len(u.sessions) == 0 {
		pairs = append(pairs, "forgotten at "+strconv.FormatInt(u.expireAt, 10))
	}
	return pairs
}

// Scheduled returns how many keys the partition holds dead or due to be,
// but for the ended sessions of offline users.
func (p *Partition) Scheduled() int { return len(p.dead) + len(p.limbo) + len(p.taken) }
