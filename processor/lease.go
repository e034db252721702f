package processor

// Gateway leases: a gateway that dies without ending its sessions must not
// leave its users online. Every gateway heartbeats on presence.gateways
// (its id, its boot epoch, how long the lease lasts). Every processor reads
// every heartbeat (heartbeats.go) and, when a lease lapses or the gateway
// comes back with a new epoch, writes a disconnect with reason
// gateway_lost for each session of the old epoch that its own partitions
// of presence.sessions hold, found in memory (state.Partition.SessionsOf),
// into presence.sessions: the log stays the truth, and the sessions end
// the way any session ends, announcements included.
//
// A session is lost:
//   - of the epoch the gateway heartbeats: when its lease lapses;
//   - of another epoch, connected before the current epoch's latest
//     heartbeat: at once (the gateway restarted since);
//   - otherwise (a gateway that never heartbeats, or a new epoch whose
//     first heartbeat is not read yet): a lease after it connected.
// Leases are judged only once the gateway's partition has been read up to
// its end, so that a processor that starts knows each gateway's latest
// heartbeat.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
)

// DefaultGatewayLease is the lease of a gateway that never heartbeats.
const DefaultGatewayLease = 30 * time.Second

// lease is a gateway's latest heartbeat.
type lease struct {
	epoch   string
	at      time.Time
	length  time.Duration
	expires time.Time
}

// leases is what the processor knows of the gateways, from their
// heartbeats and from its own gateway_lost writes. It has a lock of its
// own: the heartbeat reader renews leases while the consuming loop judges
// them.
type leases struct {
	mu sync.Mutex
	// fallback is the lease of a gateway that never heartbeats
	// (Config.GatewayLease).
	fallback time.Duration
	// partitions is the partition count of presence.gateways.
	partitions int
	byGateway  map[string]lease
	// checkAt is when each gateway's sessions must be looked at next.
	checkAt map[string]time.Time
	// freshAt holds, per partition, the latest time as of which every
	// heartbeat in it was read.
	freshAt map[int32]time.Time
	// written holds, by session key, when the sessions' gateway_lost
	// disconnects were written, until they are surely applied.
	written map[string]time.Time
}

func newLeases(fallback time.Duration) *leases {
	return &leases{fallback: fallback, byGateway: map[string]lease{}, checkAt: map[string]time.Time{},
		freshAt: map[int32]time.Time{}, written: map[string]time.Time{}}
}

// setPartitions records the partition count of presence.gateways.
func (ls *leases) setPartitions(n int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.partitions = n
}

// renew records a gateway's heartbeat; an older one read again changes
// nothing. A new epoch has the old one's sessions looked at at once.
func (ls *leases) renew(id string, l lease) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	old, known := ls.byGateway[id]
	if known && l.at.Before(old.at) {
		return
	}
	ls.byGateway[id] = l
	if !known || old.epoch != l.epoch {
		ls.checkAt[id] = time.Time{}
	}
}

// forget forgets a gateway whose heartbeat was tombstoned.
func (ls *leases) forget(id string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	delete(ls.byGateway, id)
}

// read records that partitions of presence.gateways were read up to
// their end as of now.
func (ls *leases) read(partitions []int32, now time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, partition := range partitions {
		ls.freshAt[partition] = now
	}
}

// check is a gateway whose sessions are due to be looked at, and as of
// when every heartbeat of its partition is known.
type check struct {
	id   string
	asOf time.Time
}

// due returns the gateways, of those heartbeating and of hosting (the
// gateways of sessions in memory), whose sessions are due to be looked at
// now: those whose partition was read up to its end once. Each is marked
// checked until a lease later (checked says when to look next).
func (ls *leases) due(hosting []string, now time.Time) []check {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for key, w := range ls.written {
		if now.Sub(w) >= ls.fallback {
			delete(ls.written, key) // applied by now, or worth writing again
		}
	}
	ids := map[string]bool{}
	for id := range ls.byGateway {
		ids[id] = true
	}
	for _, id := range hosting {
		ids[id] = true
	}
	var due []check
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if ls.partitions == 0 {
			break
		}
		asOf, read := ls.freshAt[int32(schemas.Partition([]byte(id), ls.partitions))]
		if at, ok := ls.checkAt[id]; read && (!ok || !now.Before(at)) {
			ls.checkAt[id] = now.Add(ls.fallback) // until checked
			due = append(due, check{id, asOf})
		}
	}
	return due
}

