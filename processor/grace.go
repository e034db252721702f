package processor

// The offline grace period: a user who goes offline is announced only once
// the period has passed, and only if still offline. The pending
// announcements are kept in memory with the partition's users
// (state.Partition.Delay); a processor that takes a partition queues
// again, as it restores the partition, every user its records took
// offline within the period and restoreWindow before the latest record:
// the former owner may have stopped before announcing them. An
// announcement made twice carries the same version, which clients drop.

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
)

// restoreWindow is how long before its latest record a partition's former
// owner may have left offline announcements unmade: it makes them within
// a sweep (sweepEvery) of their time, unless Kafka refused them for
// longer.
const restoreWindow = time.Minute

// delay queues users of a partition whose offline announcement waits for
// the grace period.
func (p *Processor) delay(partition int32, users []redisstore.User) {
	if o := p.ownedPartition(partition); o != nil {
		o.users.Delay(users, p.cfg.Now().Add(p.cfg.OfflineGrace))
		p.metrics.delayed.Add(float64(len(users)))
	}
}

// delayRestored queues the users that restored changes of o took offline,
// as they went, and drops those due more than restoreWindow before the
// latest change restored so far.
func (p *Processor) delayRestored(o *owned, changes []redisstore.Change) {
	for _, c := range changes {
		if c.Op == redisstore.Disconnect {
			o.users.Delay([]redisstore.User{{App: c.App, User: c.User}}, c.At.Add(p.cfg.OfflineGrace))
		}
		if c.At.After(o.latest) {
			o.latest = c.At
		}
	}
	o.users.DropDueBefore(o.latest.Add(p.cfg.OfflineGrace - restoreWindow))
}

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
		due := o.users.Due(now, maxRecipients)
		if len(due) == 0 {
			continue
		}
		subjects := p.checkAnnounced(partition, due)
		if err := p.announce(ctx, cl, subjects); err != nil {
			p.log.Warn("announcing offline users failed; retrying at the next sweep", "err", err)
			continue
		}
		p.metrics.absorbed.Add(float64(len(due) - len(subjects)))
		o.users.Done(len(due))
	}
}
