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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
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
)

// Errors of Wait.
var (
	// ErrExpired: the cursor is older than the changes kept, or of
	// another partition count.
	ErrExpired = errors.New("cursor expired")
	// ErrNotReady: the Feed has not started reading yet.
	ErrNotReady = errors.New("the change feed is not read yet")
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
	// Now is the clock (time.Now).
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

	mu      sync.Mutex
	parts   []part // by partition; nil until Run has started reading
	latest  map[string]entry
	kept    int
	waiting map[string][]*waiter
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
}

// waiter is a watch waiting for a change of its users.
type waiter struct{ woken chan struct{} }

// New checks cfg and registers the Feed's metrics.
func New(cfg Config) (*Feed, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("watch: no kafka brokers")
	}
	if cfg.Window < 0 || cfg.MaxChanges < 0 {
		return nil, fmt.Errorf("watch: negative window (%s) or max changes (%d)", cfg.Window, cfg.MaxChanges)
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
		waiting: map[string][]*waiter{}, started: make(chan struct{})}
	m, err := newMetrics(cfg.Registerer, f)
	if err != nil {
		return nil, fmt.Errorf("watch: registering metrics: %w", err)
	}
	f.metrics = m
	return f, nil
}

// startRetry is how long Run waits before asking again for a topic that
// does not exist yet (the processor creates it).
const startRetry = time.Second

// pollEvery bounds how long a poll waits for records, so that old
// changes are dropped on time when none come.
const pollEvery = time.Second

// Run reads presence.changes, from the changes of the last Window on,
// until ctx ends.
func (f *Feed) Run(ctx context.Context) error {
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.cfg.Brokers...)}, f.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("watch: creating kafka client: %w", err)
	}
	defer admin.Close()
	starts, err := f.starts(ctx, kadm.NewClient(admin))
	if err != nil || ctx.Err() != nil {
		return err
	}
	offsets := make(map[int32]kgo.Offset, len(starts))
	parts := make([]part, len(starts))
	for p, o := range starts {
		offsets[int32(p)] = kgo.NewOffset().At(o)
		parts[p] = part{start: o, next: o}
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(f.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.ChangesTopic: offsets}),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, f.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("watch: creating kafka client: %w", err)
	}
	defer cl.Close()
	f.mu.Lock()
	f.parts = parts
	f.mu.Unlock()
	close(f.started)
	f.log.Info("following the change feed", "topic", schemas.ChangesTopic, "partitions", len(parts), "window", f.cfg.Window)
	for {
		poll, cancel := context.WithTimeout(ctx, pollEvery)
		fetches := cl.PollFetches(poll)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				f.log.Warn("fetching changes failed", "topic", topic, "partition", partition, "err", err)
			}
		})
		f.apply(fetches)
	}
}

// starts returns, per partition of presence.changes, the offset of its
// first change of the last Window, waiting for the topic to exist.
func (f *Feed) starts(ctx context.Context, adm *kadm.Client) ([]int64, error) {
	waited := false
	for {
		listed, err := adm.ListOffsetsAfterMilli(ctx, f.cfg.Now().Add(-f.cfg.Window).UnixMilli(), schemas.ChangesTopic)
		if err == nil {
			err = listed.Error()
		}
		if err == nil && len(listed[schemas.ChangesTopic]) > 0 {
			out := make([]int64, len(listed[schemas.ChangesTopic]))
			for p, o := range listed[schemas.ChangesTopic] {
				if int(p) >= len(out) || p < 0 {
					return nil, fmt.Errorf("watch: %s lists partition %d of %d", schemas.ChangesTopic, p, len(out))
				}
				out[p] = o.Offset
			}
			return out, nil
		}
		if !waited {
			f.log.Info("waiting for the change feed's topic (the processor creates it)", "topic", schemas.ChangesTopic, "err", err)
			waited = true
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(startRetry):
		}
	}
}

