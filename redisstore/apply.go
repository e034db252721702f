package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Change is one session record to apply to a user's state.
type Change struct {
	App, User, Session string
	// Connect is true for a connect, false for a disconnect.
	Connect bool
	// Device, DeviceID and Gateway describe a connected session.
	Device, DeviceID, Gateway string
	// At is when the gateway saw the event.
	At time.Time
	// Version is the record's offset in its partition. A change whose
	// version is not above the user's changes nothing.
	Version int64
}

// Apply applies changes in one pipelined round trip, in order, and reports
// how many of them were newer than the state (the others were duplicates or
// replays and changed nothing).
func (s *Store) Apply(ctx context.Context, changes []Change) (applied int, err error) {
	if len(changes) == 0 {
		return 0, nil
	}
	cmds, err := s.runApply(ctx, changes)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis lost its script cache (a restart or SCRIPT FLUSH):
		// load it again and re-run; re-applying is harmless.
		if err := s.apply.Load(ctx, s.rdb).Err(); err != nil {
			return 0, fmt.Errorf("loading apply script: %w", err)
		}
		cmds, err = s.runApply(ctx, changes)
	}
	if err != nil {
		return 0, fmt.Errorf("applying %d changes: %w", len(changes), err)
	}
	for _, c := range cmds {
		if n, _ := c.Int(); n == 1 {
			applied++
		}
	}
	return applied, nil
}

func (s *Store) runApply(ctx context.Context, changes []Change) ([]*redis.Cmd, error) {
	ttl := strconv.FormatInt(s.offlineTTL.Milliseconds(), 10)
	cmds := make([]*redis.Cmd, len(changes))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range changes {
			op, value := "d", ""
			if c.Connect {
				op, value = "c", encodeSession(c)
			}
			cmds[i] = s.apply.EvalSha(ctx, p, []string{s.userKey(c.App, c.User)},
				c.Version, op, sessionField(c.Session), value, c.At.UnixMilli(), ttl)
		}
		return nil
	})
	return cmds, err
}

// A session's value is its device, device id, gateway and connect time,
// separated by the unit separator, which no valid id contains.
const sep = "\x1f"

func sessionField(session string) string { return "s" + session }

func encodeSession(c Change) string {
	return c.Device + sep + c.DeviceID + sep + c.Gateway + sep + strconv.FormatInt(c.At.UnixMilli(), 10)
}

func decodeSession(field, value string) (Session, error) {
	parts := strings.Split(value, sep)
	if len(parts) != 4 {
		return Session{}, fmt.Errorf("decoding session %q: %d parts, want 4", field, len(parts))
	}
	ms, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return Session{}, fmt.Errorf("decoding session %q: %w", field, err)
	}
	return Session{
		Session:     field[1:],
		Device:      parts[0],
		DeviceID:    parts[1],
		Gateway:     parts[2],
		ConnectedAt: millis(ms),
	}, nil
}