// recheck has a gateway looked at again at the next sweep, if it is
// still heartbeating or hosting sessions.
func (ls *leases) recheck(id string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	delete(ls.checkAt, id)
}

// judge returns which of sessions, a gateway's, are lost as of asOf and
// not already written, the gateway's latest heartbeat (known says whether
// there is one), and schedules its next check.
func (ls *leases) judge(id string, sessions []state.GatewaySession, now, asOf time.Time) (lost []state.GatewaySession, l lease, known bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, known = ls.byGateway[id]
	next := now.Add(ls.fallback)
	if known && l.expires.After(now) {
		next = l.expires
	}
	for _, s := range sessions {
		at := ls.lostAt(l, known, s.Session)
		if asOf.Before(at) {
			if at.Before(next) {
				next = at
			}
			continue
		}
		key := schemas.SessionKey(s.App, s.User, s.Session.Session)
		if w, ok := ls.written[key]; ok && now.Sub(w) < ls.fallback {
			continue // written; not applied yet
		}
		lost = append(lost, s)
	}
	ls.checkAt[id] = next
	return lost, l, known
}

// wrote records the gateway_lost disconnects written for sessions.
func (ls *leases) wrote(sessions []state.GatewaySession, now time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, s := range sessions {
		ls.written[schemas.SessionKey(s.App, s.User, s.Session.Session)] = now
	}
}

// lostAt is when a session of a gateway whose latest heartbeat is l (if
// known) is lost.
func (ls *leases) lostAt(l lease, known bool, s redisstore.Session) time.Time {
	switch {
	case known && s.Epoch == l.epoch:
		return l.expires
	case known && s.ConnectedAt.Time.Before(l.at):
		return time.Time{} // the gateway has restarted since
	case known:
		return s.ConnectedAt.Time.Add(l.length)
	default:
		return s.ConnectedAt.Time.Add(ls.fallback)
	}
}

// renewLeases applies heartbeat records. Invalid ones go to the dead
// letters, written by the processor that owns the sessions partition of
// the same number (every processor reads every heartbeat: one copy is
// enough).
func (p *Processor) renewLeases(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	n := p.partitionCount(schemas.GatewaysTopic)
	var dead []*kgo.Record
	for _, r := range recs {
		err := p.admit(r, n)
		if err == nil {
			err = p.renew(r)
		}
		if err != nil && p.ownsDeadLetters(r.Partition) {
			dead = append(dead, p.deadLetter(r, err))
		}
	}
	return p.duties.deadLetters(ctx, cl, dead)
}

// ownsDeadLetters says whether this processor writes the dead letters of
// a partition of presence.gateways: it owns the sessions partition of that
// number, modulo their count.
func (p *Processor) ownsDeadLetters(partition int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := int32(p.counts[schemas.SessionsTopic])
	return n > 0 && p.owned[partition%n] != nil
}

