// Package gateway is the library an IM gateway embeds to publish its
// clients' connects and disconnects, and its own heartbeats, to the Presence
// topics, and to read the notifications the processor addresses to its
// clients (Notifications). It depends on franz-go and the schemas only;
// metrics and logging plug in through franz-go hooks (KafkaOpts) and the
// callbacks of Notifications.
//
// Every publish waits until Kafka has acknowledged the records on all
// in-sync replicas, through an idempotent producer, so a nil error means
// the records are durable and ordered per user.
//
// While Kafka is unreachable, a publish fails when its context ends, with
// the context's error: give it a deadline. The publisher holds at most
// MaxBuffered records that Kafka has not acknowledged; a publish that
// finds no room waits for it, within its context, holding only the record
// it is adding. The records of a publish that failed may or may not be in
// Kafka: they are the caller's to publish again, which is harmless, since
// every record is keyed by its session and a repeated connect or
// disconnect changes nothing (set Event.At so that a retry carries the
// time of the first attempt) — as long as no later event of the same
// session was published meanwhile: a connect retried after its session's
// disconnect puts the session back online. Records fail in partition order: when a
// publish fails, the records queued behind its own in the same partitions
// fail too, so publishes running beside it may fail with it.
//
// A publish spans as many partitions as its users do. By default, when
// Kafka acknowledges some of them and not others (a broker down among
// several), the publish fails with part of it written. With the Atomic
// option, every publish is one Kafka transaction, written whole or not at
// all. Choose it when a failed publish must leave nothing behind, as the
// gateway server does for the batches that external gateways post, and
// when every consumer of presence.sessions and presence.gateways reads
// with isolation.level=read_committed, as the processor does: a consumer
// reading uncommitted records sees aborted records too. It costs a
// transaction per group of publishes (see Atomic), a few more round trips
// to Kafka per publish, and it needs the permission to write with the
// transactional id TransactionalID(id).
package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/schemas/status"
)

// Type is the kind of an Event.
type Type int

// Event types.
const (
	Connect Type = iota + 1
	Disconnect
	// ActivityChange reports the activity of a live session
	// (Event.Activity). Its record carries the whole session, as its
	// connect's does (Device is required), under the session's key, so
	// that compaction, which keeps only the key's latest record, keeps
	// the session. Publish it only for a session the gateway holds, never
	// after its disconnect: it would connect the session again.
	ActivityChange
)

// Reason says why a session ended.
type Reason = pb.DisconnectReason

// Reasons a gateway gives for a disconnect.
const (
	ClientClosed    = pb.DisconnectReason_DISCONNECT_REASON_CLIENT_CLOSED
	GatewayShutdown = pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_SHUTDOWN
	Timeout         = pb.DisconnectReason_DISCONNECT_REASON_TIMEOUT
)

// Event is a connect, disconnect or activity change of one session.
type Event struct {
	Type               Type
	App, User, Session string
	// Device is the kind of client ("ios", "web", ...); required on
	// connects. DeviceID identifies the physical device; optional.
	Device, DeviceID string
	// Reason is set on disconnects (ClientClosed when zero).
	Reason Reason
	// Activity is the session's activity: required on an ActivityChange,
	// optional on a connect (unset means active).
	Activity status.Activity
	// Gateway and Epoch name the gateway holding the session when it is
	// not this publisher's own (an ingestion endpoint publishing for
	// external gateways); empty means the publisher's.
	Gateway, Epoch string
	// At is when the gateway saw the event; zero means now (the
	// publisher's clock). Setting it makes a re-sent event carry the same
	// time, so connected_at and last_seen do not move on a retry.
	At time.Time
}

// Publisher publishes the records of one gateway process.
type Publisher struct {
	cfg config
	cl  *kgo.Client // without Atomic
	tx  *committer  // with Atomic
	seq atomic.Uint64
}

// New returns a Publisher connected to Kafka.
func New(opts ...Opt) (*Publisher, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("configuring gateway publisher: %w", err)
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(records.Partitioner()),
		kgo.MaxBufferedRecords(cfg.maxBuffered),
	}, cfg.kafkaOpts...)
	if cfg.atomic {
		tx, err := newCommitter(cfg, kopts)
		if err != nil {
			return nil, fmt.Errorf("creating kafka client: %w", err)
		}
		return &Publisher{cfg: cfg, tx: tx}, nil
	}
	// Without it, records sent to a broker that then stops answering
	// cannot fail: they keep their room in the buffer while Kafka is
	// down, and are written once it is back, after their publish
	// failed. Failing them may write a record twice when the caller
	// publishes it again, which changes nothing. (A transactional
	// client cannot have it, and needs it not: an aborted transaction
	// writes nothing.)
	kopts = append(kopts, kgo.AllowIdempotentProduceCancellation())
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka client: %w", err)
	}
	return &Publisher{cfg: cfg, cl: cl}, nil
}

// ID is the gateway's id; Epoch its boot epoch.
func (p *Publisher) ID() string    { return p.cfg.id }
func (p *Publisher) Epoch() string { return p.cfg.epoch }

// Atomic says whether every publish is all or nothing (see Atomic).
func (p *Publisher) Atomic() bool { return p.tx != nil }

// client is the Kafka client publishing now.
func (p *Publisher) client() *kgo.Client {
	if p.tx != nil {
		return p.tx.client()
	}
	return p.cl
}

