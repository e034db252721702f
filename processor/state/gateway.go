package state

import (
	"cmp"
	"slices"
	"strings"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/status"
)

// The sessions of each gateway, found from memory, so that those of a
// lost gateway can be ended without an index in Redis: per gateway, the
// users with a session on it. A user is one entry per gateway however
// many sessions it holds there; its sessions say which are there.

// GatewaySession is a live session held on a gateway.
type GatewaySession struct {
	App, User string
	redisstore.Session
}

// index records that u holds a session on gateway.
func (p *Partition) index(u *user, gateway string) {
	users := p.gateways[gateway]
	if users == nil {
		users = map[*user]struct{}{}
		p.gateways[gateway] = users
	}
	users[u] = struct{}{}
}

// unindex records that u's session at index i leaves its gateway, which
// forgets u there unless another of its sessions is on it.
func (p *Partition) unindex(u *user, i int) {
	gateway := u.sessions[i].gateway()
	for j := range u.sessions {
		if j != i && u.sessions[j].gateway() == gateway {
			return
		}
	}
	users := p.gateways[gateway]
	delete(users, u)
	if len(users) == 0 {
		delete(p.gateways, gateway)
	}
}

// Gateways returns the gateways that hold live sessions of the
// partition's users, sorted.
func (p *Partition) Gateways() []string {
	out := make([]string, 0, len(p.gateways))
	for gw := range p.gateways {
		out = append(out, gw)
	}
	slices.Sort(out)
	return out
}

// SessionsOf returns the live sessions held on gateway, of any epoch,
// sorted by user and session.
func (p *Partition) SessionsOf(gateway string) []GatewaySession {
	var out []GatewaySession
	for u := range p.gateways[gateway] {
		ids := schemas.SplitKey([]byte(u.key))
		for i := range u.sessions {
			if s := &u.sessions[i]; s.gateway() == gateway {
				out = append(out, GatewaySession{App: ids[0], User: ids[1], Session: s.public(s.id())})
			}
		}
	}
	slices.SortFunc(out, func(a, b GatewaySession) int {
		return cmp.Or(strings.Compare(a.App, b.App), strings.Compare(a.User, b.User),
			strings.Compare(a.Session.Session, b.Session.Session))
	})
	return out
}

// public is the session as redisstore shows it, with id.
func (s *session) public(id string) redisstore.Session {
	h := s.host.Value()
	return redisstore.Session{Session: id, Device: s.device.Value(), DeviceID: s.deviceID(),
		Gateway: h.gateway, ConnectedAt: redisstore.Time{Time: millis(s.at)}, Epoch: h.epoch,
		Activity: status.ActivityOfCode(codeString(s.activity))}
}
