package state

import (
	"time"

	"github.com/presence-im/presence/redisstore"
)

// A user who goes offline is announced only once the offline grace period
// has passed, and only if still offline (Check), so that a flapping
// mobile link makes no offline/online pair. The partition keeps these
// pending announcements in a queue, in the order of the records that
// made them; PendingFrom tells the processor what to record beside the
// partition's checkpoint, so that the processor that takes the partition
// next makes those still pending (see processor/grace.go).

// pending is an announcement due at (Unix ms), made by the record at
// offset version.
type pending struct {
	at, version int64
	who         redisstore.User
}

// Delay queues the user whose record at offset version took it offline,
// to be checked at due. Calls come in the order of the records, with due
// times that do not go back (now plus a fixed grace), so the queue stays
// in order; one that does is checked no sooner than those queued before
// it. A user queued again waits for its latest due time: the grace runs
// from its latest disconnect.
func (p *Partition) Delay(who redisstore.User, version int64, due time.Time) {
	at := due.UnixMilli()
	p.graces = append(p.graces, pending{at: at, version: version, who: who})
	if version == NoRecord {
		p.graceNoRecord++
	}
	if p.graceDue == nil {
		p.graceDue = map[redisstore.User]int64{}
	}
	p.graceDue[who] = max(p.graceDue[who], at)
}

// Due returns up to limit of the users due at now, in the order queued,
// each once, and how many of the first entries of the queue they take
// (those of users queued again since included): Done drops those, once
// the users are checked.
func (p *Partition) Due(now time.Time, limit int) (users []redisstore.User, n int) {
	ms := now.UnixMilli()
	var returned map[redisstore.User]bool
	for _, e := range p.graces[p.graceHead:] {
		if e.at > ms {
			break
		}
		if e.at < p.graceDue[e.who] || returned[e.who] {
			n++ // queued again since (its latest disconnect counts), or taken
			continue
		}
		if len(users) == limit {
			break
		}
		n++
		if returned == nil {
			returned = map[redisstore.User]bool{}
		}
		returned[e.who] = true
		users = append(users, e.who)
	}
	return users, n
}

// Done drops the first n entries of the queue: those Due took, once
// their users are checked.
func (p *Partition) Done(n int) {
	n = min(n, len(p.graces)-p.graceHead)
	for _, e := range p.graces[p.graceHead : p.graceHead+n] {
		if p.graceDue[e.who] == e.at {
			delete(p.graceDue, e.who)
		}
		if e.version == NoRecord {
			p.graceNoRecord--
		}
	}
	p.popGraces(n)
}

// PendingFrom returns the offset of the earliest record whose
// announcement is still queued; false when none is. Entries of no record
// (version NoRecord) do not count.
func (p *Partition) PendingFrom() (int64, bool) {
	for _, e := range p.graces[p.graceHead:] {
		if e.version != NoRecord {
			return e.version, true
		}
	}
	return 0, false
}

// Waiting says whether an offline announcement of who is queued: Redis
// shows the user offline while the audience was last told otherwise.
func (p *Partition) Waiting(who redisstore.User) bool {
	_, ok := p.graceDue[who]
	return ok
}

// NoRecord is the version of a user queued by no record of the partition:
// an announcement an older release left pending in Redis, which stays
// there until made (see processor/grace.go).
const NoRecord = -1

// Pending returns how many users are queued, and how many of them by no
// record.
func (p *Partition) Pending() (all, noRecord int) {
	return len(p.graces) - p.graceHead, p.graceNoRecord
}

// popGraces drops the first n users queued, reusing the queue's storage
// once half of it is dropped.
func (p *Partition) popGraces(n int) {
	clear(p.graces[p.graceHead : p.graceHead+n]) // their strings
	p.graceHead += n
	if p.graceHead == len(p.graces) {
		p.graces, p.graceHead = p.graces[:0], 0
	} else if p.graceHead > len(p.graces)/2 {
		rest := copy(p.graces, p.graces[p.graceHead:])
		clear(p.graces[rest:])
		p.graces, p.graceHead = p.graces[:rest], 0
	}
}
