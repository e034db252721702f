package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// NotifyRetry is how long Notifications waits before looking for the
// notify topic again when it cannot be described yet.
const NotifyRetry = 500 * time.Millisecond

// NotifyOpt configures Notifications.
type NotifyOpt func(*notifyConfig)

type notifyConfig struct {
	reading     func(partition int32, offset int64)
	undecodable func(offset int64, err error)
	readError   func(err error)
}

// OnReading is called once Notifications has found its partition and the
// end of it: every notification written there from offset on is handled.
func OnReading(fn func(partition int32, offset int64)) NotifyOpt {
	return func(c *notifyConfig) { c.reading = fn }
}

// OnUndecodable is called for every record keyed to this gateway whose
// value is not a Notification; the record is skipped.
func OnUndecodable(fn func(offset int64, err error)) NotifyOpt {
	return func(c *notifyConfig) { c.undecodable = fn }
}

// OnReadError is called with every error Notifications retries past: the
// notify topic missing or not answering while it looks for its partition,
// a failed fetch afterwards.
func OnReadError(fn func(err error)) NotifyOpt {
	return func(c *notifyConfig) { c.readError = fn }
}

// Notifications reads the notifications for this gateway's connections and
// calls handle with each, in the order the processor wrote them, until ctx
// ends; then it returns nil. handle runs on Notifications' goroutine: while
// it runs, reading waits.
//
// The processor writes every notification for the sessions a gateway holds
// under the key schemas.NotifyKey(id), so into one partition of
// schemas.NotifyTopic. Notifications reads that partition only, from its
// end (a notification is for connections live now), and skips the records
// of other gateways sharing it. While the topic does not exist yet it
// looks again every NotifyRetry. It reads with a Kafka client of its own,
// made with the publisher's brokers and KafkaOpts, closed when it returns.
// Growing the topic's partition count moves the gateway's partition: the
// gateway must then restart.
func (p *Publisher) Notifications(ctx context.Context, handle func(*pb.Notification), opts ...NotifyOpt) error {
	cfg := notifyConfig{
		reading:     func(int32, int64) {},
		undecodable: func(int64, error) {},
		readError:   func(error) {},
	}
	for _, o := range opts {
		o(&cfg)
	}
	key := schemas.NotifyKey(p.cfg.id)
	partition, offset, err := p.notifyStart(ctx, key, cfg.readError)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(p.cfg.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			schemas.NotifyTopic: {partition: kgo.NewOffset().At(offset)},
		}),
		// Behind by more than the topic keeps: what is left is stale.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
	}, p.cfg.kafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("creating kafka client for notifications: %w", err)
	}
	defer cl.Close()
	cfg.reading(partition, offset)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			cfg.readError(fmt.Errorf("reading %s partition %d: %w", topic, partition, err))
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if string(r.Key) != key {
				return
			}
			n := new(pb.Notification)
			if err := proto.Unmarshal(r.Value, n); err != nil {
				cfg.undecodable(r.Offset, err)
				return
			}
			handle(n)
		})
	}
}

// notifyStart finds the partition of key on the notify topic and its end
// offset, trying again every NotifyRetry until it can or ctx ends.
func (p *Publisher) notifyStart(ctx context.Context, key string, readError func(error)) (int32, int64, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.cfg.brokers...)}, p.cfg.kafkaOpts...)...)
	if err != nil {
		return 0, 0, fmt.Errorf("creating kafka client for notifications: %w", err)
	}
	defer cl.Close()
	for {
		partition, offset, err := notifyEnd(ctx, cl, key)
		if err == nil || ctx.Err() != nil {
			return partition, offset, nil
		}
		readError(err)
		t := time.NewTimer(NotifyRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, 0, nil
		case <-t.C:
		}
	}
}

// notifyEnd asks Kafka for the partition count of the notify topic, then
// for the end offset of the partition of key.
func notifyEnd(ctx context.Context, cl *kgo.Client, key string) (int32, int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(schemas.NotifyTopic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return 0, 0, fmt.Errorf("describing %s: %w", schemas.NotifyTopic, err)
	}
	if len(mresp.Topics) != 1 {
		return 0, 0, fmt.Errorf("describing %s: %d topics in the answer", schemas.NotifyTopic, len(mresp.Topics))
	}
	t := mresp.Topics[0]
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		return 0, 0, fmt.Errorf("describing %s: %w", schemas.NotifyTopic, err)
	}
	if len(t.Partitions) == 0 {
		return 0, 0, fmt.Errorf("describing %s: no partitions", schemas.NotifyTopic)
	}
	partition := int32(schemas.Partition([]byte(key), len(t.Partitions)))

	list := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = schemas.NotifyTopic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition = partition
	lp.Timestamp = -1 // the end
	lt.Partitions = append(lt.Partitions, lp)
	list.Topics = append(list.Topics, lt)
	lresp, err := list.RequestWith(ctx, cl)
	if err != nil {
		return 0, 0, fmt.Errorf("finding the end of %s partition %d: %w", schemas.NotifyTopic, partition, err)
	}
	for _, t := range lresp.Topics {
		for _, p := range t.Partitions {
			if t.Topic != schemas.NotifyTopic || p.Partition != partition {
				continue
			}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, 0, fmt.Errorf("finding the end of %s partition %d: %w", schemas.NotifyTopic, partition, err)
			}
			return partition, p.Offset, nil
		}
	}
	return 0, 0, fmt.Errorf("finding the end of %s partition %d: not in the answer", schemas.NotifyTopic, partition)
}
