package processor

// The offline grace period: a user who goes offline is announced only once
// the period has passed, and only if still offline. The pending
// announcements are kept in memory with the partition's users
// (state.Partition.Delay); beside the partition's checkpoint the
// processor records the offset of the earliest record whose announcement
// is still pending (redisstore.Checkpoint.Told). The processor that takes
// the partition next queues again, as it restores the partition, the
// users that the records from that offset took offline. An announcement
// made twice carries the same version, which clients drop.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// delay queues users of a partition whose offline announcement waits for
// the grace period; versions are the offsets of their records.
func (p *Processor) delay(partition int32, users []redisstore.User, versions []int64) {
	if o := p.ownedPartition(partition); o != nil {
		due := p.cfg.Now().Add(p.cfg.OfflineGrace)
		for i, u := range users {
			o.users.Delay(u, versions[i], due)
		}
		p.metrics.delayed.Add(float64(len(users)))
	}
}

// delayRestored queues the users that restored changes of o took offline
// whose announcements were pending when the checkpoint was written.
func (p *Processor) delayRestored(o *owned, changes []redisstore.Change) {
	for _, c := range changes {
		if c.Op == redisstore.Disconnect && c.Version >= o.toldFrom {
			o.users.Delay(redisstore.User{App: c.App, User: c.User}, c.Version, c.At.Add(p.cfg.OfflineGrace))
		}
	}
}

// delayOld queues the offline announcements an older release left pending
// in Redis for a partition taken (see take); they stay there until made.
func (p *Processor) delayOld(o *owned, pending []redisstore.Pending) {
	for _, a := range pending {
		o.users.Delay(a.User, state.NoRecord, a.Due)
		o.oldGraces = true
	}
}

// pendingFrom returns, for each partition of presence.sessions in to,
// the offset from which its offline announcements are pending, for the
// partitions that have some (see redisstore.Checkpoint.Told).
func (p *Processor) pendingFrom(to map[int32]int64) map[int32]int64 {
	out := map[int32]int64{}
	for partition := range to {
		if o := p.ownedPartition(partition); o != nil {
			if from, ok := o.users.PendingFrom(); ok {
				out[partition] = from
			}
		}
	}
	return out
}

// noneTold is owned.toldFrom when no announcement was pending.
const noneTold = math.MaxInt64

// sweepGrace announces the users of this processor's sessions partitions
// whose grace period has passed and who are still offline. One that fails
// is tried again at the next sweep.
func (p *Processor) sweepGrace(ctx context.Context, cl *kgo.Client) {
	p.mu.Lock()
	partitions := slices.Collect(maps.Keys(p.owned))
	p.mu.Unlock()
	now := p.cfg.Now()
	for _, partition := range partitions {
		o := p.ownedPartition(partition)
		if o == nil || p.restoring(partition) {
			continue
		}
		due, n := o.users.Due(now, maxRecipients)
		if n == 0 {
			continue
		}
		subjects := p.checkAnnounced(partition, due)
		if err := p.announce(ctx, cl, subjects); err != nil {
			p.log.Warn("announcing offline users failed; retrying at the next sweep", "err", err)
			continue
		}
		p.metrics.absorbed.Add(float64(len(due) - len(subjects)))
		o.users.Done(n)
		if _, old := o.users.Pending(); o.oldGraces && old == 0 {
			err := p.cfg.Store.DropOldGraces(ctx, p.ownerOf(schemas.SessionsTopic, partition), partition)
			if errors.Is(err, redisstore.ErrFenced) {
				p.metrics.moved.WithLabelValues("fenced").Inc()
				p.stop(fmt.Errorf("%w: %s partition %d: %w", errMoved, schemas.SessionsTopic, partition, err))
				return
			}
			if err != nil {
				p.log.Warn("deleting the old offline announcements failed; retrying at the next sweep", "err", err)
				continue
			}
			o.oldGraces = false
		}
	}
}
