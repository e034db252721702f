package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Atomic makes every Publish, Heartbeat and HeartbeatFor of the publisher
// all or nothing: its records are written inside a Kafka transaction,
// committed only once Kafka has acknowledged every one of them, aborted
// otherwise. A consumer reading with isolation.level=read_committed (the
// processor does) sees all of a publish or none of it; one reading
// uncommitted records sees the records of aborted publishes too.
//
// The transactional id is TransactionalID(id): a publisher started with the
// gateway's id fences the one of its previous incarnation, whose open
// transaction can then no longer commit. Two live publishers with one id
// fence each other in turn, each failing the other's publish in flight.
//
// A Kafka producer has one transaction open at a time, so the publisher
// commits in groups: one goroutine takes every publish waiting (up to
// MaxBuffered records; a larger publish goes alone), writes them in one
// transaction and answers each with its outcome. The Kafka client holds
// one group's records at most; publishes waiting for the next group hold
// their own. A publish whose context ends before its group is taken is
// left out of it, and writes nothing.
//
// A nil error means the records are committed. An error wrapping
// ErrUnconfirmed means Kafka did not confirm the commit: the records are
// all written, or none. An error wrapping ctx.Err() means ctx ended first:
// if the publish was in a group by then, its records may still commit with
// it, all of them; the outcome is unknown, but all or nothing. Any other
// error means none of the records is written.
//
// Each step that no publish's context bounds (beginning a transaction,
// aborting its records, ending it) is bounded by AtomicStepTimeout, and a
// group's writing by half the transaction timeout (kgo.TransactionTimeout,
// 40s unless KafkaOpts sets it), so that a transaction left open by a
// gateway that dies holds up read_committed consumers for at most that
// timeout. When the Kafka client cannot recover from an error in place,
// the publisher closes it and creates another, whose new producer id
// fences the transaction the old one left open.
func Atomic() Opt { return func(c *config) { c.atomic = true } }

// AtomicStepTimeout bounds each step of an atomic publisher's transaction
// that no publish's context bounds: beginning it, aborting its records,
// ending it. It is also the franz-go kgo.RetryTimeout of the publisher's
// Kafka client, unless KafkaOpts sets one.
const AtomicStepTimeout = 10 * time.Second

// abortWait bounds how long an abort waits for the answers to the produce
// requests in flight. A broker that died with a request in flight never
// answers it, and franz-go cannot fail records that Kafka may have
// written; replacing the client is then quicker than waiting for
// AtomicStepTimeout, and as safe.
const abortWait = 2 * time.Second

// ErrUnconfirmed is wrapped by the error of an atomic publish whose
// transaction Kafka did not confirm: its records are all written or none.
var ErrUnconfirmed = errors.New("kafka did not confirm the commit: the records are all written or none")

// TransactionalID is the Kafka transactional id of the atomic publishers of
// gateway id.
func TransactionalID(id string) string { return "presence-gateway-" + id }

// pending is a publish waiting for its group's transaction.
type pending struct {
	ctx  context.Context
	recs []*kgo.Record
	res  chan error // buffered: the committer never waits to answer
}

// committer writes the publishes of an atomic publisher in transactions,
// one at a time, on its own goroutine, which alone uses the client.
type committer struct {
	opts    []kgo.Opt
	max     int           // records per transaction, unless one publish has more
	write   time.Duration // bound on writing a group
	cl      atomic.Pointer[kgo.Client]
	reqs    chan *pending
	ctx     context.Context // ends when the publisher closes
	stop    context.CancelFunc
	stopped chan struct{}
}

func newCommitter(cfg config, opts []kgo.Opt) (*committer, error) {
	opts = append([]kgo.Opt{kgo.RetryTimeout(AtomicStepTimeout)}, opts...)
	opts = append(opts, kgo.TransactionalID(TransactionalID(cfg.id)))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &committer{
		opts:    opts,
		max:     cfg.maxBuffered,
		write:   cl.OptValue(kgo.TransactionTimeout).(time.Duration) / 2,
		reqs:    make(chan *pending),
		ctx:     ctx,
		stop:    stop,
		stopped: make(chan struct{}),
	}
	c.cl.Store(cl)
	go c.run()
	return c, nil
}

