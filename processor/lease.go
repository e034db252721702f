package processor

// Gateway leases: a gateway that dies without ending its sessions must not
// leave its users online. Every gateway heartbeats on presence.gateways
// (its id, its boot epoch, how long the lease lasts). The processor that
// owns a gateway's partition of that topic reads its heartbeats and, when
// the lease lapses or the gateway comes back with a new epoch, writes a
// disconnect with reason gateway_lost for each session of the old epoch
// into presence.sessions: the log stays the truth, and the sessions end
// the way any session ends, announcements included.
//
// The sessions of a gateway come from the index in Redis
// (redisstore.GatewaySessions), checked against each user's state before a
// disconnect is written. A session is lost:
//   - of the epoch the gateway heartbeats: when its lease lapses;
//   - of another epoch, connected before the current epoch's latest
//     heartbeat: at once (the gateway restarted since);
//   - otherwise (a gateway that never heartbeats, or a new epoch whose
//     first heartbeat is not read yet): a lease after it connected.
// Leases are judged only once the gateway's partition has caught up, so
// that a processor that starts knows each gateway's latest heartbeat.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
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

// gateways is what the processor knows of the gateways it owns.
type gateways struct {
	// partitions is the partition count of presence.gateways.
	partitions int
	leases     map[string]lease
	// checkAt is when each gateway's sessions must be looked at next.
	checkAt map[string]time.Time
	// freshAt holds, per owned partition, the latest time as of which
	// every heartbeat in it was read.
	freshAt map[int32]time.Time
	// written holds the sessions whose gateway_lost disconnect was
	// written, until their index entry goes.
	written map[string]time.Time
}

// renewLeases applies heartbeat records; invalid ones go to the dead
// letters.
func (p *Processor) renewLeases(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	n := p.partitionCount(schemas.GatewaysTopic)
	var dead []*kgo.Record
	for _, r := range recs {
		err := p.admit(r, n)
		if err == nil {
			err = p.renew(r)
		}
		if err != nil {
			dead = append(dead, p.deadLetter(r, err))
		}
	}
	return p.sendDeadLetters(ctx, cl, dead)
}

// renew applies a heartbeat record; a tombstone forgets the gateway (the
// processor writes one for a gateway gone a lease ago).
func (p *Processor) renew(r *kgo.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	gw := &p.gateways
	if r.Attrs.IsControl() {
		return nil
	}
	if len(r.Value) == 0 {
		delete(gw.leases, string(r.Key))
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
	old, known := gw.leases[hb.Gateway]
	if known && at.Before(old.at) {
		return nil // an older heartbeat read again
	}
	gw.leases[hb.Gateway] = lease{epoch: hb.Epoch, at: at, length: length, expires: at.Add(length)}
	if !known || old.epoch != hb.Epoch {
		gw.checkAt[hb.Gateway] = time.Time{} // a new epoch: the old one's sessions are lost
	}
	return nil
}

// forgetGateways forgets the leases of a partition of presence.gateways
// this processor no longer owns. Call with p.mu held.
func (p *Processor) forgetGateways(partition int32) {
	delete(p.gateways.freshAt, partition)
	for id := range p.gateways.leases {
		if schemas.Partition([]byte(id), p.gateways.partitions) == int(partition) {
			delete(p.gateways.leases, id)
			delete(p.gateways.checkAt, id)
		}
	}
}

// sweepLeases ends the sessions of the lost gateways this processor owns.
// A lease is judged as of the last time its partition of
// presence.gateways was known to be read up to its committed end (asOf),
// not by the clock: a processor that could not read (Kafka or Redis down,
// a stall) must not take the heartbeats it missed for silence. Call it
// only while the state is complete (no rebuild under way): a session the
// rebuild has not ended yet would look live.
func (p *Processor) sweepLeases(ctx context.Context, cl *kgo.Client) {
	now := p.cfg.Now() // before listing the ends: heartbeats written before it are below them
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, schemas.GatewaysTopic)
	if err != nil {
		p.log.Warn("listing the ends of presence.gateways failed; leases are judged as of the last time they were read", "err", err)
	}
	ids, err := p.cfg.Store.Gateways(ctx)
	if err != nil {
		p.log.Warn("reading gateways failed; retrying at the next sweep", "err", err)
		return
	}
	p.mu.Lock()
	for tp, s := range p.spans {
		if end, ok := ends.Lookup(tp.topic, tp.partition); ok && tp.topic == schemas.GatewaysTopic && end.Err == nil && s.next >= end.Offset {
			p.gateways.freshAt[tp.partition] = now
		}
	}
	for id := range p.gateways.leases {
		ids = append(ids, id)
	}
	for key, w := range p.gateways.written {
		if now.Sub(w) >= p.cfg.GatewayLease {
			delete(p.gateways.written, key) // applied by now, or worth writing again
		}
	}
	type check struct {
		id   string
		asOf time.Time
	}
	var due []check
	for _, id := range ids {
		asOf, owned := p.gatewayKnownAsOf(id)
		if at, ok := p.gateways.checkAt[id]; owned && (!ok || !now.Before(at)) {
			p.gateways.checkAt[id] = now.Add(p.cfg.GatewayLease) // until checked
			due = append(due, check{id, asOf})
		}
	}
	p.mu.Unlock()
	for _, c := range due {
		if err := p.checkGateway(ctx, cl, c.id, now, c.asOf); err != nil {
			p.log.Warn("checking a gateway's sessions failed; retrying at the next sweep", "gateway", c.id, "err", err)
			p.mu.Lock()
			delete(p.gateways.checkAt, c.id)
			p.mu.Unlock()
		}
	}
}