// renew applies a heartbeat record; a tombstone forgets the gateway (the
// processor writes one for a gateway gone a lease ago).
func (p *Processor) renew(r *kgo.Record) error {
	if r.Attrs.IsControl() {
		return nil
	}
	if len(r.Value) == 0 {
		p.leases.forget(string(r.Key))
		return nil
	}
	var hb pb.GatewayHeartbeat
	if err := proto.Unmarshal(r.Value, &hb); err != nil {
		return fmt.Errorf("record %s/%d at offset %d: decoding: %w", r.Topic, r.Partition, r.Offset, err)
	}
	if err := schemas.ValidateHeartbeat(&hb); err != nil {
		return fmt.Errorf("record %s/%d at offset %d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	if string(r.Key) != hb.Gateway {
		return fmt.Errorf("record %s/%d at offset %d: key %q is not its gateway %q", r.Topic, r.Partition, r.Offset, r.Key, hb.Gateway)
	}
	at, length := p.clampTime(time.UnixMilli(hb.TimestampMs)), time.Duration(hb.LeaseMs)*time.Millisecond
	if length > p.cfg.MaxGatewayLease {
		length = p.cfg.MaxGatewayLease
		p.metrics.clamped.WithLabelValues("lease").Inc()
	}
	p.leases.renew(hb.Gateway, lease{epoch: hb.Epoch, at: at, length: length, expires: at.Add(length)})
	return nil
}

// sweepLeases ends the sessions of lost gateways that this processor's
// partitions hold. A lease is judged as of the last time its partition of
// presence.gateways was known to be read up to its committed end (asOf),
// not by the clock: a processor that could not read (Kafka down, a stall)
// must not take the heartbeats it missed for silence. Call it only while
// the state is complete (no rebuild under way): a session the rebuild has
// not ended yet would look live.
func (p *Processor) sweepLeases(ctx context.Context, cl *kgo.Client) {
	now := p.cfg.Now() // before listing the ends: heartbeats written before it are below them
	ends, err := p.adm.Load().ListCommittedOffsets(ctx, schemas.GatewaysTopic)
	if err != nil {
		p.log.Warn("listing the ends of presence.gateways failed; leases are judged as of the last time they were read", "err", err)
	}
	var read []int32
	var hosting []string
	p.mu.Lock()
	for tp, s := range p.spans {
		if end, ok := ends.Lookup(tp.topic, tp.partition); ok && tp.topic == schemas.GatewaysTopic && end.Err == nil && s.next >= end.Offset {
			read = append(read, tp.partition)
		}
	}
	for _, o := range p.owned {
		hosting = append(hosting, o.users.Gateways()...)
	}
	p.mu.Unlock()
	p.leases.read(read, now)
	for _, c := range p.leases.due(hosting, now) {
		if err := p.checkGateway(ctx, cl, c.id, now, c.asOf); err != nil {
			p.log.Warn("checking a gateway's sessions failed; retrying at the next sweep", "gateway", c.id, "err", err)
			p.leases.recheck(c.id)
		}
	}
}

// sessionsOn returns the live sessions on a gateway that this processor's
// partitions hold. Call it from the consuming loop, between batches.
func (p *Processor) sessionsOn(id string) []state.GatewaySession {
	p.mu.Lock()
	partitions := slices.Collect(maps.Keys(p.owned))
	p.mu.Unlock()
	var out []state.GatewaySession
	for _, partition := range partitions {
		if o := p.ownedPartition(partition); o != nil && !p.restoring(partition) {
			out = append(out, o.users.SessionsOf(id)...)
		}
	}
	return out
}

// checkGateway writes a gateway_lost disconnect for each lost session of a
// gateway this processor's partitions hold, and schedules its next check.
func (p *Processor) checkGateway(ctx context.Context, cl *kgo.Client, id string, now, asOf time.Time) error {
	sessions := p.sessionsOn(id)
	lost, l, known := p.leases.judge(id, sessions, now, asOf)
	if len(lost) == 0 {
		if len(sessions) > 0 || (known && l.expires.After(asOf)) {
			return nil
		}
		// Nothing left of a gateway that is gone here: forget it, and
		// tombstone its heartbeat ten leases later (its sessions in other
		// processors' partitions are long lost by then), so that the topic
		// keeps only the gateways alive (its next heartbeat, if it comes
		// back, renews it). One processor writes it: the owner of the
		// sessions partition of the gateway's number.
		if known && l.expires.Add(10*l.length).Before(asOf) && p.ownsDeadLetters(int32(schemas.Partition([]byte(id), p.partitionCount(schemas.GatewaysTopic)))) {
			if err := cl.ProduceSync(ctx, records.Tombstone(schemas.GatewaysTopic, id, time.Time{})).FirstErr(); err != nil {
				return fmt.Errorf("tombstoning the heartbeat of gateway %q: %w", id, err)
			}
			p.metrics.tombstones.WithLabelValues(schemas.GatewaysTopic).Inc()
		}
		p.leases.recheck(id)
		return nil
	}
	recs := make([]*kgo.Record, 0, len(lost))
	for _, s := range lost {
		r, err := records.Encode(schemas.SessionsTopic, schemas.SessionKey(s.App, s.User, s.Session.Session), &pb.SessionEvent{
			Type: pb.EventType_EVENT_TYPE_DISCONNECT, App: s.App, User: s.User, Session: s.Session.Session,
			Device: &pb.Device{Type: s.Device, Id: s.DeviceID}, Gateway: id, GatewayEpoch: s.Epoch,
			TimestampMs: now.UnixMilli(), Reason: pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_LOST,
		}, time.Time{})
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("writing %d gateway_lost disconnects: %w", len(recs), err)
	}
	p.leases.wrote(lost, now)
	epochs := map[string]bool{}
	for _, s := range lost {
		epochs[s.Epoch] = true
	}
	p.metrics.gatewaysLost.Add(float64(len(epochs)))
	p.metrics.disconnects.Add(float64(len(lost)))
	p.log.Warn("gateway lost: its sessions are ended", "gateway", id, "sessions", len(lost), "lease_known", known, "epoch", l.epoch)
	return nil
}

// rewriteKept writes again the connect of each session a gateway_lost
// disconnect found reconnected elsewhere (Outcome.Kept): the state kept
// the session, but compaction keeps only the disconnect, the latest record
// of the session's key, and a replay would end it. History (a rebuild)
// wrote its copies when it was live.
func (p *Processor) rewriteKept(ctx context.Context, cl *kgo.Client, changes []redisstore.Change, outcomes []redisstore.Outcome) error {
	var recs []*kgo.Record
	for i, o := range outcomes {
		if o.Kept == nil {
			continue
		}
		c, s := changes[i], o.Kept
		r, err := records.Encode(schemas.SessionsTopic, schemas.SessionKey(c.App, c.User, c.Session), &pb.SessionEvent{
			Type: pb.EventType_EVENT_TYPE_CONNECT, App: c.App, User: c.User, Session: c.Session,
			Device: &pb.Device{Type: s.Device, Id: s.DeviceID}, Gateway: s.Gateway, GatewayEpoch: s.Epoch,
			TimestampMs: s.ConnectedAt.UnixMilli(), Activity: s.Activity.Proto(),
		}, time.Time{})
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	return p.writeAgain(ctx, cl, recs, "sessions reconnected before their gateway_lost disconnect: their connects are written again")
}

// endLate writes again the disconnect of each session an activity report
// came for after it ended (Outcome.Late: a gateway that sent it late, or
// a client that retried it): the report applied nothing, but compaction
// keeps only the latest record of the session's key, and a replay would
// take the report for the session's connect. The disconnect is stamped
// with the report's time.
func (p *Processor) endLate(ctx context.Context, cl *kgo.Client, changes []redisstore.Change, outcomes []redisstore.Outcome) error {
	var recs []*kgo.Record
	for i, o := range outcomes {
		if !o.Late {
			continue
		}
		c := changes[i]
		r, err := records.Encode(schemas.SessionsTopic, schemas.SessionKey(c.App, c.User, c.Session), &pb.SessionEvent{
			Type: pb.EventType_EVENT_TYPE_DISCONNECT, App: c.App, User: c.User, Session: c.Session,
			Device: &pb.Device{Type: c.Device, Id: c.DeviceID}, Gateway: c.Gateway, GatewayEpoch: c.Epoch,
			TimestampMs: c.At.UnixMilli(), Reason: pb.DisconnectReason_DISCONNECT_REASON_CLIENT_CLOSED,
		}, time.Time{})
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	return p.writeAgain(ctx, cl, recs, "activity reported for sessions already ended: ignored, their disconnects are written again")
}

// writeAgain writes recs, records of sessions the processor writes again
// so that compaction keeps what the state holds, saying why, retrying
// until Kafka has them or ctx ends.
func (p *Processor) writeAgain(ctx context.Context, cl *kgo.Client, recs []*kgo.Record, why string) error {
	if len(recs) == 0 {
		return nil
	}
	p.log.Info(why, "sessions", len(recs))
	return p.retry(ctx, "writing session records again", func(ctx context.Context) error {
		return cl.ProduceSync(ctx, recs...).FirstErr()
	})
}
