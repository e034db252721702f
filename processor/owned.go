package processor

// The processor owns the state of its partitions of presence.sessions: it
// keeps their users in memory (package state), decides versions, visible
// changes and announcements there, and writes Redis only the result, each
// changed user once per batch, blindly (redisstore.Store.Write).
//
// A partition assigned is first taken in Redis (redisstore.Store.Own), so
// that the processor that had it, should it still be running (paused past
// its session timeout, cut off from Kafka), can no longer write its users
// or move its checkpoint. It is then read from its beginning: the records
// before its checkpoint, which Redis holds already, restore the users in
// memory and write nothing; the records after it are applied as news. A
// partition Redis holds nothing of is rebuilt the same way, writing what
// it restores.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// owned is a partition of presence.sessions this processor owns.
type owned struct {
	users *state.Partition
	owner redisstore.Owner
	// restored is the partition's checkpoint in Redis when it was
	// assigned: the records before it are in Redis already, and only
	// restore the users in memory.
	restored int64
	// fresh says no user of the partition has been written since this
	// processor reset it: Redis holds none of them.
	fresh bool
	// replaceUntil is the partition's end when it was first fetched after
	// it was taken (-1 until then): its former owner may have written the
	// records before it, so Redis may hold their users newer than memory
	// as they are applied.
	replaceUntil int64
	// toldFrom is the offset from which the offline announcements of the
	// records before the checkpoint were pending when it was written
	// (noneTold: none; see grace.go).
	toldFrom int64
	// oldGraces says the partition's announcements that an older release
	// left pending in Redis are queued, to be deleted there once made.
	oldGraces bool
	// changes is the slice of the changes of the records being applied,
	// kept from one fetch to the next (see applyPartition).
	changes []redisstore.Change
}

