package webhook

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/auth"
)

// commitTimeout bounds the last commit of an endpoint that stops.
const commitTimeout = 5 * time.Second

// endpoint delivers one webhook: its own consumer of presence.changes,
// in its own group, keeping its app's records.
type endpoint struct {
	s      *Sender
	hook   auth.Webhook
	group  string
	prefix []byte // the keys of the app's users start with it
	cl     *kgo.Client
	log    *slog.Logger
	counts appMetrics
}

// GroupID is the consumer group of app's endpoint id (auth.Webhook.ID):
// "presence.webhook.<app, escaped as in keys>.<id>".
func GroupID(app, id string) string {
	return "presence.webhook." + strings.TrimSuffix(schemas.UserKey(app, ""), "/") + "." + id
}

func (s *Sender) newEndpoint(h auth.Webhook, since time.Time) (*endpoint, error) {
	group := GroupID(h.App, h.ID)
	opts := append([]kgo.Opt{kgo.SeedBrokers(s.cfg.Brokers...)}, s.cfg.KafkaOpts...)
	opts = append(opts,
		kgo.ClientID("presence-webhook"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(schemas.ChangesTopic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		// A group with no offset yet starts at the first change written
		// since the endpoint was listed.
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(since.UnixMilli())),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		// A rebalance waits for the batch in hand (up to the rebalance
		// timeout, a minute), so that a partition moves once its changes
		// are delivered and committed, not while they are being sent.
		kgo.BlockRebalanceOnPoll(),
		// Bound what is fetched ahead of the deliveries.
		kgo.FetchMaxBytes(4<<20),
		kgo.FetchMaxPartitionBytes(1<<20),
		// Find presence.changes soon after the processor creates it.
		kgo.MetadataMaxAge(10*time.Second),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	host := ""
	if u, err := url.Parse(h.URL); err == nil {
		host = u.Host
	}
	key := schemas.UserKey(h.App, "")
	return &endpoint{
		s: s, hook: h, group: group, prefix: []byte(key), cl: cl,
		log:    s.log.With("app", h.App, "endpoint", h.ID, "host", host),
		counts: s.metrics.app(h.App),
	}, nil
}

// run delivers until ctx ends, then commits what was delivered and leaves
// the group.
func (e *endpoint) run(ctx context.Context) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		defer cancel()
		if err := e.cl.CommitMarkedOffsets(cctx); err != nil {
			e.log.Warn("committing the changes delivered; they will be sent again", "err", err)
		}
		e.cl.CloseAllowingRebalance()
	}()
	for {
		e.cl.AllowRebalance() // the last batch is done
		fetches := e.cl.PollRecords(ctx, e.s.cfg.MaxBatch)
		if ctx.Err() != nil {
			return
		}
		failed := false
		fetches.EachError(func(topic string, partition int32, err error) {
			failed = true
			e.log.Warn("reading changes", "topic", topic, "partition", partition, "err", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			if failed && !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		if !e.deliverBatch(ctx, recs) {
			return // stopped: nothing of this batch is committed
		}
		e.cl.MarkCommitRecords(recs...)
	}
}

// deliverBatch delivers the app's changes among recs, each user's in
// order, at most InFlight users at once. It reports false when ctx ended
// first.
func (e *endpoint) deliverBatch(ctx context.Context, recs []*kgo.Record) bool {
	var users [][]*kgo.Record
	at := map[string]int{}
	for _, r := range recs {
		if !bytes.HasPrefix(r.Key, e.prefix) {
			continue // another app's
		}
		i, ok := at[string(r.Key)]
		if !ok {
			i = len(users)
			at[string(r.Key)] = i
			users = append(users, nil)
		}
		users[i] = append(users[i], r)
	}
	if len(users) == 0 {
		return true
	}
	work := make(chan []*kgo.Record)
	var wg sync.WaitGroup
	for range min(e.s.cfg.InFlight, len(users)) {
		wg.Go(func() {
			d := e.newDeliverer()
			for changes := range work {
				for _, r := range changes {
					if !d.deliver(ctx, r) {
						break
					}
				}
			}
		})
	}
feed:
	for _, changes := range users {
		select {
		case work <- changes:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return ctx.Err() == nil
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
