package processor

// Group membership and failover. Processors share the partitions through
// a Kafka consumer group; Redis checkpoints, not Kafka's committed
// offsets, say where each partition resumes (see assign.go), so that:
//
//   - Offsets are committed in the background (kgo.AutoCommitMarks): a
//     commit waits while the group is joining, which lasts until a dead
//     member's session times out, and a poll loop that committed
//     synchronously stalled every partition for that long.
//   - The balancer is cooperative-sticky (the field's default): a
//     rebalance revokes only the partitions that move, and the others
//     keep applying through it. A partition moves in two steps: its owner
//     gives it up, then a second rebalance gives it to another member.
//     kgo.BlockRebalanceOnPoll holds every rebalance callback until the
//     batch in hand is in Redis and checkpointed, so a partition stops
//     applying before it is handed over. A member whose session ended
//     (too slow, or cut off) may still be applying when another takes
//     its partitions over: the fenced checkpoints stop it (errMoved).
//     The eager protocol would instead stop every partition of every
//     member at each rebalance, which is the stall this avoids.
//   - Static membership (Config.InstanceID) lets a processor that died
//     and restarts take its partitions back at once, and
//     Config.SessionTimeout bounds how long the partitions of a dead one
//     wait. A static member that stops (its context ends) leaves the
//     group explicitly, so that its partitions go to the others at once
//     rather than waiting for its session to time out: a processor
//     stopped for a rolling restart hands its partitions over twice,
//     for well under a second each, instead of freezing them until it
//     is back.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
)

// DefaultSessionTimeout is how long the group waits for a processor that
// stopped heartbeating, by default: the partitions of a processor that
// died wait this long. It is short, against Kafka's 45s, because a
// processor heartbeats from its own goroutine whatever it is applying,
// so only a dead or cut-off one misses it; and long enough that a
// restart with the same instance id (a few seconds) comes back in time.
// Kafka refuses less than the brokers' group.min.session.timeout.ms (6s
// by default).
const DefaultSessionTimeout = 10 * time.Second

// CheckInstanceID checks an instance id as Kafka does: at most 249
// characters of ASCII letters, digits, '.', '_' and '-', not "." or "..".
// Empty means none.
func CheckInstanceID(id string) error {
	if id == "" {
		return nil
	}
	if len(id) > 249 || id == "." || id == ".." || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) {
		return fmt.Errorf("instance id %.64q: want at most 249 letters, digits, '.', '_' or '-' (not . or ..)", id)
	}
	return nil
}

// groupOpts are the Kafka client's consumer group options.
func (p *Processor) groupOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(p.cfg.SessionTimeout),
		// A member learns that a rebalance began from a heartbeat's
		// answer: beat often, so that a takeover follows the session
		// timeout closely.
		kgo.HeartbeatInterval(max(p.cfg.SessionTimeout/10, 100*time.Millisecond)),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(p.startAtCheckpoints),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
	}
	if p.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(p.cfg.InstanceID))
	}
	return opts
}

// revoked forgets partitions a rebalance gave to another processor, or
// that this one released as it stopped.
func (p *Processor) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	switch {
	case countPartitions(revoked) == 0: // a rebalance that took nothing
	case p.leaving.Load():
		p.log.Info("partitions released: leaving the group", "partitions", listPartitions(revoked))
	default:
		p.log.Info("partitions moved to another processor", "partitions", listPartitions(revoked))
		p.metrics.moved.WithLabelValues("revoked").Add(float64(countPartitions(revoked)))
	}
	p.forget(revoked)
}

// lost forgets partitions this processor lost with its group session (it
// was cut off from Kafka, or too slow): other processors may be applying
// them already. It is not ready until the group assigns it partitions
// again.
func (p *Processor) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if !p.leaving.Load() {
		p.joined.Store(false)
	}
	if !p.leaving.Load() && countPartitions(lost) > 0 {
		p.log.Warn("partitions moved to another processor: this processor's group session ended",
			"partitions", listPartitions(lost))
		p.metrics.moved.WithLabelValues("lost").Add(float64(countPartitions(lost)))
	}
	p.forget(lost)
}

// groupError returns an error that ends Run for a group error that only a
// change of configuration mends, and nil for any other.
func (p *Processor) groupError(err error) error {
	switch {
	case errors.Is(err, kerr.FencedInstanceID):
		// Leaving would take the other processor out of the group.
		return fmt.Errorf("another processor joined group %s with instance id %q: each processor needs its own: %w",
			p.cfg.Group, p.cfg.InstanceID, err)
	case errors.Is(err, kerr.InvalidSessionTimeout):
		return fmt.Errorf("the brokers refuse session timeout %s (see their group.min.session.timeout.ms and group.max.session.timeout.ms): %w",
			p.cfg.SessionTimeout, err)
	}
	return nil
}

// leaveGroup takes this static member out of the group as it stops (its
// client closing leaves the group only as a dynamic member).
func (p *Processor) leaveGroup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	left, err := p.adm.Load().LeaveGroup(ctx, kadm.LeaveGroup(p.cfg.Group).InstanceIDs(p.cfg.InstanceID))
	if err == nil {
		err = left.Error()
	}
	if err != nil {
		p.log.Warn("leaving the group failed: the partitions of this processor wait for its session to time out",
			"instance_id", p.cfg.InstanceID, "session_timeout", p.cfg.SessionTimeout, "err", err)
		return
	}
	p.log.Info("left the group", "instance_id", p.cfg.InstanceID)
}

// forget drops what the processor knows of partitions it no longer owns.
func (p *Processor) forget(gone map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for topic, partitions := range gone {
		for _, partition := range partitions {
			delete(p.spans, topicPartition{topic, partition})
			delete(p.checkpoints[topic], partition)
			delete(p.rebuilding, topicPartition{topic, partition})
			delete(p.owners, topicPartition{topic, partition})
			if topic == schemas.SessionsTopic {
				delete(p.owned, partition)
			}
		}
	}
}

// listPartitions says which partitions of which topics, as
// "topic:1,2 topic:3", topics sorted.
func listPartitions(tps map[string][]int32) string {
	var out []string
	for _, topic := range slices.Sorted(maps.Keys(tps)) {
		ps := slices.Sorted(slices.Values(tps[topic]))
		out = append(out, fmt.Sprintf("%s:%s", topic, strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ps)), ","), "[]")))
	}
	return strings.Join(out, " ")
}

func countPartitions(tps map[string][]int32) int {
	n := 0
	for _, ps := range tps {
		n += len(ps)
	}
	return n
}
