package bench

// The ingest scenario's baseline: the same records through Kafka and into
// Redis with the tools alone.

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// rawProducer produces session records with a plain franz-go client: the
// same values, keys and partitions as gateway.Publisher's, without its
// validation.
type rawProducer struct {
	cl             *kgo.Client
	gateway, epoch string
	seq            atomic.Uint64
}

// send produces the records of events and waits for Kafka's
// acknowledgement, as gateway.Publisher's Publish does.
func (p *rawProducer) send(ctx context.Context, events ...gateway.Event) error {
	now := time.Now()
	recs := make([]*kgo.Record, len(events))
	for i, e := range events {
		ev := &pb.SessionEvent{
			App: e.App, User: e.User, Session: e.Session,
			Device:  &pb.Device{Type: e.Device, Id: e.DeviceID},
			Gateway: p.gateway, GatewayEpoch: p.epoch, Sequence: p.seq.Add(1),
			TimestampMs: now.UnixMilli(),
		}
		switch e.Type {
		case gateway.Connect:
			ev.Type = pb.EventType_EVENT_TYPE_CONNECT
		case gateway.Disconnect:
			ev.Type, ev.Reason = pb.EventType_EVENT_TYPE_DISCONNECT, gateway.ClientClosed
		}
		value, err := proto.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encoding event %d: %w", i, err)
		}
		recs[i] = &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(schemas.SessionKey(e.App, e.User, e.Session)),
			Value: value, Timestamp: now}
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producing %d records: %w", len(recs), err)
	}
	return nil
}

// rawConsumer reads the sessions topic with a plain franz-go client (no
// group: every partition, from where it ended when the consumer started)
// and writes each poll's records to Redis blindly in one pipeline: HSET
// of the session's field in the user's hash for a connect, HDEL of it for
// a disconnect. It reads no state, checks no version, keeps no checkpoint
// and announces nothing.
type rawConsumer struct {
	cl  *kgo.Client
	rdb redis.UniversalClient
	// want is how many records to write; reached is closed once written
	// has.
	want    int64
	written atomic.Int64
	reached chan struct{}
	stop    context.CancelFunc
	ended   chan struct{}
	err     error
}

// startRawConsumer starts a consumer of what the sessions topic receives
// from now on, which writes want records to rdb.
func startRawConsumer(ctx context.Context, k *kafka, rdb redis.UniversalClient, want int64) (*rawConsumer, error) {
	ends, err := k.ends(ctx, schemas.SessionsTopic)
	if err != nil {
		return nil, err
	}
	from := map[int32]kgo.Offset{}
	for p, end := range ends {
		from[p] = kgo.NewOffset().At(end)
	}
	cl, err := k.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.SessionsTopic: from}))
	if err != nil {
		return nil, err
	}
	c := &rawConsumer{cl: cl, rdb: rdb, want: want, reached: make(chan struct{}), ended: make(chan struct{})}
	ctx, c.stop = context.WithCancel(ctx)
	go func() {
		defer close(c.ended)
		c.err = c.run(ctx)
	}()
	return c, nil
}

// run polls and writes until ctx ends or a poll or write fails.
func (c *rawConsumer) run(ctx context.Context) error {
	for {
		fetches := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fetches.Err(); err != nil {
			return fmt.Errorf("polling %s: %w", schemas.SessionsTopic, err)
		}
		p := c.rdb.Pipeline()
		var n int64
		var bad error
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Value == nil {
				return // a tombstone: no session to write
			}
			ev := new(pb.SessionEvent)
			if err := proto.Unmarshal(r.Value, ev); err != nil {
				bad = fmt.Errorf("decoding %s/%d at %d: %w", r.Topic, r.Partition, r.Offset, err)
				return
			}
			key, field := userKey(ev.GetUser()), sessionField(ev.GetSession())
			if ev.GetType() == pb.EventType_EVENT_TYPE_DISCONNECT {
				p.HDel(ctx, key, field)
			} else {
				p.HSet(ctx, key, field, rawSession(ev.GetDevice().GetType(), ev.GetDevice().GetId(),
					ev.GetGateway(), ev.GetGatewayEpoch(), time.UnixMilli(ev.GetTimestampMs())))
			}
			n++
		})
		if bad != nil {
			return bad
		}
		if n == 0 {
			continue
		}
		if _, err := p.Exec(ctx); err != nil {
			return fmt.Errorf("raw pipeline of %d commands: %w", n, err)
		}
		if c.written.Add(n) >= c.want {
			close(c.reached)
			return nil
		}
	}
}

// wait waits until the consumer has written every record it wants, giving
// up when it writes nothing for stallLimit.
func (c *rawConsumer) wait(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := int64(-1), time.Now()
	for {
		select {
		case <-c.reached:
			return nil
		case <-c.ended:
			select {
			case <-c.reached:
				return nil
			default:
			}
			return fmt.Errorf("the raw consumer stopped at %d of %d records: %w", c.written.Load(), c.want, c.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if n := c.written.Load(); n != last {
				last, lastAt = n, time.Now()
			} else if time.Since(lastAt) > stallLimit {
				return fmt.Errorf("the raw consumer wrote nothing for %s, at %d of %d records", stallLimit, n, c.want)
			}
		}
	}
}

// close stops the consumer and closes its client.
func (c *rawConsumer) close() {
	c.stop()
	<-c.ended
	c.cl.Close()
}
