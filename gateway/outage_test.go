package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/internal/kafkatest"
	"github.com/presence-im/presence/schemas"
)

// outage makes the cluster drop the connection of every request of the
// given keys (every request, without keys), before acting on it, as a
// broker that dies mid-request does, until the returned function ends
// the outage.
func outage(c *kfake.Cluster, keys ...kmsg.Key) (end func()) {
	var down atomic.Bool
	down.Store(true)
	drop := func(kmsg.Request) (kmsg.Response, error, bool) {
		if !down.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		return nil, errors.New("broker down"), true
	}
	if len(keys) == 0 {
		c.Control(drop)
	}
	for _, k := range keys {
		c.ControlKey(int16(k), drop)
	}
	return func() { down.Store(false) }
}

// While Kafka is down (refusing produce requests only, or everything),
// every Publish fails when its context ends, the publisher holds at most
// MaxBuffered records (plus the one each waiting Publish is adding), and
// nothing of the failed publishes is written later; once Kafka is back,
// Publish succeeds. An atomic publisher's committer recovers as well.
func TestPublishWhileKafkaIsDown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		atomic bool
		keys   []kmsg.Key
	}{
		{"produce down", false, []kmsg.Key{kmsg.Produce}},
		{"produce down, atomic", true, []kmsg.Key{kmsg.Produce}},
		{"all down", false, nil},
		{"all down, atomic", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			publishWhileKafkaIsDown(t, tc.atomic, tc.keys)
		})
	}
}

func publishWhileKafkaIsDown(t *testing.T, atomic bool, keys []kmsg.Key) {
	const bound, publishers, batch = 20, 4, 50
	c := newCluster(t)
	// A short metadata age lets the publisher see Kafka back sooner
	// than the default 5s.
	opts := []gateway.Opt{gateway.MaxBuffered(bound), gateway.KafkaOpts(kgo.MetadataMinAge(100 * time.Millisecond))}
	if atomic {
		opts = append(opts, gateway.Atomic())
	}
	p := newPublisher(t, c, opts...)
	connect := func(user string) gateway.Event {
		return gateway.Event{Type: gateway.Connect, App: "chat", User: user, Session: "s1", Device: "ios"}
	}
	if err := p.Publish(context.Background(), connect("before")); err != nil {
		t.Fatal(err)
	}

	end := outage(c, keys...)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for i := range publishers {
		wg.Go(func() {
			events := make([]gateway.Event, batch)
			for j := range events {
				events[j] = connect(fmt.Sprintf("u%d-%d", i, j))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			errs <- p.Publish(ctx, events...)
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var peak int64
	sample := time.NewTicker(time.Millisecond)
	defer sample.Stop()
	watchdog := time.After(10 * time.Second)
	for sampling := true; sampling; {
		select {
		case <-sample.C:
			peak = max(peak, p.Buffered())
		case <-done:
			sampling = false
		case <-watchdog:
			t.Fatal("Publish did not return within 10s of its 500ms deadline while Kafka was down")
		}
	}
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Publish while Kafka is down: %v, want the context's deadline", err)
		}
	}
	if peak == 0 || peak > bound+publishers {
		t.Errorf("the publisher held up to %d records, want some and at most MaxBuffered (%d) + 1 per Publish (%d)", peak, bound, publishers)
	}

	end()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, connect("after")); err != nil {
		t.Fatalf("Publish once Kafka is back: %v", err)
	}
	recs := kafkatest.ReadCommitted(t, c.ListenAddrs(), schemas.SessionsTopic)
	if len(recs) != 2 {
		keys := make([]string, len(recs))
		for i, r := range recs {
			keys[i] = string(r.Key)
		}
		t.Fatalf("the topic holds %v, want the records published before and after the outage only", keys)
	}
}
