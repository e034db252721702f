package state

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/status"
)

// What an announcement reads of the users of a partition, from memory
// rather than from their hashes in Redis: what a read of the hash, once
// written, would give, without building the hash. These read only: a
// user due to be forgotten reads as forgotten (Redis has expired its key)
// but is not forgotten here, so that the announcer may read the
// partitions whose goroutines wait for it.

// peek returns the user of key as Redis holds it at now: nil when not
// known or due to be forgotten.
func (p *Partition) peek(key string, now int64) *user {
	u := p.users[key]
	if u == nil || len(u.sessions) == 0 && u.expireAt <= now {
		return nil
	}
	return u
}

// AppendRoutes appends to routes where each live session of a user of app
// is (its id and gateway), as redisstore.Store.Routes reads them, and
// returns the extended slice; a user not known, or offline, has none.
func (p *Partition) AppendRoutes(routes []redisstore.Route, app, name string) []redisstore.Route {
	var buf [96]byte
	u := p.users[string(schemas.AppendUserKey(buf[:0], app, name))]
	if u == nil {
		return routes
	}
	for i := range u.sessions {
		s := &u.sessions[i]
		routes = append(routes, redisstore.Route{Session: s.id(), Gateway: s.gateway()})
	}
	return routes
}

// Status returns the status of a user as redisstore.DecodeStatus decodes
// it from the user's hash once written (see Hash), nil when the user is
// not known, without building the hash.
func (p *Partition) Status(who redisstore.User) (*redisstore.Status, error) {
	u := p.peek(schemas.UserKey(who.App, who.User), p.now().UnixMilli())
	if u == nil {
		return nil, nil
	}
	// Sessions empty rather than nil, as a lookup's: it is served as [].
	st := &redisstore.Status{User: who.User, State: redisstore.Offline, Sessions: []redisstore.Session{}, Version: u.version}
	if len(u.sessions) > 0 {
		st.State = redisstore.Online
		st.Sessions = make([]redisstore.Session, len(u.sessions))
		for i := range u.sessions {
			s := &u.sessions[i]
			h := s.host.Value()
			st.Sessions[i] = redisstore.Session{Session: s.id(), Device: s.device.Value(), DeviceID: s.deviceID(),
				Gateway: h.gateway, ConnectedAt: redisstore.Time{Time: millis(s.at)}, Epoch: h.epoch,
				Activity: status.ActivityOfCode(codeString(s.activity))}
		}
		st.Activity = status.Aggregate(st.Sessions)
		slices.SortFunc(st.Sessions, func(x, y redisstore.Session) int {
			return cmp.Or(x.ConnectedAt.Compare(y.ConnectedAt.Time), cmp.Compare(x.Session, y.Session))
		})
	}
	if u.custom != nil {
		code, text, _ := strings.Cut(*u.custom, string(sep))
		status, err := strconv.Atoi(code)
		if err != nil {
			return nil, fmt.Errorf("%s: decoding custom status %q: %w", u.key, *u.custom, err)
		}
		st.Custom = &redisstore.Custom{Status: status, Text: text}
	}
	if u.flags&seen != 0 {
		st.LastSeen = &redisstore.Time{Time: millis(u.lastSeen)}
	}
	if pv, ok := p.privacyOf(u); ok {
		st.Privacy = &pv
	}
	return st, nil
}
