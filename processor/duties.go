package processor

// A processor applies records to Redis; a live one also does what serving
// clients needs (live), a quiet one, presence replay's, nothing more
// (quiet). The choice is made once, in New: the consuming loop and the
// applier call the duties and never ask which kind they have.

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
)

// duties are what a processor does beside applying records.
type duties interface {
	// watch starts what runs beside the consuming loop while it is a
	// member of the group (reading heartbeats); stop ends it.
	watch(ctx context.Context, cl *kgo.Client) (stop func())
	// begin is called as a poll's records of a sessions partition start
	// applying; the function it returns (if any), once they are applied.
	begin() (applied func())
	// newsFrom returns the offset from which a partition's records are
	// news, given where its history (a rebuild's) ends.
	newsFrom(history int64) int64
	// changed follows the write of changes of a partition, with their
	// outcomes; those from index news on are news (the others history).
	changed(ctx context.Context, cl *kgo.Client, partition int32, changes []redisstore.Change, outcomes []redisstore.Outcome, news int) error
	// late follows the apply in memory of changes, history's included:
	// it writes the disconnects of sessions reported after they ended
	// (Outcome.Late).
	late(ctx context.Context, cl *kgo.Client, changes []redisstore.Change, outcomes []redisstore.Outcome) error
	// restored follows changes restored in memory from before a
	// partition's checkpoint, oldGraces the offline announcements an
	// older release left pending in Redis for a partition taken.
	restored(o *owned, changes []redisstore.Change)
	oldGraces(o *owned, pending []redisstore.Pending)
	// deadLetters writes the dead letters of invalid records.
	deadLetters(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error
	// between runs after each poll is applied; it returns errStateLost or
	// errMoved when the consuming loop must join the group again.
	between(ctx context.Context, cl *kgo.Client) error
	// tombstones says whether the processor tombstones dead record keys.
	tombstones() bool
}

// newDuties returns the duties of a processor configured with cfg.
func newDuties(p *Processor) duties {
	if p.cfg.Quiet {
		return quiet{}
	}
	return &live{p: p}
}

// live are the duties of a processor that serves clients: announcements,
// offline grace, gateway leases, dead letters and tombstones, and the
// checks that notice a Redis that lost state.
type live struct {
	p *Processor
	// swept is when leases, dead keys and checkpoints were last looked
	// at, graceSwept when pending offline announcements were.
	swept, graceSwept time.Time
}

func (l *live) watch(ctx context.Context, cl *kgo.Client) func() {
	l.swept, l.graceSwept = time.Time{}, time.Time{} // a new membership sweeps at its first poll
	ctx, cancel := context.WithCancel(ctx)
	var read sync.WaitGroup
	read.Go(func() {
		if err := l.p.readHeartbeats(ctx, cl); err != nil && ctx.Err() == nil {
			l.p.stop(err)
		}
	})
	return func() {
		cancel()
		read.Wait()
	}
}

func (l *live) begin() func() { return l.p.announcer.begin() }

func (l *live) newsFrom(history int64) int64 { return history }

func (l *live) changed(ctx context.Context, cl *kgo.Client, partition int32, changes []redisstore.Change, outcomes []redisstore.Outcome, news int) error {
	if err := l.p.rewriteKept(ctx, cl, changes[news:], outcomes[news:]); err != nil {
		return err
	}
	return l.p.announceChanges(ctx, cl, partition, changes, outcomes)
}

func (l *live) late(ctx context.Context, cl *kgo.Client, changes []redisstore.Change, outcomes []redisstore.Outcome) error {
	return l.p.endLate(ctx, cl, changes, outcomes)
}

func (l *live) restored(o *owned, changes []redisstore.Change) { l.p.delayRestored(o, changes) }

func (l *live) oldGraces(o *owned, pending []redisstore.Pending) { l.p.delayOld(o, pending) }

func (l *live) deadLetters(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	return l.p.sendDeadLetters(ctx, cl, recs)
}

func (l *live) between(ctx context.Context, cl *kgo.Client) error {
	p := l.p
	if now := p.cfg.Now(); now.Sub(l.graceSwept) >= sweepEvery {
		p.sweepGrace(ctx, cl)
		l.graceSwept = now
	}
	now := p.cfg.Now()
	if now.Sub(l.swept) < sweepSlowEvery {
		return nil
	}
	l.swept = now
	unbuilt, err := p.checkCheckpoints(ctx)
	if errors.Is(err, errStateLost) || errors.Is(err, errMoved) {
		return err
	}
	if err == nil {
		if unbuilt == 0 { // leases are judged on complete state only
			p.sweepLeases(ctx, cl)
		}
		p.sweepDeadKeys(ctx, cl)
	}
	return nil
}

func (l *live) tombstones() bool { return true }

// quiet are the duties of presence replay's processor, which rebuilds a
// Redis no service reads yet: none. Every record is history, told to
// nobody; live processors beside it (if any) write dead letters,
// tombstones and gateway_lost disconnects.
type quiet struct{}

func (quiet) watch(context.Context, *kgo.Client) func() { return func() {} }
func (quiet) begin() func()                             { return nil }
func (quiet) newsFrom(int64) int64                      { return math.MaxInt64 }
func (quiet) changed(context.Context, *kgo.Client, int32, []redisstore.Change, []redisstore.Outcome, int) error {
	return nil
}
func (quiet) late(context.Context, *kgo.Client, []redisstore.Change, []redisstore.Outcome) error {
	return nil
}
func (quiet) restored(*owned, []redisstore.Change)                          {}
func (quiet) oldGraces(*owned, []redisstore.Pending)                        {}
func (quiet) deadLetters(context.Context, *kgo.Client, []*kgo.Record) error { return nil }
func (quiet) between(context.Context, *kgo.Client) error                    { return nil }
func (quiet) tombstones() bool                                              { return false }