// gatewayKnownAsOf returns whether this processor owns the lease of a
// gateway (it owns the gateway's partition of presence.gateways and has
// read it once up to its end), and as of when it knows every heartbeat
// of it. Call with p.mu held.
func (p *Processor) gatewayKnownAsOf(id string) (time.Time, bool) {
	n := p.gateways.partitions
	if n == 0 {
		return time.Time{}, false
	}
	partition := int32(schemas.Partition([]byte(id), n))
	asOf, fresh := p.gateways.freshAt[partition]
	return asOf, fresh
}

// checkGateway writes a gateway_lost disconnect for each lost session of a
// gateway, and schedules its next check.
func (p *Processor) checkGateway(ctx context.Context, cl *kgo.Client, id string, now, asOf time.Time) error {
	sessions, err := p.cfg.Store.GatewaySessions(ctx, id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	l, known := p.gateways.leases[id]
	next := now.Add(p.cfg.GatewayLease)
	if known && l.expires.After(now) {
		next = l.expires
	}
	var lost []redisstore.GatewaySession
	for _, s := range sessions {
		at := p.lostAt(l, known, s)
		if asOf.Before(at) {
			if at.Before(next) {
				next = at
			}
			continue
		}
		key := schemas.SessionKey(s.App, s.User, s.Session)
		if w, ok := p.gateways.written[key]; ok && now.Sub(w) < p.cfg.GatewayLease {
			continue // written; not applied yet
		}
		lost = append(lost, s)
	}
	p.gateways.checkAt[id] = next
	p.mu.Unlock()
	if len(lost) == 0 {
		if len(sessions) > 0 || (known && l.expires.After(asOf)) {
			return nil
		}
		// Nothing left of a gateway that is gone: forget it, and
		// tombstone its heartbeat ten leases later, so that the topic
		// keeps only the gateways alive (its next heartbeat, if it comes
		// back, renews it).
		if known && l.expires.Add(10*l.length).Before(asOf) {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: schemas.GatewaysTopic, Key: []byte(id)}).FirstErr(); err != nil {
				return fmt.Errorf("tombstoning the heartbeat of gateway %q: %w", id, err)
			}
			p.metrics.tombstones.WithLabelValues(schemas.GatewaysTopic).Inc()
		}
		p.mu.Lock()
		delete(p.gateways.checkAt, id)
		p.mu.Unlock()
		return p.cfg.Store.Unindex(ctx, id, nil, true)
	}
	live, stale, err := p.liveSessions(ctx, id, lost)
	if err != nil {
		return err
	}
	recs := make([]*kgo.Record, 0, len(live))
	for _, s := range live {
		value, err := proto.Marshal(&pb.SessionEvent{
			Type: pb.EventType_EVENT_TYPE_DISCONNECT, App: s.App, User: s.User, Session: s.Session,
			Device: &pb.Device{Type: s.Device, Id: s.DeviceID}, Gateway: id, GatewayEpoch: s.Epoch,
			TimestampMs: now.UnixMilli(), Reason: pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_LOST,
		})
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(schemas.SessionKey(s.App, s.User, s.Session)), Value: value})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("writing %d gateway_lost disconnects: %w", len(recs), err)
	}
	p.mu.Lock()
	epochs := map[string]bool{}
	for _, s := range live {
		p.gateways.written[schemas.SessionKey(s.App, s.User, s.Session)] = now
		epochs[s.Epoch] = true
	}
	p.mu.Unlock()
	if len(live) > 0 {
		p.metrics.gatewaysLost.Add(float64(len(epochs)))
		p.metrics.disconnects.Add(float64(len(live)))
		p.log.Warn("gateway lost: its sessions are ended", "gateway", id, "sessions", len(live), "lease_known", known, "epoch", l.epoch)
	}
	return p.cfg.Store.Unindex(ctx, id, stale, false)
}