// take takes partitions of a state topic in Redis (Store.Own): from then
// on, whoever had them before can no longer write them. Call it before
// their checkpoints are read and anything of them is reset or read.
func (p *Processor) take(ctx context.Context, topic string, partitions map[int32]kgo.Offset) error {
	for partition := range partitions {
		if !p.isAssigned(topic, partition) {
			continue // a rebalance took it since it was assigned
		}
		owner, err := p.cfg.Store.Own(ctx, topic, partition)
		if err != nil {
			return err
		}
		if topic == schemas.SessionsTopic {
			// Its dead keys are known in memory (bound.go): an older
			// release's schedule in Redis goes.
			if err := p.cfg.Store.DropSessionsSchedule(ctx, partition); err != nil {
				return err
			}
			// Its pending offline announcements are made (own), then
			// deleted (sweepGrace).
			old, err := p.cfg.Store.OldGraces(ctx, partition)
			if err != nil {
				return err
			}
			p.mu.Lock()
			p.oldGraces[partition] = old
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.owners[topicPartition{topic, partition}] = owner
		p.mu.Unlock()
	}
	return nil
}

// isAssigned says whether a partition is assigned to this processor now:
// the group assigned it (assign.go) and no rebalance has taken it since
// (group.go forgets it).
func (p *Processor) isAssigned(topic string, partition int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.spans[topicPartition{topic, partition}]
	return ok
}

// own starts the users in memory of a partition of presence.sessions
// taken, whose checkpoint in Redis is next; reset says this processor has
// just reset it; toldFrom is the checkpoint's Told (grace.go). Call it
// before the partition's first record is read.
func (p *Processor) own(partition int32, next int64, reset bool, toldFrom int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := &owned{owner: p.owners[topicPartition{schemas.SessionsTopic, partition}], restored: next, fresh: reset,
		replaceUntil: -1, toldFrom: toldFrom,
		users: state.New(state.Config{OfflineTTL: p.cfg.Store.OfflineTTL(), Now: p.cfg.Now, NoTombstones: !p.duties.tombstones()})}
	// What an older release had pending in Redis (take) is made too, by
	// a processor that announces; it stays in Redis until then.
	p.duties.oldGraces(o, p.oldGraces[partition])
	delete(p.oldGraces, partition)
	p.owned[partition] = o
}

// ownerOf returns this processor's hold on a partition of a state topic,
// the zero Owner when it has none (any more). Partitions are forgotten
// only between polls (rebalances wait for them), never while they apply.
func (p *Processor) ownerOf(topic string, partition int32) redisstore.Owner {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.owners[topicPartition{topic, partition}]
}

// ownedPartition returns the state of a partition this processor owns,
// nil when it does not own it (any more).
func (p *Processor) ownedPartition(partition int32) *owned {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.owned[partition]
}

// write writes the users changed in o since its last write. A partition
// taken by another processor meanwhile stops this one (errMoved). A user
// online since it was last written has the fields that changed set and
// deleted; another's hash is replaced whole, unless the write is the
// first of a rebuild's history (history, and no user written since the
// reset, which deleted them all): then its fields are only set.
func (p *Processor) write(ctx context.Context, o *owned, partition int32, history bool) error {
	dirty := o.users.TakeDirty()
	setOnly := history && o.fresh
	images := make([]redisstore.Image, len(dirty))
	for i, d := range dirty {
		images[i] = redisstore.Image{App: d.User.App, User: d.User.User, Fields: d.Fields, Removed: d.Removed,
			Whole: d.Whole && !setOnly || d.Gone, ExpireAt: d.ExpireAt}
	}
	err := p.retryOwned(ctx, "writing users", schemas.SessionsTopic, partition, func(ctx context.Context) error {
		return p.cfg.Store.Write(ctx, o.owner, images)
	})
	if err == nil {
		o.fresh = false
	}
	return err
}

// retryOwned is retry for writes of a partition this processor owns: a
// write refused because another processor has taken the partition is not
// tried again, and stops this processor's membership (errMoved), so that
// it joins the group again.
func (p *Processor) retryOwned(ctx context.Context, what, topic string, partition int32, fn func(context.Context) error) error {
	var fenced error
	err := p.retry(ctx, what, func(ctx context.Context) error {
		err := fn(ctx)
		if errors.Is(err, redisstore.ErrFenced) {
			fenced = err
			return nil
		}
		return err
	})
	if fenced != nil {
		p.metrics.moved.WithLabelValues("fenced").Inc()
		err = fmt.Errorf("%w: %s partition %d: %w", errMoved, topic, partition, fenced)
		p.stop(err)
	}
	return err
}

// firstAtOrPast returns the index of the first change whose version is at
// least v, len(changes) when none is.
func firstAtOrPast(changes []redisstore.Change, v int64) int {
	for i, c := range changes {
		if c.Version >= v {
			return i
		}
	}
	return len(changes)
}

// markAnnounced records in the state of partition that the audience of
// user was told visible. The announcer may tell the users of several
// partitions together, from the goroutine of one: the others wait for it,
// so that no state is used by two goroutines at once.
func (p *Processor) markAnnounced(partition int32, user redisstore.User, visible string) {
	if o := p.ownedPartition(partition); o != nil {
		o.users.MarkAnnounced(user, visible)
	}
}

// restoring says whether a partition of presence.sessions this processor
// owns has not yet read up to the checkpoint it had when assigned: its
// users in memory are not yet those Redis holds, so nothing is judged or
// announced from them.
func (p *Processor) restoring(partition int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, s := p.owned[partition], p.spans[topicPartition{schemas.SessionsTopic, partition}]
	return o == nil || s == nil || s.next < o.restored
}

// checkAnnounced returns, for users of partition whose offline grace
// period has passed, those whose audience must be told their state now.
// A user last changed by a restored record is told whatever it shows: what
// its audience was told went with the processor that restored it.
func (p *Processor) checkAnnounced(partition int32, due []redisstore.User) []subject {
	o := p.ownedPartition(partition)
	if o == nil {
		return nil
	}
	var subjects []subject
	for _, u := range due {
		out := o.users.Check(u)
		if out.Announce == redisstore.Now || visibleVersion(out.Visible) < o.restored {
			subjects = append(subjects, subject{User: u, partition: partition, visible: out.Visible, selfOnly: out.SelfOnly})
		}
	}
	return subjects
}

// visibleVersion is the version of an Outcome's Visible ("<version>:...").
func visibleVersion(visible string) int64 {
	v, _, _ := strings.Cut(visible, ":")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// statusesOf returns the status of each subject as its partition holds it
// in memory (what Redis holds once written), or nil when a subject's
// partition is no longer this processor's: then they are read from Redis.
// The announcer calls it for the subjects of partitions whose goroutines
// wait for it.
func (p *Processor) statusesOf(subjects []subject) []*redisstore.Status {
	out := make([]*redisstore.Status, len(subjects))
	for i, s := range subjects {
		o := p.ownedPartition(s.partition)
		if o == nil {
			return nil
		}
		st, err := o.users.Status(s.User)
		if err != nil {
			return nil
		}
		out[i] = st
	}
	return out
}
