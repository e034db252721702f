package queryapi

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/service/httpapi"
)

// The writes of the query API are records in the compacted topics, never
// Redis commands: the processor materializes them into Redis, so replaying
// the topics rebuilds them (a removal is a tombstone on the same key).

// Kinds of writes, the kind label of presence_queryapi_writes_total.
const (
	kindCustomStatus = "custom_status"
	kindFriend       = "friend"
	kindSubscription = "subscription"
	kindPrivacy      = "privacy"
)

// DefaultWriteTimeout is the default of Config.WriteTimeout.
const DefaultWriteTimeout = 10 * time.Second

// ProducerOpts are the franz-go options every writer of the Presence
// topics uses: records acknowledged by all in-sync replicas (the producer
// is idempotent by default) and partitioned by records.Partitioner. A
// record whose context ends fails even when it was sent to a broker that
// has not answered: otherwise a write to a broker that stops answering
// waits for as long as Kafka is down, whatever its context. The price is
// that such a record may be written after all, so a retry may write it
// twice, which changes nothing: every record is keyed.
func ProducerOpts(brokers []string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(records.Partitioner()),
		kgo.AllowIdempotentProduceCancellation(),
	}
}

// write produces recs and waits until Kafka has them all. It is detached
// from the client's request, so that a client hanging up does not leave
// half of a write cancelled, and bounded by the write timeout. A failure
// is a 503 the client may retry: every write is keyed, so writing it again
// changes nothing but the timestamps.
func (s *Server) write(ctx context.Context, kind string, recs []*kgo.Record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.writeTimeout)
	defer cancel()
	failed, first := records.Produce(ctx, s.kafka, recs...)
	s.metrics.written(kind, len(recs)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%w (%d of %d records failed: %w)",
			httpapi.Errorf(httpapi.CodeUnavailable, "could not write to Kafka; the request is safe to retry"),
			failed, len(recs), first)
	}
	return nil
}

// customStatusRecord is the record on presence.sessions that sets user's
// custom status, or clears it when custom is nil.
func customStatusRecord(app, user string, custom *redisstore.Custom, at time.Time) (*kgo.Record, error) {
	key := schemas.CustomStatusKey(app, user)
	if custom == nil {
		return records.Tombstone(schemas.SessionsTopic, key, at), nil
	}
	ev := &pb.SessionEvent{
		Type: pb.EventType_EVENT_TYPE_CUSTOM_STATUS, App: app, User: user,
		Custom:      &pb.CustomStatus{Status: int32(custom.Status), Text: custom.Text},
		TimestampMs: at.UnixMilli(),
	}
	if err := schemas.ValidateSessionEvent(ev); err != nil {
		return nil, err
	}
	return records.Encode(schemas.SessionsTopic, key, ev, at)
}

// FriendRecords are the two records on presence.friends that make user
// and friend friends, one in each user's partition. Their error wraps
// schemas.ErrInvalid when the edge is not valid.
func FriendRecords(app, user, friend string, at time.Time) ([]*kgo.Record, error) {
	recs := make([]*kgo.Record, 0, 2)
	for _, half := range [][2]string{{user, friend}, {friend, user}} {
		e := &pb.FriendEdge{App: app, User: half[0], Friend: half[1], TimestampMs: at.UnixMilli()}
		if err := schemas.ValidateFriendEdge(e); err != nil {
			return nil, err
		}
		r, err := records.Encode(schemas.FriendsTopic, schemas.FriendKey(app, half[0], half[1]), e, at)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// friendTombstones are the two tombstones that end a friendship.
func friendTombstones(app, user, friend string, at time.Time) []*kgo.Record {
	return []*kgo.Record{
		records.Tombstone(schemas.FriendsTopic, schemas.FriendKey(app, user, friend), at),
		records.Tombstone(schemas.FriendsTopic, schemas.FriendKey(app, friend, user), at),
	}
}

// subscriptionRecord is the record on presence.subscriptions by which
// subscriber watches user until expires, or stops watching when expires is
// zero (a tombstone).
func subscriptionRecord(app, user, subscriber string, expires, at time.Time) (*kgo.Record, error) {
	key := schemas.SubscriptionKey(app, user, subscriber)
	if expires.IsZero() {
		return records.Tombstone(schemas.SubscriptionsTopic, key, at), nil
	}
	sub := &pb.Subscription{
		App: app, User: user, Subscriber: subscriber,
		ExpiresAtMs: expires.UnixMilli(), TimestampMs: at.UnixMilli(),
	}
	if err := schemas.ValidateSubscription(sub); err != nil {
		return nil, err
	}
	return records.Encode(schemas.SubscriptionsTopic, key, sub, at)
}
