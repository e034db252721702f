package bench

// Notifications as the gateways read them, matched with the users whose
// change they tell.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/presence-im/presence/gateway"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// tracker matches the notifications read with the users awaiting them.
type tracker struct {
	mu                   sync.Mutex
	pending              map[string]*awaited
	samples              []time.Duration
	notified, unexpected int64
}

// awaited is a user whose friends are being told it came online.
type awaited struct {
	start     time.Time
	want, got int
	done      chan struct{}
}

func newTracker() *tracker { return &tracker{pending: map[string]*awaited{}} }

// await starts waiting for want recipients to be told of user's change,
// made now.
func (t *tracker) await(user string, want int) *awaited {
	a := &awaited{start: time.Now(), want: want, done: make(chan struct{})}
	t.mu.Lock()
	t.pending[user] = a
	t.mu.Unlock()
	return a
}

// arrived counts the recipients of a notification read now.
func (t *tracker) arrived(n *pb.Notification) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.pending[n.GetSubject().GetUser()]
	if a == nil || n.GetType() != pb.NotificationType_NOTIFICATION_TYPE_PRESENCE || !n.GetSubject().GetOnline() {
		t.unexpected += int64(len(n.GetRecipients()))
		return
	}
	for range n.GetRecipients() {
		t.samples = append(t.samples, now.Sub(a.start))
	}
	a.got += len(n.GetRecipients())
	t.notified += int64(len(n.GetRecipients()))
	if a.got >= a.want {
		delete(t.pending, n.GetSubject().GetUser())
		close(a.done)
	}
}

// readNotifications reads the notifications of every gateway into t until
// stop is called; it returns once every gateway reads.
func readNotifications(ctx context.Context, pubs []*gateway.Publisher, t *tracker) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	var readers, reading sync.WaitGroup
	reading.Add(len(pubs))
	for _, pub := range pubs {
		readers.Go(func() {
			_ = pub.Notifications(ctx, t.arrived, gateway.OnReading(func(int32, int64) { reading.Done() }))
		})
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); readers.Wait() }) }
	ready := make(chan struct{})
	go func() { reading.Wait(); close(ready) }()
	select {
	case <-ready:
		return stop, nil
	case <-time.After(stallLimit):
		stop()
		return nil, fmt.Errorf("the gateways did not read their notifications within %s", stallLimit)
	}
}
