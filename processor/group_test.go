package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/schemas"
)

// A processor that joins the group takes partitions from the one running:
// the partitions move (counted as moved, not as lost state), no record is
// lost or applied out of order across the handover, and both processors
// are ready afterwards.
func TestPartitionsMoveToANewMember(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	first := startWith(t, c, processor.Config{Store: store, Group: "move", Registerer: regs[0]})
	evs := produce(t, cl, churn(5, 100, 3, 1000)...)
	waitCaughtUp(t, cl, store)

	second := startWith(t, c, processor.Config{Store: store, Group: "move", Registerer: regs[1]})
	// Records stream while the group rebalances.
	for i := range 5 {
		evs = append(evs, produce(t, cl, churn(uint64(6+i), 100, 3, 200)...)...)
	}
	deadline := time.Now().Add(30 * time.Second)
	for metricValue(t, regs[0], "presence_processor_partitions_moved_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no partition moved to the processor that joined within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	evs = append(evs, produce(t, cl, churn(20, 100, 3, 500)...)...)
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(evs))
	if applied := metricValue(t, regs[1], "presence_processor_records_total"); applied == 0 {
		t.Error("the processor that joined applied no record")
	}
	for i, r := range []*running{first, second} {
		waitReady(t, r.p, func(err error) bool { return err == nil }, "ready")
		if lost := metricValue(t, regs[i], "presence_processor_state_lost_total"); lost != 0 {
			t.Errorf("processor %d counted %v state losses, want none: partitions only moved", i+1, lost)
		}
	}
	t.Logf("partitions moved from the first processor: %v", metricValue(t, regs[0], "presence_processor_partitions_moved_total"))
}

// A processor that finds the checkpoint of one of its partitions moved
// past its own (another processor applied the partition while this one
// was out of the group) joins its group again as for a move, not as for
// lost state, and goes on applying.
func TestCheckpointMovedPastIsAMove(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	reg := prometheus.NewRegistry()
	r := startWith(t, c, processor.Config{Store: store, Registerer: reg})
	produce(t, cl, churn(9, 50, 3, 400)...)
	waitCaughtUp(t, cl, store)

	ctx := context.Background()
	cp, err := store.Checkpoint(ctx, schemas.SessionsTopic)
	if err != nil {
		t.Fatal(err)
	}
	// As another processor would: one partition moves one offset past
	// this processor's checkpoint.
	p := int32(-1)
	for partition, next := range cp.Next {
		if next > 0 {
			p = partition
			break
		}
	}
	if err := store.Advance(ctx, schemas.SessionsTopic, map[int32]int64{p: cp.Next[p]}, map[int32]int64{p: cp.Next[p] + 1}, nil, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for metricValue(t, reg, "presence_processor_partitions_moved_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the processor did not take the moved checkpoint for a move within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if lost := metricValue(t, reg, "presence_processor_state_lost_total"); lost != 0 {
		t.Errorf("state_lost_total is %v, want 0: the partition moved", lost)
	}
	// It goes on applying, from where the other processor left the
	// partition.
	produce(t, cl, churn(10, 50, 3, 400)...)
	waitCaughtUp(t, cl, store)
	waitReady(t, r.p, func(err error) bool { return err == nil }, "ready")
}

// Two processors given the same instance id: the first is fenced out of
// the group by the second, and stops with an error that says why rather
// than retrying for ever; the second goes on. A session timeout the
// brokers refuse stops a processor the same way.
func TestGroupMisconfiguration(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	first := startWith(t, c, processor.Config{Store: store, InstanceID: "same"})
	waitReady(t, first.p, func(err error) bool { return err == nil }, "ready")
	second := startWith(t, c, processor.Config{Store: store, InstanceID: "same"})
	if err := first.Failed(t); err == nil || !strings.Contains(err.Error(), `another processor joined group presence-processor with instance id "same"`) {
		t.Errorf("the fenced processor stopped with %v, want another processor with its instance id", err)
	}
	evs := produce(t, cl, churn(11, 50, 3, 300)...)
	waitCaughtUp(t, cl, store)
	requireState(t, store, model(evs))
	waitReady(t, second.p, func(err error) bool { return err == nil }, "ready")

	// kfake, like Kafka, refuses a session timeout under 6s.
	short := startWith(t, c, processor.Config{Store: store, Group: "short", SessionTimeout: time.Second})
	if err := short.Failed(t); err == nil || !strings.Contains(err.Error(), "the brokers refuse session timeout 1s") {
		t.Errorf("a processor with a 1s session timeout stopped with %v, want the brokers refuse it", err)
	}
}
