package processor

// Every processor reads the heartbeats of every gateway: presence.gateways
// is small (one live record per gateway, compacted), and a gateway's
// sessions are in every partition of presence.sessions, so each processor
// judges every lease and ends the lost sessions of its own partitions,
// found in memory (lease.go). The heartbeats are read outside the group,
// from the beginning of every partition, each time the processor joins.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
)

// readHeartbeats reads presence.gateways until ctx ends, renewing leases;
// cl writes the dead letters of invalid heartbeats.
func (p *Processor) readHeartbeats(ctx context.Context, cl *kgo.Client) error {
	hb, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumeTopics(schemas.GatewaysTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(fetchMaxWait),
	}, p.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("creating kafka client for heartbeats: %w", err)
	}
	defer hb.Close()
	ends, err := p.heartbeatEnds(ctx)
	if err != nil {
		return err
	}
	p.leases.setPartitions(len(ends))
	p.mu.Lock()
	p.counts[schemas.GatewaysTopic] = len(ends)
	for partition, end := range ends {
		p.spans[topicPartition{schemas.GatewaysTopic, partition}] = &span{end: end, moved: p.cfg.Now()}
	}
	p.mu.Unlock()
	for {
		fetches := hb.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.log.Warn("fetching heartbeats failed", "topic", topic, "partition", partition, "err", err)
		})
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			end := fp.Records[len(fp.Records)-1]
			tp := topicPartition{fp.Topic, fp.Partition}
			p.waiting(tp, max(fp.LastStableOffset, end.Offset+1))
			if p.renewLeases(ctx, cl, fp.Records) == nil {
				p.caughtUp(tp, end.Offset+1, fp.LastStableOffset)
			}
		})
	}
}

// heartbeatEnds returns the end of each partition of presence.gateways,
// retrying until it can read them or ctx ends.
func (p *Processor) heartbeatEnds(ctx context.Context) (map[int32]int64, error) {
	var b backoff
	for {
		listed, err := p.adm.Load().ListCommittedOffsets(ctx, schemas.GatewaysTopic)
		if err == nil {
			err = listed.Error()
		}
		if err == nil {
			ends := map[int32]int64{}
			listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
			if len(ends) > 0 {
				return ends, nil
			}
			err = fmt.Errorf("%s has no partitions", schemas.GatewaysTopic)
		}
		p.log.Warn("listing the ends of presence.gateways failed; retrying", "backoff", b.delay(), "err", err)
		if !b.wait(ctx) {
			return nil, ctx.Err()
		}
	}
}
