package processor

// Dead letters: a record of a consumed topic that cannot be applied (too
// large, in the wrong partition, with a key not in canonical form, that
// does not decode, or that decodes into something invalid) would stop its
// partition for good if retried. It goes to presence.deadletter with the
// reason and where it came from in headers, and the partition moves on.
//
// The copy is bounded, so that it can always be written: the value is cut
// to deadLetterValueBytes, the key to deadLetterKeyBytes, the source's
// headers are kept only while they fit deadLetterHeaderBytes (a copy whose
// key, value or headers were cut says so in the header presence-truncated,
// with the original record's size), and the reason is cut to
// deadLetterReasonBytes. Whatever was cut is
// still in the source topic, at the offset presence-source names, until
// compaction replaces it.
//
// A dead letter is written before the partition's checkpoint moves past
// its record, so none is lost while Kafka takes it. Writing it is retried
// only a few times within deadLetterDeadline: a dead letter that cannot
// be written (the topic is missing or refuses it, Kafka is away longer) is
// counted in presence_processor_dead_letters_failed_total, logged with its
// source and reason (never its value), and dropped. That trades the copy
// of a record nobody can apply for the progress of every user in the
// partition: retrying forever is what stopped the processor for good.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
)

// Bounds of a dead letter's copy: under 80 KiB in all, a twelfth of the
// producer's and Kafka's default 1 MB.
const (
	deadLetterValueBytes  = 64 << 10
	deadLetterKeyBytes    = 4 << 10
	deadLetterHeaderBytes = 4 << 10
	deadLetterReasonBytes = 1 << 10
)

// How hard a dead letter is tried: deadLetterAttempts attempts, all within
// deadLetterDeadline.
const (
	deadLetterAttempts = 3
	deadLetterDeadline = 10 * time.Second
)

// deadLetter counts r as invalid, logs why, and returns its copy for
// presence.deadletter.
func (p *Processor) deadLetter(r *kgo.Record, err error) *kgo.Record {
	reason := truncate(err.Error(), deadLetterReasonBytes)
	source := fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
	p.metrics.invalid.Inc()
	p.log.Warn("invalid record sent to "+schemas.DeadLetterTopic, "source", source, "bytes", recordBytes(r), "reason", reason)
	dl := &kgo.Record{Topic: schemas.DeadLetterTopic, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	truncated := false
	if len(dl.Key) > deadLetterKeyBytes {
		dl.Key, truncated = dl.Key[:deadLetterKeyBytes], true
	}
	if len(dl.Value) > deadLetterValueBytes {
		dl.Value, truncated = dl.Value[:deadLetterValueBytes], true
	}
	headerBytes := 0
	for _, h := range r.Headers {
		headerBytes += len(h.Key) + len(h.Value)
		if headerBytes > deadLetterHeaderBytes {
			truncated = true
			break
		}
		dl.Headers = append(dl.Headers, h)
	}
	dl.Headers = append(dl.Headers,
		kgo.RecordHeader{Key: schemas.DeadLetterReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: schemas.DeadLetterSource, Value: []byte(source)},
	)
	if truncated {
		dl.Headers = append(dl.Headers, kgo.RecordHeader{Key: schemas.DeadLetterTruncated, Value: strconv.AppendInt(nil, int64(recordBytes(r)), 10)})
	}
	return dl
}

// truncate cuts s to at most n bytes, at the start of a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sendDeadLetters writes recs to presence.deadletter, a few times at most
// (see the file's comment); those that cannot be written are counted,
// logged and dropped. It fails only when ctx ends first, so that the
// partition is not checkpointed past records whose dead letters were not
// tried. A rebuild sends history's dead letters again (a new Redis may be
// the first to meet them); presence-source tells copies apart. A quiet
// processor writes none (duties.go).
func (p *Processor) sendDeadLetters(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	send, cancel := context.WithTimeout(context.WithoutCancel(ctx), deadLetterDeadline)
	defer cancel()
	b := backoff{factor: 4}
	var failed []kgo.ProduceResult
	for attempt := 1; ; attempt++ {
		failed = failed[:0]
		for _, res := range cl.ProduceSync(send, recs...) {
			if res.Err != nil {
				failed = append(failed, res)
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == deadLetterAttempts || !retriable(failed[0].Err) {
			break
		}
		p.metrics.applyErrors.Inc()
		p.log.Warn("writing dead letters failed; retrying", "records", len(failed), "backoff", b.delay(), "err", failed[0].Err)
		// Waits while both ctx and send last.
		wait, stop := context.WithCancel(send)
		unhook := context.AfterFunc(ctx, stop)
		waited := b.wait(wait)
		unhook()
		stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !waited {
			break
		}
		recs = make([]*kgo.Record, 0, len(failed))
		for _, res := range failed {
			recs = append(recs, res.Record)
		}
	}
	for _, res := range failed {
		p.metrics.deadLettersFailed.Inc()
		p.log.Error("a dead letter could not be written; its record is skipped", "source", header(res.Record, schemas.DeadLetterSource),
			"reason", header(res.Record, schemas.DeadLetterReason), "bytes", recordBytes(res.Record), "err", res.Err)
	}
	return nil
}

// retriable tells the errors of a produce worth another attempt from those
// that will only repeat (a record the broker finds too large, a topic it
// refuses).
func retriable(err error) bool {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	return true // a timeout, a connection lost
}

// header returns the value of the header key of r.
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
