package friendimport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/queryapi"
)

// Defaults of Config.
const (
	// DefaultMaxBuffered bounds the records produced and not yet
	// acknowledged by Kafka.
	DefaultMaxBuffered = 10_000
	// DefaultDeliveryTimeout is how long a record may wait for Kafka
	// before the import fails, rather than hang on an unreachable cluster.
	DefaultDeliveryTimeout = time.Minute
	// DefaultProgressEvery is how often progress is reported.
	DefaultProgressEvery = time.Second
)

// Config configures Import. Zero values mean the documented defaults.
type Config struct {
	// Brokers are the Kafka seed brokers. Required. The friends topic
	// must exist (the processor creates it).
	Brokers []string
	// KafkaOpts add franz-go options to the producer: TLS, SASL, or a
	// RecordDeliveryTimeout other than DefaultDeliveryTimeout.
	KafkaOpts []kgo.Opt
	// MaxBuffered bounds the records in flight (DefaultMaxBuffered).
	MaxBuffered int
	// Progress receives a progress line about every ProgressEvery
	// (DefaultProgressEvery); nil means none.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Now is the clock of the records' timestamps (time.Now).
	Now func() time.Time
}

// Summary is what an import wrote.
type Summary struct {
	// Edges is how many friendships were written whole, Records how many
	// records Kafka acknowledged (two per friendship).
	Edges, Records int
	Elapsed        time.Duration
}

func (s Summary) String() string {
	return fmt.Sprintf("%d edges (%d records) in %.1fs, %.0f edges/s",
		s.Edges, s.Records, s.Elapsed.Seconds(), rate(s.Edges, s.Elapsed))
}

// Import writes both halves of every friendship of in to presence.friends,
// at most cfg.MaxBuffered records in flight, and waits until Kafka has
// acknowledged them all. It stops at the first record Kafka refuses, or
// when ctx ends; what was written stays, and importing the same list again
// completes it.
func Import(ctx context.Context, cfg Config, in *Input) (Summary, error) {
	if len(cfg.Brokers) == 0 {
		return Summary{}, errors.New("importing friends: no kafka brokers")
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = DefaultMaxBuffered
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = DefaultProgressEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := append(queryapi.ProducerOpts(cfg.Brokers),
		kgo.MaxBufferedRecords(cfg.MaxBuffered),
		kgo.RecordDeliveryTimeout(DefaultDeliveryTimeout))
	cl, err := kgo.NewClient(append(opts, cfg.KafkaOpts...)...)
	if err != nil {
		return Summary{}, fmt.Errorf("importing friends: creating kafka client: %w", err)
	}
	defer cl.Close()

	start := time.Now()
	var t tally
	stop := t.report(cfg.Progress, cfg.ProgressEvery, in.Edges(), start)
	at := cfg.Now()
	err = in.each(func(line int, user, friend string) error {
		recs, err := queryapi.FriendRecords(in.app, user, friend, at)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		for _, r := range recs {
			cl.Produce(ctx, r, t.done)
		}
		if t.failed.Load() > 0 {
			return t.firstErr()
		}
		return ctx.Err()
	})
	flushErr := cl.Flush(ctx)
	stop()

	records := int(t.acked.Load())
	sum := Summary{Edges: records / 2, Records: records, Elapsed: time.Since(start)}
	if err = cmp.Or(err, t.firstErr(), flushErr); err != nil {
		return sum, fmt.Errorf("importing friends: %d of %d edges written, %d records failed, first: %w; importing the same list again is safe",
			sum.Edges, in.Edges(), t.failed.Load(), err)
	}
	return sum, nil
}

// tally counts the records Kafka acknowledged and refused.
type tally struct {
	acked, failed atomic.Int64
	mu            sync.Mutex
	first         error
}

// done is the promise of every record.
func (t *tally) done(_ *kgo.Record, err error) {
	if err == nil {
		t.acked.Add(1)
		return
	}
	t.failed.Add(1)
	t.mu.Lock()
	if t.first == nil {
		t.first = err
	}
	t.mu.Unlock()
}

func (t *tally) firstErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first
}

// report writes a progress line to w every period until stop is called.
func (t *tally) report(w io.Writer, period time.Duration, total int, start time.Time) (stop func()) {
	if w == nil {
		return func() {}
	}
	tick := time.NewTicker(period)
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				edges, elapsed := int(t.acked.Load()/2), time.Since(start)
				r := rate(edges, elapsed)
				eta := "unknown"
				if r > 0 {
					eta = time.Duration(float64(total-edges) / r * float64(time.Second)).Round(time.Second).String()
				}
				fmt.Fprintf(w, "import-friends: %d/%d edges (%.1f%%), %.0f edges/s, ETA %s\n",
					edges, total, 100*float64(edges)/float64(total), r, eta)
			}
		}
	}()
	return func() { tick.Stop(); close(quit); <-finished }
}

func rate(edges int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(edges) / elapsed.Seconds()
}
