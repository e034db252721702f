package state

import (
	"time"

	"github.com/presence-im/presence/redisstore"
)

// A user who goes offline is announced only once the offline grace period
// has passed, and only if still offline (Check), so that a flapping
// mobile link makes no offline/online pair. The partition keeps these
// pending announcements in a queue by when they are due: they move with
// the partition, and the processor that takes it restores them with the
// users (see DropDueBefore).

// pending is an announcement due at (Unix ms).
type pending struct {
	at  int64
	who redisstore.User
}

// Delay queues users to be checked at due. Calls come with due times that
// do not go back (now plus a fixed grace), so the queue stays in order;
// one that does is checked no sooner than those queued before it.
func (p *Partition) Delay(users []redisstore.User, due time.Time) {
	at := due.UnixMilli()
	for _, u := range users {
		p.graces = append(p.graces, pending{at: at, who: u})
	}
}

// Due returns up to limit of the users due at now, in the order queued,
// and keeps them queued until Done.
func (p *Partition) Due(now time.Time, limit int) []redisstore.User {
	ms := now.UnixMilli()
	var out []redisstore.User
	for _, e := range p.graces[p.graceHead:] {
		if e.at > ms || len(out) == limit {
			break
		}
		out = append(out, e.who)
	}
	return out
}

// Done drops the first n users queued: those Due returned, once checked.
func (p *Partition) Done(n int) {
	p.popGraces(min(n, len(p.graces)-p.graceHead))
}

// DropDueBefore drops the users queued whose check was due before at.
// The processor that restores a partition queues every user its restored
// records took offline, as they went, then drops those due well before
// the latest record: the former owner announced them.
func (p *Partition) DropDueBefore(at time.Time) {
	ms, n := at.UnixMilli(), 0
	for _, e := range p.graces[p.graceHead:] {
		if e.at >= ms {
			break
		}
		n++
	}
	p.popGraces(n)
}

// Pending returns how many users are queued.
func (p *Partition) Pending() int { return len(p.graces) - p.graceHead }

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
