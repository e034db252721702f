package processor

// Poison records: a record of a state topic that does not decode, or that
// decodes into something invalid, cannot be applied, and retrying it would
// stop its partition for good. It goes to presence.deadletter as it was,
// with the reason and where it came from in headers, and the partition
// moves on. It is written before the partition's checkpoint moves past it,
// so none is lost.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
)

// deadLetter is the record on presence.deadletter for r, which could not
// be applied because of err.
func deadLetter(r *kgo.Record, err error) *kgo.Record {
	return &kgo.Record{
		Topic: schemas.DeadLetterTopic,
		Key:   r.Key,
		Value: r.Value,
		Headers: append(r.Headers,
			kgo.RecordHeader{Key: schemas.DeadLetterReason, Value: []byte(err.Error())},
			kgo.RecordHeader{Key: schemas.DeadLetterSource, Value: fmt.Appendf(nil, "%s/%d/%d", r.Topic, r.Partition, r.Offset)},
		),
		Timestamp: r.Timestamp,
	}
}

// sendDeadLetters writes recs to presence.deadletter, retrying until Kafka
// has them or ctx ends. A rebuild sends history's poison records again (a
// new Redis may be the first to meet them); presence-source tells copies
// apart. A quiet processor (presence replay, beside live processors that
// met them) writes none.
func (p *Processor) sendDeadLetters(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if len(recs) == 0 || p.cfg.Quiet {
		return nil
	}
	return p.retry(ctx, "writing dead letters", func(ctx context.Context) error {
		return cl.ProduceSync(ctx, recs...).FirstErr()
	})
}
