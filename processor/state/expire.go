package state

import (
	"container/heap"
	"time"
)

// Offline users are forgotten the offline TTL after the latest record
// applied to them, as Redis expires their keys (PEXPIREAT). A user is
// forgotten when next looked up past that time, or by Expire, which
// takes them from a queue ordered by deadline. The queue holds each
// offline user at most once (the queued flag): a user whose deadline
// moved later is queued again, at its new deadline, when its old one
// comes; a user who came back online leaves the queue then.

// expiry is a user in the queue, and the deadline it was queued for.
type expiry struct {
	at int64
	u  *user
}

// expiryQueue is a min-heap of expiries by deadline.
type expiryQueue []expiry

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q expiryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)        { *q = append(*q, x.(expiry)) }
func (q *expiryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = expiry{}
	*q = old[:len(old)-1]
	return e
}

// expireAt sets when u, which has no live session, is forgotten.
func (p *Partition) expireAt(u *user, at int64) {
	u.expireAt = at
	if u.flags&queued == 0 {
		u.flags |= queued
		heap.Push(&p.expiries, expiry{at: at, u: u})
	}
}

// Expire forgets the users due to be forgotten at now, up to limit of
// them (0: no limit), and returns how many it forgot. Redis expires
// their keys itself: nothing is written for them.
func (p *Partition) Expire(now time.Time, limit int) int {
	ms := now.UnixMilli()
	n := 0
	for len(p.expiries) > 0 && p.expiries[0].at <= ms && (limit <= 0 || n < limit) {
		e := heap.Pop(&p.expiries).(expiry)
		u := e.u
		u.flags &^= queued
		switch {
		case p.users[u.key] != u || len(u.sessions) > 0:
			// Forgotten already, or back online.
		case u.expireAt > ms:
			p.expireAt(u, u.expireAt)
		default:
			p.forget(u)
			n++
		}
	}
	return n
}