// client is the Kafka client in use; the committer may replace it.
func (c *committer) client() *kgo.Client { return c.cl.Load() }

// close stops the committer, failing the publishes waiting, and closes the
// client, within a few AtomicStepTimeouts at most.
func (c *committer) close() {
	c.stop()
	<-c.stopped
}

// publish hands recs to the committer and waits for the outcome of their
// transaction, or for ctx to end.
func (c *committer) publish(ctx context.Context, recs []*kgo.Record) error {
	p := &pending{ctx: ctx, recs: recs, res: make(chan error, 1)}
	select {
	case c.reqs <- p:
	case <-ctx.Done():
		return fmt.Errorf("publishing %d records: %w", len(recs), ctx.Err())
	case <-c.ctx.Done():
		return fmt.Errorf("publishing %d records: %w", len(recs), kgo.ErrClientClosed)
	}
	select {
	case err := <-p.res:
		return err
	case <-ctx.Done():
		return fmt.Errorf("publishing %d records, whose transaction may still commit them all: %w", len(recs), ctx.Err())
	}
}

// run takes the publishes waiting, writes them in one transaction, answers
// them, and again, until the publisher closes.
func (c *committer) run() {
	defer close(c.stopped)
	defer func() { c.client().Close() }()
	var next *pending // taken, but for the next group
	for {
		if next == nil {
			select {
			case next = <-c.reqs:
			case <-c.ctx.Done():
				return
			}
		}
		group, n := []*pending{next}, len(next.recs)
		next = nil
	take:
		for n < c.max {
			select {
			case p := <-c.reqs:
				if n+len(p.recs) > c.max {
					next = p
					break take
				}
				group, n = append(group, p), n+len(p.recs)
			default:
				break take
			}
		}
		c.commitGroup(group)
		if next != nil && c.ctx.Err() != nil {
			next.res <- fmt.Errorf("publishing %d records: %w", len(next.recs), kgo.ErrClientClosed)
			return
		}
	}
}

