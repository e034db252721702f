package processor

// Stalls: a partition that holds records but applies none of them (Redis
// unreachable, a step retried without end) leaves its users' state
// frozen while the rest of the processor looks healthy. Each assigned
// partition remembers when it last made progress, or when records arrived
// at it while it had none waiting (span.moved); a partition with records
// waiting and no progress for longer than Config.StallTimeout is stalled.
// Ready fails while any is, so that a load balancer or an orchestrator
// sees it, and presence_processor_stalled_partitions counts them.
//
// A step outside a partition's batch (a sweep writing to Kafka) that
// blocks stops every fetch, so that no partition learns it has records:
// Ready also fails while the consuming loop has not polled for longer
// than Config.StallTimeout.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// DefaultStallTimeout is how long a partition may hold records without
// progress before Ready fails, by default.
const DefaultStallTimeout = time.Minute

// waiting notes that the partition holds records up to high (its end as
// of a fetch), before they are applied.
func (p *Processor) waiting(tp topicPartition, high int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.spans[tp]
	if !ok {
		return
	}
	if s.next >= s.last() { // nothing was waiting: the clock starts now
		s.moved = p.cfg.Now()
	}
	s.high = max(s.high, high)
}

// last is the end of the records the partition is known to hold: its end
// when assigned, or as of the last fetch.
func (s *span) last() int64 {
	if s.end == math.MaxInt64 { // not yet started
		return s.high
	}
	return max(s.end, s.high)
}

// stalled returns the partitions with records waiting and no progress for
// longer than Config.StallTimeout, as "topic/partition (for how long)".
func (p *Processor) stalled() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now()
	var out []string
	for tp, s := range p.spans {
		end := s.last()
		if s.moved.IsZero() || s.next >= end {
			continue
		}
		if idle := now.Sub(s.moved); idle > p.cfg.StallTimeout {
			out = append(out, fmt.Sprintf("%s/%d (%d records waiting, no progress for %s)", tp.topic, tp.partition, end-s.next, idle.Round(time.Second)))
		}
	}
	slices.Sort(out)
	return out
}

// stallError is the error of Ready while partitions are stalled, or the
// consuming loop is.
func (p *Processor) stallError() error {
	stalled := p.stalled()
	if idle := p.cfg.Now().Sub(time.Unix(0, p.polled.Load())); p.joined.Load() && idle > p.cfg.StallTimeout {
		stalled = append(stalled, fmt.Sprintf("no poll for %s", idle.Round(time.Second)))
	}
	if len(stalled) == 0 {
		return nil
	}
	return errors.New("processor is stalled: " + strings.Join(stalled, ", "))
}
