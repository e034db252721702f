package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/internal/kafkatest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// Publishes from many goroutines at once, and heartbeats beside them, all
// land, each in a transaction, and a read_committed consumer sees every
// user's events in the order its goroutine published them.
func TestAtomicPublishesFromManyGoroutines(t *testing.T) {
	const users, publishes = 8, 25
	c := newCluster(t)
	p := newPublisher(t, c, gateway.Atomic())
	if !p.Atomic() {
		t.Fatal("Atomic() reports false for an atomic publisher")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, users*publishes+publishes)
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			user := fmt.Sprintf("u%d", u)
			for i := range publishes {
				// Two sessions per publish: a connect of one, and a
				// disconnect of the one before.
				events := []gateway.Event{{Type: gateway.Connect, App: "chat", User: user, Session: fmt.Sprintf("s%03d", i), Device: "ios"}}
				if i > 0 {
					events = append(events, gateway.Event{Type: gateway.Disconnect, App: "chat", User: user, Session: fmt.Sprintf("s%03d", i-1)})
				}
				errs <- p.Publish(ctx, events...)
			}
		})
	}
	wg.Go(func() {
		for range publishes {
			errs <- p.Heartbeat(ctx)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}

	recs := kafkatest.ReadCommitted(t, c.ListenAddrs(), schemas.SessionsTopic)
	if want := users * (2*publishes - 1); len(recs) != want {
		t.Fatalf("%d committed records, want %d", len(recs), want)
	}
	got := map[string][]string{}
	for _, r := range recs {
		if !r.Attrs.IsTransactional() {
			t.Fatalf("record %q written outside a transaction", r.Key)
		}
		var ev pb.SessionEvent
		if err := proto.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		got[ev.User] = append(got[ev.User], fmt.Sprintf("%s %s", ev.Type, ev.Session))
	}
	for u := range users {
		user := fmt.Sprintf("u%d", u)
		var want []string
		for i := range publishes {
			want = append(want, fmt.Sprintf("%s s%03d", pb.EventType_EVENT_TYPE_CONNECT, i))
			if i > 0 {
				want = append(want, fmt.Sprintf("%s s%03d", pb.EventType_EVENT_TYPE_DISCONNECT, i-1))
			}
		}
		if fmt.Sprint(got[user]) != fmt.Sprint(want) {
			t.Errorf("%s's records in this order:\n%v\nwant\n%v", user, got[user], want)
		}
	}
	if hbs := kafkatest.ReadCommitted(t, c.ListenAddrs(), schemas.GatewaysTopic); len(hbs) != publishes {
		t.Errorf("%d committed heartbeats, want %d", len(hbs), publishes)
	}
}

// A publisher started with the id of a running one fences it: the old
// one's next transaction fails, and nothing of it is written. (It then
// starts a new producer, and fences the newer one in turn: gateway ids
// must be unique among live processes.)
func TestAtomicRestartFencesPreviousIncarnation(t *testing.T) {
	c := newCluster(t)
	old := newPublisher(t, c, gateway.Atomic(), gateway.Epoch("boot-1"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(user string) gateway.Event {
		return gateway.Event{Type: gateway.Connect, App: "chat", User: user, Session: "s1", Device: "ios"}
	}
	if err := old.Publish(ctx, connect("before")); err != nil {
		t.Fatal(err)
	}
	restarted := newPublisher(t, c, gateway.Atomic(), gateway.Epoch("boot-2"))
	if err := restarted.Publish(ctx, connect("restarted")); err != nil {
		t.Fatal(err)
	}
	if err := old.Publish(ctx, connect("zombie")); err == nil {
		t.Fatal("the fenced publisher's publish succeeded")
	}
	var users []string
	for _, r := range kafkatest.ReadCommitted(t, c.ListenAddrs(), schemas.SessionsTopic) {
		var ev pb.SessionEvent
		if err := proto.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		users = append(users, ev.User+"@"+ev.GatewayEpoch)
	}
	if fmt.Sprint(users) != "[before@boot-1 restarted@boot-2]" && fmt.Sprint(users) != "[restarted@boot-2 before@boot-1]" {
		t.Fatalf("committed records of %v, want before@boot-1 and restarted@boot-2 only", users)
	}
}

// When Kafka answers the commit with an error, the publish fails, nothing
// of it becomes visible, and the next publish commits: an answer that
// leaves the outcome unknown (UNKNOWN_SERVER_ERROR) is retried as an
// abort and reported as ErrUnconfirmed; one that may be aborted
// (TRANSACTION_ABORTABLE) is aborted; any other refusal replaces the
// Kafka client, whose new producer id aborts the transaction.
func TestAtomicCommitRefused(t *testing.T) {
	for _, tc := range []struct {
		err         *kerr.Error
		unconfirmed bool
	}{
		{kerr.UnknownServerError, true},
		{kerr.TransactionAbortable, false},
		{kerr.InvalidTxnState, false},
	} {
		t.Run(tc.err.Message, func(t *testing.T) {
			c := newCluster(t)
			p := newPublisher(t, c, gateway.Atomic())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c.ControlKey(int16(kmsg.EndTxn), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
				req := kreq.(*kmsg.EndTxnRequest)
				if !req.Commit {
					c.KeepControl() // let aborts through, refuse the first commit
					return nil, nil, false
				}
				resp := req.ResponseKind().(*kmsg.EndTxnResponse)
				resp.ErrorCode = tc.err.Code
				return resp, nil, true
			})
			connect := func(user string) gateway.Event {
				return gateway.Event{Type: gateway.Connect, App: "chat", User: user, Session: "s1", Device: "ios"}
			}
			err := p.Publish(ctx, connect("refused"), connect("refused-too"))
			if err == nil {
				t.Fatal("a publish whose commit Kafka refused succeeded")
			}
			if errors.Is(err, gateway.ErrUnconfirmed) != tc.unconfirmed {
				t.Errorf("publish: %v; want ErrUnconfirmed: %v", err, tc.unconfirmed)
			}
			if err := p.Publish(ctx, connect("after")); err != nil {
				t.Fatalf("the publish after: %v", err)
			}
			var users []string
			for _, r := range kafkatest.ReadCommitted(t, c.ListenAddrs(), schemas.SessionsTopic) {
				var ev pb.SessionEvent
				if err := proto.Unmarshal(r.Value, &ev); err != nil {
					t.Fatal(err)
				}
				users = append(users, ev.User)
			}
			if fmt.Sprint(users) != "[after]" {
				t.Fatalf("committed records of %v, want those of the publish after only", users)
			}
		})
	}
}
