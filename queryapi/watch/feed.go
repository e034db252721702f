// Package watch serves long-poll watches: a client names users and a
// cursor, and is answered as soon as any of them changed after it.
//
// A Feed follows presence.changes (the processor writes one record per
// visible change of a user, in the partition of the user's sessions) and
// keeps, for a window of time and up to a count, the latest change of
// each user that changed, indexed by user. A watch reads that index
// under a lock and, when nothing is new, waits on a channel of its own
// registered under each user it watches; the Feed wakes exactly the
// watches of the users a fetched change concerns. No goroutine per watch
// polls, and no watch costs a Redis call per change: the change records
// carry the statuses.
//
// A Cursor holds the next offset of every partition, so any query API
// serves it, whatever instance gave it: one that has not read that far
// yet waits for the records as for new ones. A cursor older than what the
// Feed keeps (it started after it, or the window passed) is expired
// (ErrExpired), and so is one taken before the state in Redis was
// rebuilt (its generation differs): a rebuild announces nothing of the
// history it applies, so changes may have passed unannounced. The client
// then starts again without a cursor.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/status"
)

// Defaults of Config.
const (
	// DefaultWindow is how long a change is kept: a cursor older than
	// this may be expired.
	DefaultWindow = 10 * time.Minute
	// DefaultMaxChanges bounds the changes kept, whatever their age (a
	// few hundred bytes each).
	DefaultMaxChanges = 500_000
	// DefaultMaxWaiting bounds the watches waiting at once (a few
	// kilobytes each, more with many users).
	DefaultMaxWaiting = 100_000
)

// Errors of Wait.
var (
	// ErrExpired: the cursor is older than the changes kept, or of
	// another partition count.
	ErrExpired = errors.New("cursor expired")
	// ErrNotReady: the Feed has not started reading yet.
	ErrNotReady = errors.New("the change feed is not read yet")
	// ErrBusy: MaxWaiting watches wait already.
	ErrBusy = errors.New("too many watches waiting")
)

// Config configures a Feed. Zero values mean the documented defaults.
type Config struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// KafkaOpts add franz-go options to the consumer: TLS, SASL.
	KafkaOpts []kgo.Opt
	// Window is how long a change is kept (DefaultWindow); a Feed that
	// starts reads the changes of the last Window.
	Window time.Duration
	// MaxChanges is the most changes kept (DefaultMaxChanges).
	MaxChanges int
	// MaxWaiting is the most watches waiting at once
	// (DefaultMaxWaiting); more are refused (ErrBusy).
	MaxWaiting int
	// Now is the clock (time.Now) that the window is measured against:
	// the records' timestamps, which their producers' clocks set.
	Now func() time.Time
	// Logger receives the Feed's logs (slog.Default()).
	Logger *slog.Logger
	// Registerer receives the Feed's metrics (none when nil).
	Registerer prometheus.Registerer
}

// Feed is the recent changes of presence.changes, by user. Run reads
// them; Wait serves watches.
type Feed struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	// started is closed once Run has started reading.
	started chan struct{}
	// adm lists the ends of presence.changes while Run reads it.
	adm atomic.Pointer[kadm.Client]

	mu     sync.Mutex
	parts  []part // by partition; nil until Run has started reading
	latest map[string]entry
	kept   int
	// read is closed, and replaced, whenever the Feed has read further.
	read    chan struct{}
	waiting map[string]map[*waiter]struct{}
	waiters int
	// transitions counts users coming online and going offline.
	transitions transitions
	// draining is closed by Drain: waiting watches answer at once.
	draining chan struct{}
}

// part is what the Feed holds of one partition: every change from start
// to next (exclusive), the oldest first in fifo[head:].
type part struct {
	start, next int64
	fifo        []kept
	head        int
}

// kept is one change held, for its eviction.
type kept struct {
	offset int64
	key    string
	at     time.Time
}

// entry is the latest change of a user: where it is, and the change.
type entry struct {
	offset int64
	Change
}

