package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
)

// Status is what Presence knows of one user, in the shape the query API
// serves.
type Status struct {
	User     string    `json:"user"`
	State    string    `json:"state"`
	Sessions []Session `json:"sessions"`
	Custom   *Custom   `json:"custom"`
	// LastSeen is when the user's last session ended (the disconnect that
	// left no session live); nil while online.
	LastSeen *Time `json:"last_seen"`
	// Version is the offset of the latest record applied to the user; a
	// client can drop a status older than one it already has.
	Version int64 `json:"version"`
}

// States of a user.
const (
	Online  = "online"
	Offline = "offline"
)

// Session is one live connection of a user.
type Session struct {
	Session     string `json:"session"`
	Device      string `json:"device"`
	DeviceID    string `json:"device_id"`
	Gateway     string `json:"gateway"`
	ConnectedAt Time   `json:"connected_at"`
	// Epoch is the boot epoch of the gateway; not served.
	Epoch string `json:"-"`
}

// Custom is a status the user set.
type Custom struct {
	Status int    `json:"status"`
	Text   string `json:"text"`
}

// Statuses returns the status of each user of app, in the order asked, nil
// for a user Presence does not know. It reads each distinct user once, all
// in one pipelined round trip.
func (s *Store) Statuses(ctx context.Context, app string, users []string) ([]*Status, error) {
	out, _, err := s.statuses(ctx, app, users, false)
	return out, err
}

// Observed is what a lookup's own round trip saw of the state.
type Observed struct {
	// Whole is false when the checkpoints of presence.sessions are
	// missing (Redis lost its data, or was never built) or, on a Redis
	// Cluster, a master's marker found before is gone (that master lost
	// its data; see masters.go).
	Whole bool
	// Generation is the state's generation then (see Store.Generation).
	Generation string
}

// StatusesIntact is Statuses, and what the same round trip saw of the
// state. A lookup that finds it not whole, or of another generation than
// the rebuild count it holds was read with, asks Rebuilding at once
// rather than trusting a count read before a loss or a rebuild began. On
// a single Redis the generation is read after the statuses, so a lookup
// that finds the old one read nothing a rebuild had begun to delete; on a
// cluster the masters answer in parallel, so that holds only to within
// the round trip.
func (s *Store) StatusesIntact(ctx context.Context, app string, users []string) ([]*Status, Observed, error) {
	return s.statuses(ctx, app, users, true)
}

// statuses reads the statuses of users, and with check what the state
// was (see StatusesIntact); without, it reports it whole.
func (s *Store) statuses(ctx context.Context, app string, users []string, check bool) ([]*Status, Observed, error) {
	if len(users) == 0 {
		return []*Status{}, Observed{Whole: true}, nil
	}
	reads := make(map[string]*redis.MapStringStringCmd, len(users))
	var built *redis.IntCmd
	var markers []*redis.IntCmd
	var generation *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, u := range users {
			if _, ok := reads[u]; !ok {
				reads[u] = p.HGetAll(ctx, s.userKey(app, u))
			}
		}
		if !check {
			return nil
		}
		built = p.Exists(ctx, s.checkpointKey(schemas.SessionsTopic))
		if tags := s.present.Load(); tags != nil {
			for _, tag := range *tags {
				markers = append(markers, p.Exists(ctx, s.markerKey(tag)))
			}
		}
		generation = p.Get(ctx, s.generationKey())
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, Observed{}, fmt.Errorf("reading %d statuses: %w", len(reads), err)
	}
	seen := Observed{Whole: !check || built.Val() == 1}
	for _, m := range markers {
		seen.Whole = seen.Whole && m.Val() == 1
	}
	if check {
		seen.Generation = generation.Val()
	}
	decoded := make(map[string]*Status, len(reads))
	for u, cmd := range reads {
		st, err := decodeStatus(u, cmd.Val())
		if err != nil {
			return nil, Observed{}, err
		}
		decoded[u] = st
	}
	out := make([]*Status, len(users))
	for i, u := range users {
		out[i] = decoded[u]
	}
	return out, seen, nil
}

// Status returns the status of one user, nil when unknown.
func (s *Store) Status(ctx context.Context, app, user string) (*Status, error) {
	st, err := s.Statuses(ctx, app, []string{user})
	if err != nil {
		return nil, err
	}
	return st[0], nil
}

func decodeStatus(user string, h map[string]string) (*Status, error) {
	if len(h) == 0 {
		return nil, nil
	}
	st := &Status{User: user, Sessions: []Session{}}
	for field, value := range h {
		switch {
		case field == "v":
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("decoding version of %q: %w", user, err)
			}
			st.Version = v
		case field == "c":
			custom, err := decodeCustom(value)
			if err != nil {
				return nil, fmt.Errorf("user %q: %w", user, err)
			}
			st.Custom = custom
		case field == "l":
			ms, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("decoding last seen of %q: %w", user, err)
			}
			t := millis(ms)
			st.LastSeen = &t
		case field[0] == 's':
			sess, err := decodeSession(field, value)
			if err != nil {
				return nil, fmt.Errorf("user %q: %w", user, err)
			}
			st.Sessions = append(st.Sessions, sess)
		}
	}
	st.State = Offline
	if len(st.Sessions) > 0 {
		st.State = Online
	}
	slices.SortFunc(st.Sessions, func(a, b Session) int {
		return cmp.Or(a.ConnectedAt.Compare(b.ConnectedAt.Time), cmp.Compare(a.Session, b.Session))
	})
	return st, nil
}
