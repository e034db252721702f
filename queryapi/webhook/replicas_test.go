package webhook_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/presence-im/presence/queryapi/webhook"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
)

// TestReplicasShare: two query APIs deliver the same endpoint through
// its consumer group, each the users of its partitions: once the group
// has settled, every change is delivered once, not once per replica.
func TestReplicasShare(t *testing.T) {
	k := newKafka(t, 3)
	rc := newReceiver(t, func(int, string, int64) answer { return accept }, chatSecret)
	f := authtest.New(t)
	hooks(t, f, map[string][2]string{"chat": {rc.srv.URL, chatSecret}})
	var regs [2]*prometheus.Registry
	for i := range regs {
		a, err := auth.New(auth.Config{File: f.File})
		if err != nil {
			t.Fatal(err)
		}
		regs[i] = prometheus.NewRegistry()
		start(t, webhook.Config{Brokers: k.brokers, Webhooks: a, Registerer: regs[i]})
	}
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	hs, _ := a.Webhooks()
	group := webhook.GroupID("chat", hs[0].ID)
	adm := kadm.NewClient(k.cl)
	eventually(t, "the group settled on two members", func() bool {
		groups, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return false
		}
		g := groups[group]
		if g.State != "Stable" || len(g.Members) != 2 {
			return false
		}
		partitions := 0
		for _, m := range g.Members {
			c, ok := m.Assigned.AsConsumer()
			if !ok {
				return false
			}
			n := 0
			for _, tp := range c.Topics {
				n += len(tp.Partitions)
			}
			if n == 0 {
				return false
			}
			partitions += n
		}
		return partitions == 3
	})

	want := k.changes("chat", 12, 2)
	rc.wait("every change", all(want))
	rc.checkOrder()
	eventually(t, "both replicas' deliveries counted", func() bool {
		return count(t, regs[0], "chat", "delivered")+count(t, regs[1], "chat", "delivered") == 24
	})
	for i, reg := range regs {
		if count(t, reg, "chat", "delivered") == 0 {
			t.Errorf("replica %d delivered nothing", i)
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for user, versions := range rc.accepted {
		if len(versions) != 2 {
			t.Errorf("%s: accepted %v, want each of its 2 changes once", user, versions)
		}
	}
}
