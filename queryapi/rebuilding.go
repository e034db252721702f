package queryapi

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/presence-im/presence/redisstore"
)

// RebuildingHeader is the header of every lookup answered while the state
// in Redis is incomplete: its value is how many partitions of the state
// topics are not yet built (being rebuilt from Kafka, or never built). A
// lookup answered then may miss sessions, custom statuses or friends that
// the rebuild has not reached yet. Without the header, the state is
// complete, or it could not be read.
const RebuildingHeader = "Presence-Rebuilding"

// rebuildingTTL is how long a read of the rebuild count is reused.
const rebuildingTTL = time.Second

// rebuildingTimeout bounds one read of the rebuild count.
const rebuildingTimeout = time.Second

// rebuilding reads redisstore.Store.Rebuilding at most once per
// rebuildingTTL, so that a lookup costs no round trip more in the common
// case. Lookups that come while a read is under way use the previous one.
// A lookup whose own read finds the state not whole (a loss since the last
// read), or of another generation than the count's (a rebuild began
// since), reads it at once (fresh; see Server.statuses).
type rebuilding struct {
	store *redisstore.Store
	now   func() time.Time

	mu      sync.Mutex
	at      time.Time // of the last read; zero before the first
	n       int
	known   bool   // the last read succeeded
	gen     string // the state's generation, read just before n
	reading bool
}

// count returns how many partitions of the state topics are not yet
// built, and false when that is unknown (Redis did not answer).
func (r *rebuilding) count(ctx context.Context) (int, bool) {
	now := r.now()
	r.mu.Lock()
	if r.reading || !r.at.IsZero() && now.Sub(r.at) < rebuildingTTL {
		defer r.mu.Unlock()
		return r.n, r.known
	}
	r.reading = true
	r.mu.Unlock()
	n, known := r.read(ctx, now)
	r.mu.Lock()
	r.reading = false
	r.mu.Unlock()
	return n, known
}

// fresh reads the count now, whatever the age of the last read: a lookup
// that saw the state lose its data must not answer with a count read
// before the loss.
func (r *rebuilding) fresh(ctx context.Context) (int, bool) {
	return r.read(ctx, r.now())
}

// read reads the count, started at start, and keeps it unless a read
// started later has been kept meanwhile.
func (r *rebuilding) read(ctx context.Context, start time.Time) (int, bool) {
	// Detached from the request: a client that hangs up must not leave
	// the count unknown for every other lookup.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rebuildingTimeout)
	defer cancel()
	gen, err := r.store.Generation(ctx)
	var n int
	if err == nil {
		n, err = r.store.Rebuilding(ctx)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !start.Before(r.at) {
		r.at, r.n, r.known, r.gen = start, n, err == nil, gen
	}
	return n, err == nil
}

// current says whether a lookup that saw the state as seen may trust the
// count held: the state was whole, of the generation read with it.
func (r *rebuilding) current(seen redisstore.Observed) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return seen.Whole && seen.Generation == r.gen
}

// generation returns the state's generation, as read with the count
// (anew when older than rebuildingTTL), and false while it is unknown.
func (r *rebuilding) generation(ctx context.Context) (string, bool) {
	_, known := r.count(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen, known
}

// gauge is the value of presence_queryapi_rebuilding_partitions: the
// count, NaN while it is unknown.
func (r *rebuilding) gauge() float64 {
	n, ok := r.count(context.Background())
	if !ok {
		return math.NaN()
	}
	return float64(n)
}

// header is the value of RebuildingHeader, or "" when none is due.
func (r *rebuilding) header(ctx context.Context) string {
	if n, ok := r.count(ctx); ok && n > 0 {
		return strconv.Itoa(n)
	}
	return ""
}