// lostAt is when a session of a gateway whose latest heartbeat is l (if
// known) is lost.
func (p *Processor) lostAt(l lease, known bool, s redisstore.GatewaySession) time.Time {
	switch {
	case known && s.Epoch == l.epoch:
		return l.expires
	case known && s.ConnectedAt.Before(l.at):
		return time.Time{} // the gateway has restarted since
	case known:
		return s.ConnectedAt.Add(l.length)
	default:
		return s.ConnectedAt.Add(p.cfg.GatewayLease)
	}
}

// lostSession is a lost session as its user's state holds it.
type lostSession struct {
	redisstore.GatewaySession
	Device, DeviceID string
}

// liveSessions splits sessions of a gateway's index into those the state
// holds on that gateway, and the stale entries of the index.
func (p *Processor) liveSessions(ctx context.Context, id string, sessions []redisstore.GatewaySession) (live []lostSession, stale []redisstore.GatewaySession, err error) {
	byApp := map[string][]redisstore.GatewaySession{}
	for _, s := range sessions {
		byApp[s.App] = append(byApp[s.App], s)
	}
	for app, all := range byApp {
		for ss := range slices.Chunk(all, maxRecipients) {
			if live, stale, err = p.liveOf(ctx, id, app, ss, live, stale); err != nil {
				return nil, nil, err
			}
		}
	}
	return live, stale, nil
}

// liveOf is liveSessions for sessions of one app, appending to live and
// stale.
func (p *Processor) liveOf(ctx context.Context, id, app string, ss []redisstore.GatewaySession, live []lostSession, stale []redisstore.GatewaySession) ([]lostSession, []redisstore.GatewaySession, error) {
	users := make([]string, len(ss))
	for i, s := range ss {
		users[i] = s.User
	}
	statuses, err := p.cfg.Store.Statuses(ctx, app, users)
	if err != nil {
		return nil, nil, err
	}
	for i, s := range ss {
		var held *redisstore.Session
		if st := statuses[i]; st != nil {
			if j := slices.IndexFunc(st.Sessions, func(h redisstore.Session) bool {
				return h.Session == s.Session && h.Gateway == id && h.Epoch == s.Epoch
			}); j >= 0 {
				held = &st.Sessions[j]
			}
		}
		if held == nil {
			stale = append(stale, s)
			continue
		}
		live = append(live, lostSession{GatewaySession: s, Device: held.Device, DeviceID: held.DeviceID})
	}
	return live, stale, nil
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
		value, err := proto.Marshal(&pb.SessionEvent{
			Type: pb.EventType_EVENT_TYPE_CONNECT, App: c.App, User: c.User, Session: c.Session,
			Device: &pb.Device{Type: s.Device, Id: s.DeviceID}, Gateway: s.Gateway, GatewayEpoch: s.Epoch,
			TimestampMs: s.ConnectedAt.UnixMilli(),
		})
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(schemas.SessionKey(c.App, c.User, c.Session)), Value: value})
	}
	if len(recs) == 0 {
		return nil
	}
	p.log.Info("sessions reconnected before their gateway_lost disconnect: their connects are written again", "sessions", len(recs))
	return p.retry(ctx, "writing kept sessions' connects", func(ctx context.Context) error {
		return cl.ProduceSync(ctx, recs...).FirstErr()
	})
}