// Change is the latest change of a user as the Feed keeps it: its Status
// as JSON, the truth; and, when the user has a privacy setting, the
// Status itself with it (Status.Privacy), for a reader to mask for its
// viewer (status.Privacy.Mask) rather than send JSON the viewer may not
// see.
type Change struct {
	JSON    []byte
	Private *status.Status
	// online says the user is online after the change.
	online bool
}

// waiter is a watch waiting for a change of its users, from next (its
// cursor's offsets). lost is set when a change of one of its users at or
// after next was dropped before the watch could read it.
type waiter struct {
	woken chan struct{}
	next  []int64
	lost  bool
}

// New checks cfg and registers the Feed's metrics.
func New(cfg Config) (*Feed, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("watch: no kafka brokers")
	}
	if cfg.Window < 0 || cfg.MaxChanges < 0 || cfg.MaxWaiting < 0 {
		return nil, fmt.Errorf("watch: negative window (%s), max changes (%d) or max waiting (%d)", cfg.Window, cfg.MaxChanges, cfg.MaxWaiting)
	}
	if cfg.MaxWaiting == 0 {
		cfg.MaxWaiting = DefaultMaxWaiting
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxChanges == 0 {
		cfg.MaxChanges = DefaultMaxChanges
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	f := &Feed{cfg: cfg, log: cfg.Logger.With("component", "watch"), latest: map[string]entry{},
		waiting: map[string]map[*waiter]struct{}{}, started: make(chan struct{}), draining: make(chan struct{}),
		read: make(chan struct{})}
	m, err := newMetrics(cfg.Registerer, f)
	if err != nil {
		return nil, fmt.Errorf("watch: registering metrics: %w", err)
	}
	f.metrics = m
	return f, nil
}

// start waits until Run has started reading, or ctx ends (ErrNotReady).
func (f *Feed) start(ctx context.Context) error {
	select {
	case <-f.started:
		return nil
	default:
	}
	select {
	case <-f.started:
		return nil
	case <-ctx.Done():
		return ErrNotReady
	}
}

// Drain answers the watches waiting, and those that come after, at once
// with what they have: for a server that shuts down, whose clients then
// go on from their cursors elsewhere.
func (f *Feed) Drain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.draining:
	default:
		close(f.draining)
	}
}

// Position returns the cursor of the changes read so far, of generation
// gen: a watch that starts from it misses no change read after. It waits
// for Run to start reading while ctx lasts, then, up to maxCatchUp, to
// have read what presence.changes holds now, so that the
// statuses a first watch reads next do not come again as changes (a
// Feed that has just started may be seconds behind).
func (f *Feed) Position(ctx context.Context, gen string) (Cursor, error) {
	if err := f.start(ctx); err != nil {
		return Cursor{}, err
	}
	catchUp, cancel := context.WithTimeout(ctx, maxCatchUp)
	f.catchUp(catchUp)
	cancel()
	f.mu.Lock()
	defer f.mu.Unlock()
	c := Cursor{Generation: gen, Next: make([]int64, len(f.parts))}
	for i, p := range f.parts {
		c.Next[i] = p.next
	}
	return c, nil
}