// commitGroup writes the records of the publishes of group whose context
// has not ended in one transaction, and answers every publish.
func (c *committer) commitGroup(group []*pending) {
	live := group[:0]
	var recs []*kgo.Record
	for _, p := range group {
		switch {
		case p.ctx.Err() != nil:
			p.res <- fmt.Errorf("publishing %d records: %w", len(p.recs), p.ctx.Err())
		case c.ctx.Err() != nil:
			p.res <- fmt.Errorf("publishing %d records: %w", len(p.recs), kgo.ErrClientClosed)
		default:
			live = append(live, p)
			recs = append(recs, p.recs...)
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := c.groupContext(live)
	err := c.transact(ctx, recs)
	cancel()
	for _, p := range live {
		if err != nil {
			p.res <- fmt.Errorf("publishing %d records (in a transaction of %d): %w", len(p.recs), len(recs), err)
		} else {
			p.res <- nil
		}
	}
}

// groupContext is the context a group is written under: it ends when
// every publish of the group has given up, when the publisher closes, or
// when writing has taken half the transaction timeout.
func (c *committer) groupContext(group []*pending) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(c.ctx, c.write)
	var left atomic.Int64
	left.Store(int64(len(group)))
	stops := make([]func() bool, len(group))
	for i, p := range group {
		stops[i] = context.AfterFunc(p.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// transact writes recs in a transaction and commits it if Kafka
// acknowledged every record before ctx ended; otherwise it aborts it. The
// error says why nothing is written, or wraps ErrUnconfirmed.
func (c *committer) transact(ctx context.Context, recs []*kgo.Record) error {
	cl := c.client()
	if err := cl.BeginTransaction(); err != nil {
		// The producer id is in a state franz-go cannot recover
		// from: a new client gets a new one. Nothing is written yet.
		cl = c.renew()
		if err := cl.BeginTransaction(); err != nil {
			c.renew()
			return fmt.Errorf("beginning a transaction: %w", err)
		}
	}
	var results kgo.ProduceResults
	produced := make(chan struct{})
	go func() {
		results = cl.ProduceSync(ctx, recs...)
		close(produced)
	}()
	var err error
	select {
	case <-produced:
		err = resultsError(results)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return c.abort(cl, produced, err)
	}
	return c.commit(cl)
}

// abort fails the records the client still holds and aborts the
// transaction, after cause made committing it impossible. produced is
// closed once ProduceSync has returned.
func (c *committer) abort(cl *kgo.Client, produced <-chan struct{}, cause error) error {
	err := fmt.Errorf("%w; the transaction is aborted", cause)
	ctx, cancel := context.WithTimeout(context.Background(), abortWait)
	defer cancel()
	// Records still buffered would otherwise be written in the next
	// transaction. AbortBufferedRecords waits for the produce requests
	// in flight to be answered; if they are not, in time, the client
	// cannot be used again.
	if aerr := cl.AbortBufferedRecords(ctx); aerr != nil {
		c.renew()
		return err
	}
	select {
	case <-produced:
	case <-ctx.Done():
		c.renew()
		return err
	}
	c.end(cl, kgo.TryAbort)
	return err
}

// commit commits the transaction, all of whose records Kafka has
// acknowledged.
func (c *committer) commit(cl *kgo.Client) error {
	err := c.end(cl, kgo.TryCommit)
	switch {
	case err == nil:
		return nil
	case unconfirmed(err):
		return fmt.Errorf("committing the transaction: %w: %w", ErrUnconfirmed, err)
	default:
		return fmt.Errorf("committing the transaction, which kafka refused, so nothing is written: %w", err)
	}
}

// end ends the transaction as franz-go's EndTransaction documents: a
// commit that was not attempted (OperationNotAttempted), that may be
// aborted (TransactionAbortable), or whose outcome is unconfirmed (no
// answer, a retriable error retried to the end, UNKNOWN_SERVER_ERROR) is
// ended again as an abort, which, after an unconfirmed end, reloads the
// producer id: that bumps its epoch, which aborts whatever is still open
// in Kafka. An abort is retried the same way. Any other error, or a retry
// that fails, leaves a client that cannot be trusted with another
// transaction: it is replaced. end returns the error of the first attempt.
func (c *committer) end(cl *kgo.Client, how kgo.TransactionEndTry) error {
	ctx, cancel := context.WithTimeout(context.Background(), AtomicStepTimeout)
	defer cancel()
	err := cl.EndTransaction(ctx, how)
	if err == nil {
		return nil
	}
	if errors.Is(err, kerr.OperationNotAttempted) || errors.Is(err, kerr.TransactionAbortable) || unconfirmed(err) {
		rctx, rcancel := context.WithTimeout(context.Background(), AtomicStepTimeout)
		defer rcancel()
		if cl.EndTransaction(rctx, kgo.TryAbort) == nil {
			return err
		}
	}
	c.renew()
	return err
}

// unconfirmed says whether err, from EndTransaction, leaves its outcome
// unknown: Kafka gave no definite answer.
func unconfirmed(err error) bool {
	ke, ok := errors.AsType[*kerr.Error](err)
	return !ok || ke.Retriable || ke.Code == kerr.UnknownServerError.Code
}

// renew closes the client and puts a new one in its place, whose first
// transaction initializes a new producer id for the transactional id:
// Kafka then aborts whatever the old client left open, and refuses its
// late writes.
func (c *committer) renew() *kgo.Client {
	old := c.client()
	old.Close()
	cl, err := kgo.NewClient(c.opts...)
	if err != nil {
		// Not expected: the same options made the first client.
		// The closed client fails every publish until a retry works.
		return old
	}
	c.cl.Store(cl)
	return cl
}

// resultsError is nil if every record of results was acknowledged, and
// otherwise says why not with the first failed record's error.
func resultsError(results kgo.ProduceResults) error {
	var first error
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
			if first == nil {
				first = r.Err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d failed: %w", failed, first)
	}
	return nil
}
