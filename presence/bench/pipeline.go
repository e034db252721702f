package bench

// The project's side: running the processor, publishing through the
// gateway library, waiting until Redis holds what was published.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

const (
	// app is the app id of every user of the run.
	app = "bench"
	// publishBatch is how many events one Publish carries when measured;
	// setupBatch, when only filling the topics.
	publishBatch = 100
	setupBatch   = 1000
	// stallLimit is how long a wait for the processor goes without
	// progress before the run gives up.
	stallLimit = time.Minute
	// stopLimit bounds how long a processor takes to stop.
	stopLimit = 30 * time.Second
)

// userID is prefix and i in seven digits at least: the ids of a run sort
// as they are numbered.
func userID(prefix string, i int) string {
	n := strconv.Itoa(i)
	if len(n) < 7 {
		n = "0000000"[len(n):] + n
	}
	return prefix + n
}

// running is a processor running in the background.
type running struct {
	p      *processor.Processor
	cancel context.CancelFunc
	ended  chan struct{}
	err    error
}

// startProcessor runs a processor of the run's Redis and Kafka, configured
// by cfg besides.
func (r *runner) startProcessor(ctx context.Context, k *kafka, cfg processor.Config) (*running, error) {
	cfg.Brokers, cfg.KafkaOpts, cfg.Store, cfg.Partitions, cfg.Logger = k.brokers, k.opts, r.env.store(), r.cfg.Partitions, r.log
	p, err := processor.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	run := &running{p: p, cancel: cancel, ended: make(chan struct{})}
	go func() { run.err = p.Run(ctx); close(run.ended) }()
	return run, nil
}

// waitCaughtUp waits until the processor has joined its group and caught
// up with what its partitions held when assigned.
func (run *running) waitCaughtUp(ctx context.Context) error {
	deadline := time.Now().Add(stallLimit)
	for run.p.CaughtUp(ctx) != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the processor did not catch up within %s: %w", stallLimit, run.p.CaughtUp(ctx))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-run.ended:
			return fmt.Errorf("the processor stopped: %w", run.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// stop stops the processor and waits for it.
func (run *running) stop() error {
	run.cancel()
	select {
	case <-run.ended:
		return run.err
	case <-time.After(stopLimit):
		return fmt.Errorf("the processor did not stop within %s", stopLimit)
	}
}

// applied returns how many offsets of ends the checkpoints of topic in
// Redis cover: the records the processor has applied (and announced).
func applied(ctx context.Context, store *redisstore.Store, topic string, ends map[int32]int64) (int64, error) {
	cp, err := store.Checkpoint(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for p, end := range ends {
		n += min(cp.Next[p], end)
	}
	return n, nil
}

// waitApplied waits until the checkpoints of topic in Redis reach ends:
// the processor has applied every record before them, and made their
// announcements. It gives up when nothing moves for stallLimit.
func (r *runner) waitApplied(ctx context.Context, run *running, topic string, ends map[int32]int64) error {
	store := r.env.store()
	var total int64
	for _, end := range ends {
		total += end
	}
	last, lastAt := int64(-1), time.Now()
	for {
		n, err := applied(ctx, store, topic, ends)
		if err != nil {
			return err
		}
		if n >= total {
			return nil
		}
		if n != last {
			last, lastAt = n, time.Now()
		} else if time.Since(lastAt) > stallLimit {
			return fmt.Errorf("the processor applied nothing for %s, at %d of %d records of %s", stallLimit, n, total, topic)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-run.ended:
			return fmt.Errorf("the processor stopped at %d of %d records of %s: %w", n, total, topic, run.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// publish publishes the events of lanes goroutines with send
// (gateway.Publisher's Publish, or the raw producer's), each lane's in
// order, batch at a time, counting them in done. Each send waits for
// Kafka's acknowledgement, so a lane's events are written in order: give
// all the events of a user to one lane.
func publish(ctx context.Context, send func(context.Context, ...gateway.Event) error, lanes, size int, events func(lane int) iter.Seq[gateway.Event], done *atomic.Int64) error {
	g, ctx := errgroup.WithContext(ctx)
	for lane := range lanes {
		g.Go(func() error {
			batch := make([]gateway.Event, 0, size)
			flush := func() error {
				if len(batch) == 0 {
					return nil
				}
				if err := send(ctx, batch...); err != nil {
					return err
				}
				done.Add(int64(len(batch)))
				batch = batch[:0]
				return nil
			}
			for e := range events(lane) {
				if batch = append(batch, e); len(batch) == size {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			return flush()
		})
	}
	return g.Wait()
}

// keepLease heartbeats for pub until the returned function is called, so
// that the processor never ends its sessions as those of a lost gateway.
//
// leaseAfterReady: ingest and memory start heartbeating once their
// processor has caught up, not before, because a processor that finds
// heartbeats on presence.gateways when it joins takes about 5 s more to
// catch up (franz-go's default fetch max wait: its partitions of
// presence.gateways start at their beginning, which must be looked up,
// while a first fetch of the other partitions waits for data). That is
// setup, not what is measured; and a gateway that never heartbeats keeps
// its sessions for the processor's gateway lease (30 s) after their
// connect, far longer than the wait for the first heartbeat.
func keepLease(ctx context.Context, pub *gateway.Publisher) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = pub.KeepLease(ctx, func(error) {})
	}()
	return func() { cancel(); <-done }
}

// newPublisher returns a gateway publisher of the scenario's Kafka.
func newPublisher(k *kafka, id string) (*gateway.Publisher, error) {
	pub, err := gateway.New(gateway.Brokers(k.brokers...), gateway.ID(id), gateway.KafkaOpts(k.opts...))
	if err != nil {
		return nil, fmt.Errorf("creating the gateway publisher: %w", err)
	}
	return pub, nil
}

// statusesOf reads the statuses of users, 1000 per round trip, and calls
// each with every one (nil for a user Redis does not know).
func statusesOf(ctx context.Context, store *redisstore.Store, users iter.Seq[string], each func(user string, st *redisstore.Status)) error {
	chunk := make([]string, 0, 1000)
	read := func() error {
		if len(chunk) == 0 {
			return nil
		}
		sts, err := store.Statuses(ctx, app, chunk)
		if err != nil {
			return err
		}
		for i, st := range sts {
			each(chunk[i], st)
		}
		chunk = chunk[:0]
		return nil
	}
	for u := range users {
		if chunk = append(chunk, u); len(chunk) == cap(chunk) {
			if err := read(); err != nil {
				return err
			}
		}
	}
	return read()
}

// numbered yields userID(prefix, i) for i in [from, to).
func numbered(prefix string, from, to int) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := from; i < to; i++ {
			if !yield(userID(prefix, i)) {
				return
			}
		}
	}
}

// partitionOf is the partition of the user's records.
func partitionOf(user string, partitions int32) int32 {
	return int32(schemas.Partition([]byte(schemas.UserKey(app, user)), int(partitions)))
}

// errMismatch is wrapped by the error of a scenario whose work did not
// leave what it should have: a measurement of wrong work is no
// measurement.
var errMismatch = errors.New("the state does not show the work measured")

// firstError keeps the first error set.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