// Wait returns the latest change (a Change) of each user of
// keys (schemas.UserKey) that changed at or after c, as soon as one has,
// and the cursor after them; none, and the cursor of what was read, once
// ctx ends or the Feed drains (ErrNotReady if Run has not started reading
// by then). It returns ErrExpired when c was taken at another generation
// of the state than gen, the current one, or when changes after c may be
// missing from what the Feed keeps: before the watch waits, any change of
// c's partitions (of any user) dropped; while it waits, one of its users'.
// It returns ErrBusy when MaxWaiting watches wait already.
func (f *Feed) Wait(ctx context.Context, keys []string, c Cursor, gen string) ([]Change, Cursor, error) {
	if err := f.start(ctx); err != nil {
		return nil, Cursor{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Generation != gen {
		f.metrics.expired.Inc()
		return nil, Cursor{}, fmt.Errorf("%w: the state in redis was rebuilt since it was taken", ErrExpired)
	}
	if len(c.Next) != len(f.parts) {
		f.metrics.expired.Inc()
		return nil, Cursor{}, fmt.Errorf("%w: it names %d partitions, %s has %d", ErrExpired, len(c.Next), schemas.ChangesTopic, len(f.parts))
	}
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	partitions := make([]int32, len(keys))
	for i, k := range keys {
		p := int32(schemas.Partition([]byte(k), len(f.parts)))
		if c.Next[p] < f.parts[p].start {
			f.metrics.expired.Inc()
			return nil, Cursor{}, fmt.Errorf("%w: partition %d is kept from offset %d, the cursor is at %d", ErrExpired, p, f.parts[p].start, c.Next[p])
		}
		partitions[i] = p
	}
	if changes := f.collect(keys, partitions, c); len(changes) > 0 || ctx.Err() != nil || f.drained() {
		return changes, f.after(c), nil
	}
	if f.waiters >= f.cfg.MaxWaiting {
		return nil, Cursor{}, fmt.Errorf("%w: %d", ErrBusy, f.waiters)
	}
	w := &waiter{woken: make(chan struct{}, 1), next: c.Next}
	f.register(w, keys)
	defer f.unregister(w, keys)
	for {
		f.mu.Unlock()
		select {
		case <-w.woken:
		case <-ctx.Done():
		case <-f.draining:
		}
		f.mu.Lock()
		if w.lost {
			f.metrics.expired.Inc()
			return nil, Cursor{}, fmt.Errorf("%w: a change of a watched user was dropped before it was read (the window or the count of changes kept passed, or the feed's partitions changed)", ErrExpired)
		}
		// A change the Feed reads before the cursor (another query API
		// gave it, further on) wakes the watch too: it waits on.
		if changes := f.collect(keys, partitions, c); len(changes) > 0 || ctx.Err() != nil || f.drained() {
			return changes, f.after(c), nil
		}
	}
}

// maxCatchUp bounds how long Position waits for the Feed to catch up.
const maxCatchUp = 5 * time.Second

// catchUp waits, while ctx lasts, until the Feed has read every
// partition up to its end now.
func (f *Feed) catchUp(ctx context.Context) {
	adm := f.adm.Load()
	if adm == nil {
		return
	}
	ends, err := adm.ListEndOffsets(ctx, schemas.ChangesTopic)
	if err != nil {
		return // the next answer may repeat a status: its version tells
	}
	for {
		f.mu.Lock()
		behind, read := false, f.read
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && int(o.Partition) < len(f.parts) && f.parts[o.Partition].next < o.Offset {
				behind = true
			}
		})
		f.mu.Unlock()
		if !behind {
			return
		}
		select {
		case <-read:
		case <-ctx.Done():
			return
		}
	}
}

// drained says whether Drain was called.
func (f *Feed) drained() bool {
	select {
	case <-f.draining:
		return true
	default:
		return false
	}
}

// register adds a waiter to the users of keys. Call it with f.mu held.
func (f *Feed) register(w *waiter, keys []string) {
	f.waiters++
	f.metrics.waiting.Inc()
	for _, k := range keys {
		ws := f.waiting[k]
		if ws == nil {
			ws = map[*waiter]struct{}{}
			f.waiting[k] = ws
		}
		ws[w] = struct{}{}
	}
}

// unregister removes a waiter from the users of keys. Call it with f.mu
// held.
func (f *Feed) unregister(w *waiter, keys []string) {
	f.waiters--
	f.metrics.waiting.Dec()
	for _, k := range keys {
		ws := f.waiting[k]
		delete(ws, w)
		if len(ws) == 0 {
			delete(f.waiting, k)
		}
	}
}

// collect returns the latest change of each of keys at or after c. Call
// it with f.mu held.
func (f *Feed) collect(keys []string, partitions []int32, c Cursor) []Change {
	var out []Change
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		if e, ok := f.latest[k]; ok && e.offset >= c.Next[partitions[i]] && !seen[k] {
			seen[k] = true
			out = append(out, e.Change)
		}
	}
	return out
}

// after returns the cursor past what the Feed has read and past c. Call
// it with f.mu held.
func (f *Feed) after(c Cursor) Cursor {
	next := Cursor{Generation: c.Generation, Next: make([]int64, len(f.parts))}
	for i, p := range f.parts {
		next.Next[i] = max(p.next, c.Next[i])
	}
	return next
}