// Ping checks that Kafka answers.
func (p *Publisher) Ping(ctx context.Context) error {
	if err := p.client().Ping(ctx); err != nil {
		return fmt.Errorf("pinging kafka: %w", err)
	}
	return nil
}

// Publish validates every event, then publishes them all and waits for
// Kafka's acknowledgement. A batch with an invalid event is rejected whole,
// before anything is written; the error wraps schemas.ErrInvalid. Any
// other error means Kafka did not acknowledge every record, because ctx
// ended first (the error wraps ctx.Err()) or Kafka refused them: some may
// be written (with Atomic: all or none, see there), and the events are
// the caller's to publish again (see the package doc).
func (p *Publisher) Publish(ctx context.Context, events ...Event) error {
	recs := make([]*kgo.Record, len(events))
	now := p.cfg.now()
	for i, e := range events {
		ev, err := p.sessionEvent(e, now)
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		recs[i], err = records.Encode(schemas.SessionsTopic, schemas.SessionKey(e.App, e.User, e.Session), ev, now)
		if err != nil {
			return fmt.Errorf("encoding event %d: %w", i, err)
		}
	}
	return p.produce(ctx, recs)
}

func (p *Publisher) sessionEvent(e Event, now time.Time) (*pb.SessionEvent, error) {
	ev := e.record(now)
	if ev.Gateway == "" {
		ev.Gateway, ev.GatewayEpoch = p.cfg.id, p.cfg.epoch
		ev.Sequence = p.seq.Add(1)
	}
	if err := schemas.ValidateSessionEvent(ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// Validate checks the event as Publish does, for a caller that wants to
// reject a batch before publishing any of it. An event naming no gateway
// is checked as if the publisher's own were set.
func (e Event) Validate() error {
	ev := e.record(time.Now())
	if ev.Gateway == "" {
		ev.Gateway, ev.GatewayEpoch = "self", "self"
	}
	return schemas.ValidateSessionEvent(ev)
}

// record is the event as a record value, without the publisher's own
// gateway fields.
func (e Event) record(now time.Time) *pb.SessionEvent {
	if !e.At.IsZero() {
		now = e.At
	}
	ev := &pb.SessionEvent{
		App: e.App, User: e.User, Session: e.Session,
		Device:       &pb.Device{Type: e.Device, Id: e.DeviceID},
		Gateway:      e.Gateway,
		GatewayEpoch: e.Epoch,
		TimestampMs:  now.UnixMilli(),
	}
	switch e.Type {
	case Connect:
		ev.Type = pb.EventType_EVENT_TYPE_CONNECT
	case Disconnect:
		ev.Type = pb.EventType_EVENT_TYPE_DISCONNECT
		ev.Reason = cmp.Or(e.Reason, ClientClosed)
	case ActivityChange:
		ev.Type = pb.EventType_EVENT_TYPE_ACTIVITY
	}
	ev.Activity = activityProto(e.Activity)
	return ev
}

// activityProto returns a as a record says it: unset for "", and a value
// out of the enum, which validation refuses, for one not known.
func activityProto(a status.Activity) pb.Activity {
	switch a {
	case "":
		return pb.Activity_ACTIVITY_UNSPECIFIED
	case status.Active:
		return pb.Activity_ACTIVITY_ACTIVE
	case status.Idle:
		return pb.Activity_ACTIVITY_IDLE
	case status.Background:
		return pb.Activity_ACTIVITY_BACKGROUND
	}
	return -1
}

// Heartbeat renews the gateway's lease.
func (p *Publisher) Heartbeat(ctx context.Context) error {
	return p.HeartbeatFor(ctx, p.cfg.id, p.cfg.epoch)
}

// HeartbeatFor renews the lease of another gateway, for an ingestion
// endpoint that publishes on behalf of external gateways. The lease lasts
// as long as the publisher's own.
func (p *Publisher) HeartbeatFor(ctx context.Context, gateway, epoch string) error {
	if err := errors.Join(schemas.ValidateID("gateway", gateway), schemas.ValidateID("epoch", epoch)); err != nil {
		return err
	}
	now := p.cfg.now()
	r, err := records.Encode(schemas.GatewaysTopic, gateway, &pb.GatewayHeartbeat{
		Gateway: gateway, Epoch: epoch,
		LeaseMs: p.cfg.lease.Milliseconds(), TimestampMs: now.UnixMilli(),
	}, now)
	if err != nil {
		return fmt.Errorf("encoding heartbeat: %w", err)
	}
	return p.produce(ctx, []*kgo.Record{r})
}

// produce publishes recs and waits until Kafka has acknowledged them all,
// or ctx ends (records.Produce: records of an ended context still count
// against MaxBuffered until franz-go fails them); with Atomic, until their
// transaction has ended.
func (p *Publisher) produce(ctx context.Context, recs []*kgo.Record) error {
	if p.tx != nil {
		return p.tx.publish(ctx, recs)
	}
	if failed, err := records.Produce(ctx, p.cl, recs...); err != nil {
		return fmt.Errorf("publishing %d records: %d failed: %w", len(recs), failed, err)
	}
	return nil
}

// Close closes the Kafka client, failing the records it holds; with
// Atomic, it first stops the committer, aborting the transaction in
// progress and failing the publishes waiting.
func (p *Publisher) Close() {
	if p.tx != nil {
		p.tx.close()
		return
	}
	p.cl.Close()
}
