package watch

// Reading presence.changes into the Feed: where to start, what to keep,
// what to drop, and whom to wake.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/status"
)

// startRetry is how long Run waits before asking again for a topic that
// does not exist yet (the processor creates it).
const startRetry = time.Second

// pollEvery bounds how long a poll waits for records, so that old
// changes are dropped on time when none come.
const pollEvery = time.Second

// recheckEvery is how often Run checks the partition count of
// presence.changes.
const recheckEvery = 30 * time.Second

// errRepartitioned: the partition count of presence.changes changed.
var errRepartitioned = errors.New("the partition count of the change feed changed")

// Run reads presence.changes, from the changes of the last Window on,
// until ctx ends. When the topic's partition count changes, users move
// to other partitions: it forgets what it kept, expires every cursor, and
// starts again with the new count.
func (f *Feed) Run(ctx context.Context) error {
	for {
		err := f.follow(ctx)
		if !errors.Is(err, errRepartitioned) {
			return err
		}
		f.log.Warn("the partition count of the change feed changed: every watch cursor expires", "topic", schemas.ChangesTopic)
	}
}

// follow reads presence.changes until ctx ends or its partition count
// changes (errRepartitioned).
func (f *Feed) follow(ctx context.Context) error {
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.cfg.Brokers...)}, f.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("watch: creating kafka client: %w", err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	starts, err := f.starts(ctx, adm)
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
	f.begin(parts)
	f.adm.Store(adm)
	defer f.adm.Store(nil)
	f.log.Info("following the change feed", "topic", schemas.ChangesTopic, "partitions", len(parts), "window", f.cfg.Window)
	checked := time.Now()
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
		if time.Since(checked) >= recheckEvery {
			checked = time.Now()
			ends, err := adm.ListEndOffsets(ctx, schemas.ChangesTopic)
			if err == nil && len(ends[schemas.ChangesTopic]) > 0 && len(ends[schemas.ChangesTopic]) != len(parts) {
				return errRepartitioned
			}
		}
	}
}

// begin starts keeping changes from parts. What was kept before (of
// another partition count) is forgotten, and the watches waiting for it
// expire.
func (f *Feed) begin(parts []part) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parts == nil {
		defer close(f.started)
	}
	f.parts, f.latest, f.kept = parts, map[string]entry{}, 0
	for _, ws := range f.waiting {
		for w := range ws {
			w.lost = true
			wake(w)
		}
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
		if prev, ok := f.latest[c.key]; !ok || prev.online != c.change.online {
			f.transitions.count(c.at, c.change.online)
		}
		f.latest[c.key] = entry{c.offset, c.change}
		for w := range f.waiting[c.key] {
			if wake(w) {
				woken++
			}
		}
	}
	for _, e := range ends {
		if int(e.partition) < len(f.parts) && e.next > f.parts[e.partition].next {
			f.parts[e.partition].next = e.next
		}
	}
	if len(ends) > 0 {
		close(f.read)
		f.read = make(chan struct{})
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
	out := Change{JSON: st.AppendJSON(nil), online: st.State != status.Offline}
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
			f.drop(i)
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
		f.drop(oldest)
	}
}

// drop drops the oldest change of p: cursors before its successor expire.
func (f *Feed) drop(partition int) {
	p := &f.parts[partition]
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
		// A watch of the user that has not read it yet never will.
		for w := range f.waiting[k.key] {
			if !w.lost && (partition >= len(w.next) || k.offset >= w.next[partition]) {
				w.lost = true
				wake(w)
			}
		}
	}
}

// wake signals w, and says whether it was not signalled already.
func wake(w *waiter) bool {
	select {
	case w.woken <- struct{}{}:
		return true
	default:
		return false
	}
}
