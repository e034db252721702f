package state

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/status"
)

// A partition assigned can be restored from Redis rather than from its
// records: each user's hash and its key's expiry (redisstore.ScanUsers)
// hold all that the records left of the user but what its audience was
// told, which a restore counts as told, as a quiet rebuild does (history
// is not news). Load rebuilds the user the records would have built.

// errLoad wraps what Load finds wrong in a hash.
var errLoad = errors.New("unreadable user hash")

// Load restores a user from its Redis hash (field -> value, see image.go)
// and its key's expiry (zero: none): its version, sessions (indexed by
// gateway), custom status and last seen, its deadline while offline, and
// what its audience was told, counted as what it shows. It writes nothing
// (the user is not dirty). A user offline whose deadline has passed is
// not loaded: Redis is expiring its key. Loading a user the partition
// knows already is an error; so is a hash that is not one the image of a
// user makes (apply.lua's "a" field is allowed and ignored).
func (p *Partition) Load(app, name string, fields map[string]string, expireAt time.Time) error {
	key := schemas.UserKey(app, name)
	if p.users[key] != nil {
		return fmt.Errorf("loading %s: %w: already known", key, errLoad)
	}
	u, err := parseUser(key, fields)
	if err != nil {
		return fmt.Errorf("loading %s: %w", key, err)
	}
	pv, hasPrivacy := status.Privacy{}, false
	if v, ok := fields["p"]; ok {
		if pv, err = status.DecodePrivacy(v); err != nil {
			return fmt.Errorf("loading %s: %w: %w", key, errLoad, err)
		}
		hasPrivacy = true
	}
	if len(u.sessions) == 0 {
		if expireAt.IsZero() {
			return fmt.Errorf("loading %s: %w: offline and without expiry", key, errLoad)
		}
		if expireAt.UnixMilli() <= p.now().UnixMilli() {
			return nil // forgotten
		}
	}
	p.users[key] = u
	if hasPrivacy {
		p.privacy[u] = pv
		u.flags |= private
	}
	for i := range u.sessions {
		p.index(u, u.sessions[i].gateway())
	}
	if len(u.sessions) == 0 {
		p.expireAt(u, expireAt.UnixMilli())
	}
	p.setAnnounced(u, sameAsVisible)
	return nil
}

// parseUser returns the user of key a hash holds.
func parseUser(key string, fields map[string]string) (*user, error) {
	u := &user{key: key, version: -1}
	for f, v := range fields {
		var err error
		switch {
		case f == "v":
			u.version, err = strconv.ParseInt(v, 10, 64)
		case f == "c":
			if _, _, ok := strings.Cut(v, string(sep)); !ok {
				err = errors.New("no separator")
			}
			u.custom = &v
		case f == "l":
			u.lastSeen, err = strconv.ParseInt(v, 10, 64)
			u.flags |= seen
		case f == "a": // apply.lua's: what was announced
		case f == "p": // the privacy setting: Load's
		case strings.HasPrefix(f, "s") && len(f) > 1:
			var s session
			s, err = parseSession(f[1:], v)
			u.sessions = append(u.sessions, s)
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			return nil, fmt.Errorf("%w: field %q: %w", errLoad, f, err)
		}
	}
	if u.version < 0 {
		return nil, fmt.Errorf("%w: no version", errLoad)
	}
	return u, nil
}

// parseSession returns the session id whose value in the hash is v (see
// session.encode).
func parseSession(id, v string) (session, error) {
	parts := strings.Split(v, string(sep))
	if len(parts) != 5 && len(parts) != 6 {
		return session{}, fmt.Errorf("%d parts, want 5 or 6", len(parts))
	}
	at, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return session{}, err
	}
	var activity byte
	if len(parts) == 6 {
		if activity, err = parseActivityCode(parts[5]); err != nil {
			return session{}, err
		}
	}
	return newSession(id, parts[1], parts[0], parts[2], parts[4], at, activity), nil
}

// DropDirty forgets which users changed since the last TakeDirty, without
// making their images: for records restored from the topic that Redis
// holds already (those before the partition's checkpoint), whose images
// would be thrown away.
func (p *Partition) DropDirty() {
	p.resetDirty()
}
