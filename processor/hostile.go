package processor

// Hostile records: anyone who can write to the topics can write anything,
// and no record may stop the processor, hide a user's later records, or
// keep a session alive forever. Before a record is decoded, admit checks
// what decoding cannot: its size, and that it is in the partition its key
// belongs to. Decoding then checks its key is canonical and matches its
// value (decode.go). A record that fails any check is a dead letter
// (deadletter.go); one refused under a canonical key in its own partition
// also ends what that key held (batch.refuse), as compaction will. The
// times a record carries are clamped to the processor's clock (clampTime),
// and a heartbeat's lease is capped (Config.MaxGatewayLease, lease.go).

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
)

// Limits bound what the processor takes from a record, and how long a
// partition may stall. Zero values mean the defaults.
type Limits struct {
	// MaxRecordBytes is the largest record (key, value and headers)
	// applied (DefaultMaxRecordBytes); a larger one is a dead letter.
	MaxRecordBytes int
	// MaxClockSkew is how far ahead of the processor's clock a record's
	// time may be (DefaultMaxClockSkew); a later time is taken as now.
	MaxClockSkew time.Duration
	// MaxGatewayLease is the longest lease a heartbeat may ask for
	// (DefaultMaxGatewayLease, and at least Config.GatewayLease); a
	// longer one is cut to it.
	MaxGatewayLease time.Duration
	// StallTimeout is how long a partition may hold records without
	// progress before Ready fails (DefaultStallTimeout; see stall.go).
	StallTimeout time.Duration
}

// RecordFlags registers on fs the flags of the limits that decide what
// is applied of a record, --max-record-bytes and --max-clock-skew: a
// replay must be given the live processors' values to build their state.
func (l *Limits) RecordFlags(fs *flag.FlagSet) {
	fs.IntVar(&l.MaxRecordBytes, "max-record-bytes", DefaultMaxRecordBytes,
		"largest record (key, value and headers) applied; a larger one goes to "+schemas.DeadLetterTopic)
	fs.DurationVar(&l.MaxClockSkew, "max-clock-skew", DefaultMaxClockSkew,
		"how far ahead of this clock a record's time may be; a later time is taken as now")
}

// Flags registers on fs the flags of all the limits: RecordFlags, and
// --max-gateway-lease and --stall-timeout.
func (l *Limits) Flags(fs *flag.FlagSet) {
	l.RecordFlags(fs)
	fs.DurationVar(&l.MaxGatewayLease, "max-gateway-lease", DefaultMaxGatewayLease,
		"longest lease a gateway heartbeat may ask for; a longer one is cut to it")
	fs.DurationVar(&l.StallTimeout, "stall-timeout", DefaultStallTimeout,
		"how long a partition may hold records without progress before readiness fails")
}

// DefaultMaxRecordBytes is the largest record applied by default: 64 KiB.
// The largest legal record is about 2 KiB (a SessionEvent with six ids of
// schemas.MaxIDBytes, an app id of schemas.MaxAppBytes and a custom
// status of schemas.MaxCustomText characters of 4 bytes, its key up to
// three escaped ids), so the cap leaves room for headers a gateway adds
// (tracing) and for fields to come, while a dead letter's copy of any
// record under it (see deadletter.go) stays far below the producer's 1 MB
// limit.
const DefaultMaxRecordBytes = 64 << 10

// DefaultMaxClockSkew is how far ahead of the processor's clock a
// record's time may be by default.
const DefaultMaxClockSkew = 5 * time.Second

// DefaultMaxGatewayLease is the longest lease a heartbeat may ask for by
// default.
const DefaultMaxGatewayLease = 5 * time.Minute

// Reasons a record is refused before it is decoded.
var (
	errTooLarge       = errors.New("record too large")
	errWrongPartition = errors.New("record in the wrong partition for its key")
)

// recordBytes is the size of a record as the cap measures it: its key,
// value and headers.
func recordBytes(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// admit checks what must hold of a record before it is decoded: it is no
// larger than Config.MaxRecordBytes, and it is in the partition of its key
// on a topic of n partitions (unchecked when n is not known). A record in
// another partition would be applied out of order with its user's other
// records, and versioned by an offset of another partition: the user's
// later records would count as duplicates.
//
// The partition is that of the topic's current count: records written
// before the count grew are in the partition of the old one, and are
// refused. Growing the partitions of a state topic means copying its
// records into a topic of the new count (see schemas.DefaultPartitions).
func (p *Processor) admit(r *kgo.Record, n int) error {
	if r.Attrs.IsControl() {
		return nil
	}
	if size := recordBytes(r); size > p.cfg.MaxRecordBytes {
		return fmt.Errorf("record %s/%d at offset %d: %w: %d bytes, at most %d", r.Topic, r.Partition, r.Offset,
			errTooLarge, size, p.cfg.MaxRecordBytes)
	}
	if n > 0 {
		if want := schemas.Partition(r.Key, n); want != int(r.Partition) {
			return fmt.Errorf("record %s/%d at offset %d: %w: it belongs in partition %d of %d", r.Topic, r.Partition, r.Offset,
				errWrongPartition, want, n)
		}
	}
	return nil
}

// partitionCount returns the partition count of topic as of its
// assignment, 0 when not known.
func (p *Processor) partitionCount(topic string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[topic]
}

// clampTime bounds a time a record carries (a session's connect or
// disconnect, a custom status, a heartbeat) to the processor's clock plus
// Config.MaxClockSkew: a time later than that becomes now. A session
// connected in the year 9999 would otherwise outlive its gateway's lease
// forever, and a heartbeat from the future would hide every later one.
//
// Old times are kept as they are: the topics hold records from long ago
// by design (compaction keeps a session's connect as long as it lasts),
// and presence replay applies them all. Clamping never changes a record
// whose time was in the past when it was written, so a replay applies
// honest records exactly as the live processor did; only a record stamped
// in the future may be given another time (the replay's clock, later than
// the live one), and its time meant nothing anyway.
func (p *Processor) clampTime(t time.Time) time.Time {
	now := p.cfg.Now()
	if t.After(now.Add(p.cfg.MaxClockSkew)) {
		p.metrics.clamped.WithLabelValues("time").Inc()
		return now
	}
	return t
}
