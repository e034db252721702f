package bench

// The restore scenario's topic side: the users of every partition folded
// from the records of presence.sessions, read by a plain consumer.

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// foldTopic reads every partition of presence.sessions from its beginning
// up to its end in ends with a plain franz-go consumer (no group), and
// folds each record quietly into the state of its partition in parts, as
// a processor restores a partition from its records. done counts the
// users that gained a first record.
func foldTopic(ctx context.Context, k *kafka, ends map[int32]int64, parts []*state.Partition, done *atomic.Int64) error {
	from := map[int32]kgo.Offset{}
	left := 0
	for p, end := range ends {
		if end > 0 {
			from[p] = kgo.NewOffset().AtStart()
			left++
		}
	}
	if left == 0 {
		return nil
	}
	cl, err := k.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.SessionsTopic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, stallLimit)
	defer cancel()
	for left > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading %s: %d partitions not read to their end: %w", schemas.SessionsTopic, left, err)
		}
		if err := fetches.Err(); err != nil {
			return fmt.Errorf("polling %s: %w", schemas.SessionsTopic, err)
		}
		var bad error
		fetches.EachPartition(func(f kgo.FetchTopicPartition) {
			part := parts[f.Partition]
			for _, r := range f.Records {
				c, ok, err := decodeSession(r)
				if err != nil {
					bad = err
					return
				}
				if ok {
					before := part.Len()
					part.Apply(c, true)
					done.Add(int64(part.Len() - before))
				}
				if r.Offset+1 == ends[f.Partition] {
					left--
				}
			}
			part.DropDirty() // Redis holds these already: nothing to write
		})
		if bad != nil {
			return bad
		}
	}
	return nil
}

// decodeSession returns the change a record of presence.sessions makes,
// decoded and checked as the processor's decode does (processor/decode.go:
// the value valid, its ids those of the key); ok is false for a record
// that makes none (a session's tombstone, a transaction's marker).
func decodeSession(r *kgo.Record) (c redisstore.Change, ok bool, err error) {
	if r.Attrs.IsControl() {
		return c, false, nil
	}
	if len(r.Value) == 0 {
		ids, err := schemas.ParseKey(r.Key, 2, 3)
		if err != nil || len(ids) == 3 {
			return c, false, err
		}
		return redisstore.Change{Op: redisstore.ClearCustom, App: ids[0], User: ids[1], At: r.Timestamp,
			Version: r.Offset, Partition: r.Partition}, true, nil
	}
	var ev pb.SessionEvent
	if err := proto.Unmarshal(r.Value, &ev); err != nil {
		return c, false, fmt.Errorf("decoding %s/%d at %d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	if err := schemas.ValidateSessionEvent(&ev); err != nil {
		return c, false, fmt.Errorf("record %s/%d at %d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	c = redisstore.Change{App: ev.App, User: ev.User, Session: ev.Session, Device: ev.GetDevice().GetType(),
		DeviceID: ev.GetDevice().GetId(), Gateway: ev.Gateway, Epoch: ev.GatewayEpoch,
		At: time.UnixMilli(ev.TimestampMs), Version: r.Offset, Partition: r.Partition}
	key := schemas.SessionKey(ev.App, ev.User, ev.Session)
	switch ev.Type {
	case pb.EventType_EVENT_TYPE_CONNECT:
		c.Op = redisstore.Connect
	case pb.EventType_EVENT_TYPE_DISCONNECT:
		c.Op = redisstore.Disconnect
		c.OnlyHere = ev.Reason == pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_LOST
	case pb.EventType_EVENT_TYPE_CUSTOM_STATUS:
		c.Op = redisstore.SetCustom
		c.Custom = redisstore.Custom{Status: int(ev.Custom.Status), Text: ev.Custom.Text}
		key = schemas.CustomStatusKey(ev.App, ev.User)
	}
	if key != string(r.Key) {
		return c, false, fmt.Errorf("record %s/%d at %d: key %q does not match its value's %q", r.Topic, r.Partition, r.Offset, r.Key, key)
	}
	return c, true, nil
}
