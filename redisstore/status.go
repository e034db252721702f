package redisstore

import (
	"context"

	"github.com/presence-im/presence/schemas/status"
)

// Status is what Presence knows of one user, in the shape the query API
// serves (package schemas/status, which writes its JSON).
type Status = status.Status

// States of a user.
const (
	Online  = status.Online
	Offline = status.Offline
)

// Session is one live connection of a user.
type Session = status.Session

// Custom is a status the user set.
type Custom = status.Custom

// Privacy is a user's privacy setting (the hash's field "p").
type Privacy = status.Privacy

// Statuses returns the status of each user of app, in the order asked, nil
// for a user Presence does not know. It reads each distinct user once, all
// in one pipelined round trip (see statusread.go), and its statuses share
// their memory: each has sessions of its own, and a caller may append to
// them.
func (s *Store) Statuses(ctx context.Context, app string, users []string) ([]*Status, error) {
	out, _, err := s.statuses(ctx, app, users, false, nil)
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
// the round trip (and, for a user whose slot was moving and who is read
// again at the master it moved to, to within that second one).
func (s *Store) StatusesIntact(ctx context.Context, app string, users []string) ([]*Status, Observed, error) {
	return s.statuses(ctx, app, users, true, nil)
}

// StatusBuffer is memory that lookups read statuses into, for a caller
// that makes many and reuses it (StatusesIntactInto): a lookup into a
// StatusBuffer overwrites the statuses of the one before. The zero value
// is ready; it serves one lookup at a time.
type StatusBuffer struct {
	batch statusBatch
	out   []*Status
}

// Holds says whether buf holds room for more than n statuses or
// sessions: a caller that pools buffers drops a larger one (a lookup of
// users with many sessions made it grow) rather than keep its memory.
func (buf *StatusBuffer) Holds(n int) bool {
	return cap(buf.batch.statuses) > n || cap(buf.batch.sessions) > n
}

// StatusesIntactInto is StatusesIntact reading into buf: the statuses it
// returns, and the slice of them, are buf's until the next lookup into
// it. A server that takes buffers from a pool allocates a fifth less per
// lookup (80 of 415 KB for 500 users in queryapi's BenchmarkStatusQuery).
func (s *Store) StatusesIntactInto(ctx context.Context, buf *StatusBuffer, app string, users []string) ([]*Status, Observed, error) {
	return s.statuses(ctx, app, users, true, buf)
}

// Status returns the status of one user, nil when unknown.
func (s *Store) Status(ctx context.Context, app, user string) (*Status, error) {
	st, err := s.Statuses(ctx, app, []string{user})
	if err != nil {
		return nil, err
	}
	return st[0], nil
}

// decodeStatus decodes the fields of user's hash, nil when it has none.
func decodeStatus(user string, h map[string]string) (*Status, error) {
	if len(h) == 0 {
		return nil, nil
	}
	var b statusBatch
	st := &Status{User: user}
	start := b.begin()
	for field, value := range h {
		if err := b.field(st, field, value); err != nil {
			return nil, err
		}
	}
	b.end(st, start)
	return st, nil
}