// apply keeps the changes fetched, wakes the watches of their users, and
// drops what is older than the window or over the count.
func (f *Feed) apply(fetches kgo.Fetches) {
	start := time.Now()
	type decoded struct {
		partition int32
		offset    int64
		key       string
		change    Change
		at        time.Time
	}
	var changes []decoded
	var ends []struct {
		partition int32
		next      int64
	}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		for _, r := range fp.Records {
			change, err := decode(r)
			if err != nil {
				f.metrics.invalid.Inc()
				f.log.Warn("a change record does not decode; skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
				continue
			}
			changes = append(changes, decoded{r.Partition, r.Offset, string(r.Key), change, r.Timestamp})
		}
		ends = append(ends, struct {
			partition int32
			next      int64
		}{fp.Partition, fp.Records[len(fp.Records)-1].Offset + 1})
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	woken := 0
	for _, c := range changes {
		if int(c.partition) >= len(f.parts) {
			continue // a partition added since the start: read after a restart
		}
		p := &f.parts[c.partition]
		p.fifo = append(p.fifo, kept{c.offset, c.key, c.at})
		f.kept++
		f.latest[c.key] = entry{c.offset, c.change}
		for _, w := range f.waiting[c.key] {
			select {
			case w.woken <- struct{}{}:
				woken++
			default: // woken already
			}
		}
	}
	for _, e := range ends {
		if int(e.partition) < len(f.parts) && e.next > f.parts[e.partition].next {
			f.parts[e.partition].next = e.next
		}
	}
	f.evict()
	f.metrics.changes.Add(float64(len(changes)))
	f.metrics.wakeups.Add(float64(woken))
	if len(changes) > 0 {
		f.metrics.applySeconds.Observe(time.Since(start).Seconds())
	}
}

// decode returns the Change of a change record, checked against its
// key.
func decode(r *kgo.Record) (Change, error) {
	var c pb.StatusChange
	if err := proto.Unmarshal(r.Value, &c); err != nil {
		return Change{}, err
	}
	if c.Status == nil || string(r.Key) != schemas.UserKey(c.App, c.Status.User) {
		return Change{}, fmt.Errorf("key %q is not the change's user", r.Key)
	}
	st := status.FromProto(c.Status)
	out := Change{JSON: st.AppendJSON(nil)}
	if c.Privacy != nil {
		p := status.PrivacyFromProto(c.Privacy)
		if !p.IsDefault() {
			st.Privacy = &p
			out.Private = &st
		}
	}
	return out, nil
}

// evict drops the changes older than the window, then the oldest while
// more than MaxChanges are kept. Call it with f.mu held.
func (f *Feed) evict() {
	old := f.cfg.Now().Add(-f.cfg.Window)
	for i := range f.parts {
		p := &f.parts[i]
		for p.head < len(p.fifo) && p.fifo[p.head].at.Before(old) {
			f.drop(p)
		}
	}
	for f.kept > f.cfg.MaxChanges {
		oldest := -1
		for i := range f.parts {
			p := &f.parts[i]
			if p.head < len(p.fifo) && (oldest < 0 || p.fifo[p.head].at.Before(f.parts[oldest].fifo[f.parts[oldest].head].at)) {
				oldest = i
			}
		}
		f.drop(&f.parts[oldest])
	}
}

// drop drops the oldest change of p: cursors before its successor expire.
func (f *Feed) drop(p *part) {
	k := p.fifo[p.head]
	p.fifo[p.head] = kept{}
	p.head++
	if p.head > len(p.fifo)/2 && p.head > 1024 { // reuse the memory in front
		p.fifo = append(p.fifo[:0], p.fifo[p.head:]...)
		p.head = 0
	}
	p.start = k.offset + 1
	f.kept--
	if e, ok := f.latest[k.key]; ok && e.offset == k.offset {
		delete(f.latest, k.key)
	}
}

// start waits until Run has started reading, or ctx ends (ErrNotReady).
func (f *Feed) start(ctx context.Context) error {
	select {
	case <-f.started:
		return nil
	case <-ctx.Done():
		return ErrNotReady
	}
}

// Position returns the cursor of the changes read so far, of generation
// gen: a watch that starts from it misses no change read after. It waits
// for Run to start reading while ctx lasts.
func (f *Feed) Position(ctx context.Context, gen string) (Cursor, error) {
	if err := f.start(ctx); err != nil {
		return Cursor{}, err
	}
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
// ctx ends (ErrNotReady if Run has not started reading by then). It
// returns ErrExpired when changes after c may be missing
// from what the Feed keeps, before or while it waits, or when c was taken
// at another generation of the state than gen, the current one.
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
	partitions := make([]int32, len(keys))
	for i, k := range keys {
		partitions[i] = int32(schemas.Partition([]byte(k), len(f.parts)))
	}
	var w *waiter
	defer func() {
		if w != nil {
			f.unregister(w, keys)
		}
	}()
	for {
		for _, p := range partitions {
			if c.Next[p] < f.parts[p].start {
				f.metrics.expired.Inc()
				return nil, Cursor{}, fmt.Errorf("%w: partition %d is kept from offset %d, the cursor is at %d", ErrExpired, p, f.parts[p].start, c.Next[p])
			}
		}
		// A change the Feed reads before the cursor (another query API
		// gave it, further on) wakes the watch too: it waits on.
		if changes := f.collect(keys, partitions, c); len(changes) > 0 || ctx.Err() != nil {
			return changes, f.after(c), nil
		}
		if w == nil {
			w = &waiter{woken: make(chan struct{}, 1)}
			for _, k := range keys {
				f.waiting[k] = append(f.waiting[k], w)
			}
			f.metrics.waiting.Inc()
		}
		f.mu.Unlock()
		select {
		case <-w.woken:
		case <-ctx.Done():
		}
		f.mu.Lock()
	}
}

// unregister removes a waiter from the users of keys. Call it with f.mu
// held.
func (f *Feed) unregister(w *waiter, keys []string) {
	f.metrics.waiting.Dec()
	for _, k := range keys {
		ws := f.waiting[k]
		for i, x := range ws {
			if x == w {
				ws[i] = ws[len(ws)-1]
				ws[len(ws)-1] = nil
				ws = ws[:len(ws)-1]
				break
			}
		}
		if len(ws) == 0 {
			delete(f.waiting, k)
		} else {
			f.waiting[k] = ws
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
