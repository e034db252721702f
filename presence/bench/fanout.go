package bench

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

const (
	// fanoutGateways is how many gateways hold the sessions of the fanout
	// scenario; each reads its own notifications.
	fanoutGateways = 4
	// friendsPerFriend is about how many of the users coming online each
	// friend is a friend of: it sizes the pools friends are drawn from.
	friendsPerFriend = 20
	// notifyLimit is how long a user coming online waits for all its
	// online friends to be told before the run gives up.
	notifyLimit = 30 * time.Second
)

// fanoutPlan is who is whose friend: FanoutUsers users come online, each
// with FanoutFriends friends of whom online are online, drawn from a pool
// of online users and one of offline users so that each pool member is a
// friend of about friendsPerFriend of them.
type fanoutPlan struct {
	users, friends, online int
	onPool, offPool        int
}

func newFanoutPlan(cfg Config) fanoutPlan {
	p := fanoutPlan{users: cfg.FanoutUsers, friends: cfg.FanoutFriends}
	p.online = int(float64(p.friends)*cfg.FanoutOnline + 0.5)
	p.onPool = max(p.online, (p.users*p.online+friendsPerFriend-1)/friendsPerFriend)
	p.offPool = max(p.friends-p.online, (p.users*(p.friends-p.online)+friendsPerFriend-1)/friendsPerFriend)
	return p
}

func (p fanoutPlan) user(i int) string { return userID("s", i) }

// friendsOf yields the friends of user i: its online ones, then its
// offline ones, each distinct.
func (p fanoutPlan) friendsOf(i int) iter.Seq[string] {
	return func(yield func(string) bool) {
		for j := range p.online {
			if !yield(userID("on", (i*p.online+j)%p.onPool)) {
				return
			}
		}
		off := p.friends - p.online
		for j := range off {
			if !yield(userID("off", (i*off+j)%p.offPool)) {
				return
			}
		}
	}
}

func fanoutGateway(i int) string { return fmt.Sprintf("bench-fanout-gw-%d", i%fanoutGateways) }

// runFanout measures how fast a change of a user's state reaches the
// friends that must be told, and how many notifications go out a second.
//
// Setup: the friendships, as presence.friends records (both halves, as
// the query API writes them), and the friends' sessions, published
// through the gateways' publishers, applied by a quiet processor (no
// announcements for history); fanoutGateways gateways hold the sessions
// of the online friends, spread evenly, and heartbeat.
//
// Project: FanoutClients users at a time come online, each through its
// gateway's gateway.Publisher, and wait until every online friend's
// gateway has read the notification naming it, with
// (*gateway.Publisher).Notifications; then the next. Between them, a
// processor (not quiet) applies the connect, reads the user's audience and
// its members' sessions from Redis, writes a presence.notify record per
// gateway and checkpoints. Measured: notifications (recipient sessions)
// per second, and the latency of each, from the publish to its gateway
// reading it.
//
// Raw: the same users come online the same way, but the work is done in
// line with the raw tools (see rawAnnounce): the connect record produced
// with a plain franz-go client, the session written with HSET, the friends
// read with SMEMBERS and one pipeline of HGETALL, one notification record
// per gateway produced, read back by a plain consumer of the notify topic.
//
// Checked: every online friend of every user was told, once; nobody else.
//
// With FanoutProcessors above 1, the processors share the partitions
// (each owns sessions partitions before the users come online), and each
// reads the sessions of the members of partitions it does not own from
// Redis, as a deployment of several processors does.
func runFanout(ctx context.Context, r *runner) (Result, error) {
	plan := newFanoutPlan(r.cfg)
	if plan.online == 0 {
		return Result{}, fmt.Errorf("%w: no friend is online (--friends × the share online rounds to 0): nothing to notify", ErrConfig)
	}
	k, err := r.env.kafka(ctx)
	if err != nil {
		return Result{}, err
	}
	defer k.close()
	pubs := make([]*gateway.Publisher, fanoutGateways)
	for g := range pubs {
		if pubs[g], err = newPublisher(k, fanoutGateway(g)); err != nil {
			return Result{}, err
		}
		defer pubs[g].Close()
		// Heartbeats from the start: the friends' sessions must outlive
		// however long the setup takes. (The processor then takes about
		// 5 s more to catch up: see leaseAfterReady.)
		defer keepLease(ctx, pubs[g])()
	}
	if err := r.setupFanout(ctx, k, plan, pubs); err != nil {
		return Result{}, err
	}

	procs := make([]*running, r.cfg.FanoutProcessors)
	for i := range procs {
		proc, err := r.startProcessor(ctx, k, processor.Config{Group: fanoutGroup})
		if err != nil {
			return Result{}, err
		}
		defer proc.stop()
		procs[i] = proc
	}
	// Every processor owns partitions, then has restored them: none is
	// still restoring while the users come online.
	if err := r.waitSpread(ctx, k, fanoutGroup, r.cfg.FanoutProcessors); err != nil {
		return Result{}, err
	}
	for _, proc := range procs {
		if err := proc.waitCaughtUp(ctx); err != nil {
			return Result{}, err
		}
	}
	r.out.printf("project: %d processor(s) have caught up; the gateways start reading their notifications", r.cfg.FanoutProcessors)
	project := newTracker()
	stopReading, err := readNotifications(ctx, pubs, project)
	if err != nil {
		return Result{}, err
	}
	defer stopReading()
	r.out.printf("project: %d users come online, %d at a time, each told to %d online friends of %d on %d gateways",
		plan.users, r.cfg.FanoutClients, plan.online, plan.friends, fanoutGateways)
	projectRun, err := r.fanoutLoop(ctx, "project", plan, project, func(ctx context.Context, i int) error {
		return pubs[i%fanoutGateways].Publish(ctx, gateway.Event{Type: gateway.Connect, App: app,
			User: plan.user(i), Session: plan.user(i) + "-ios", Device: "ios"})
	})
	if err != nil {
		return Result{}, err
	}
	for _, proc := range procs {
		if err := proc.stop(); err != nil {
			return Result{}, err
		}
	}
	stopReading()
	checks, err := r.checkFanout(ctx, plan, project)
	if err != nil {
		return Result{}, err
	}

	raw := newTracker()
	a, err := newRawAnnouncer(ctx, k, plan, pubs, raw, r.env.rdb)
	if err != nil {
		return Result{}, err
	}
	defer a.close()
	r.out.printf("raw: the same users and notifications, with go-redis and plain franz-go clients")
	rawRun, err := r.fanoutLoop(ctx, "raw", plan, raw, a.announce)
	if err != nil {
		return Result{}, err
	}
	checks["raw_notified"], checks["raw_unexpected"] = raw.notified, raw.unexpected
	res := Result{
		Metrics: append([]Metric{metric("notifications/s", perSecond(project.notified, projectRun.elapsed), perSecond(raw.notified, rawRun.elapsed))},
			cpuMetrics("notification", projectRun, project.notified, rawRun, raw.notified)...),
		Checks:         checks,
		projectSamples: project.samples, rawSamples: raw.samples,
	}
	res.ProjectLatency, res.RawLatency = summarize(project.samples), summarize(raw.samples)
	return res, nil
}

// setupFanout writes the friendships and the friends' sessions, and
// applies them with a quiet processor.
func (r *runner) setupFanout(ctx context.Context, k *kafka, plan fanoutPlan, pubs []*gateway.Publisher) error {
	edges := int64(plan.users * plan.friends)
	r.out.printf("setup: %d friendships (%d records), %d friends online, %d offline", edges, 2*edges, plan.onPool, plan.offPool)
	cl, err := k.client(queryapi.ProducerOpts(k.brokers)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var written atomic.Int64
	stop := r.out.every(counting("setup: friendship records written", 2*edges, written.Load))
	at := time.Now()
	var failed firstError
	for i := range plan.users {
		for f := range plan.friendsOf(i) {
			recs, err := queryapi.FriendRecords(app, plan.user(i), f, at)
			if err != nil {
				stop()
				return err
			}
			for _, rec := range recs {
				cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
					failed.set(err)
					written.Add(1)
				})
			}
		}
	}
	err = cl.Flush(ctx)
	stop()
	if err = cmp.Or(err, failed.get()); err != nil {
		return fmt.Errorf("writing friendships: %w", err)
	}

	var published atomic.Int64
	for g, pub := range pubs {
		err := publish(ctx, pub.Publish, 1, setupBatch, func(int) iter.Seq[gateway.Event] {
			return func(yield func(gateway.Event) bool) {
				for j := g; j < plan.onPool; j += len(pubs) {
					u := userID("on", j)
					if !yield(gateway.Event{Type: gateway.Connect, App: app, User: u, Session: u + "-ios", Device: "ios"}) {
						return
					}
				}
				if g > 0 {
					return
				}
				for _, t := range []gateway.Type{gateway.Connect, gateway.Disconnect} {
					for j := range plan.offPool {
						u := userID("off", j)
						if !yield(gateway.Event{Type: t, App: app, User: u, Session: u + "-ios", Device: "ios"}) {
							return
						}
					}
				}
			}
		}, &published)
		if err != nil {
			return fmt.Errorf("publishing the friends' sessions: %w", err)
		}
	}
	r.out.printf("setup: a quiet processor applies them")
	setup, err := r.startProcessor(ctx, k, processor.Config{Group: "bench-fanout-setup", Quiet: true})
	if err != nil {
		return err
	}
	stop = r.out.every(counting("setup: records applied", 2*edges+published.Load(), func() int64 { return setup.p.Progress().Done }))
	err = setup.waitCaughtUp(ctx)
	stop()
	if err != nil {
		setup.stop()
		return err
	}
	r.out.printf("setup: applied; a live processor takes over")
	return setup.stop()
}

// fanoutLoop has FanoutClients clients take the users in turn: each makes
// one come online with announce, and waits until its online friends are
// told. It returns the time from the first announce to the last
// notification, and the CPU time spent meanwhile.
func (r *runner) fanoutLoop(ctx context.Context, side string, plan fanoutPlan, t *tracker, announce func(ctx context.Context, i int) error) (measured, error) {
	var next atomic.Int64
	stop := r.out.every(func() string {
		t.mu.Lock()
		defer t.mu.Unlock()
		return fmt.Sprintf("%s: %d/%d users announced, %d notifications read", side, min(int(next.Load()), plan.users), plan.users, t.notified)
	})
	defer stop()
	before, err := r.cpuNow(ctx)
	if err != nil {
		return measured{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for range r.cfg.FanoutClients {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= plan.users {
					return nil
				}
				a := t.await(plan.user(i), plan.online)
				if err := announce(gctx, i); err != nil {
					return fmt.Errorf("%s: announcing %s: %w", side, plan.user(i), err)
				}
				select {
				case <-a.done:
				case <-gctx.Done():
					return gctx.Err()
				case <-time.After(notifyLimit):
					t.mu.Lock()
					got := a.got
					t.mu.Unlock()
					return fmt.Errorf("%w: %s: %d of the %d online friends of %s told after %s",
						errMismatch, side, got, plan.online, plan.user(i), notifyLimit)
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return measured{}, err
	}
	elapsed := time.Since(start)
	after, err := r.cpuNow(ctx)
	if err != nil {
		return measured{}, err
	}
	r.out.printf("%s: %.0f notifications/s (%d in %.2fs)", side, perSecond(t.notified, elapsed), t.notified, elapsed.Seconds())
	return measured{elapsed: elapsed, cpu: after.sub(before)}, nil
}

// checkFanout fails unless every user that came online shows online in
// Redis and nobody unexpected was told.
func (r *runner) checkFanout(ctx context.Context, plan fanoutPlan, t *tracker) (map[string]int64, error) {
	var onlineUsers int64
	err := statusesOf(ctx, r.env.store(), numbered("s", 0, plan.users), func(_ string, st *redisstore.Status) {
		if st != nil && st.State == redisstore.Online {
			onlineUsers++
		}
	})
	if err != nil {
		return nil, err
	}
	want := int64(plan.users * plan.online)
	if onlineUsers != int64(plan.users) || t.notified != want || t.unexpected > 0 {
		return nil, fmt.Errorf("%w: %d of %d users online, %d of %d notifications read, %d unexpected",
			errMismatch, onlineUsers, plan.users, t.notified, want, t.unexpected)
	}
	return map[string]int64{"users_online": onlineUsers, "notified": t.notified, "unexpected": t.unexpected,
		"friends_each": int64(plan.friends), "online_friends_each": int64(plan.online)}, nil
}

// fanoutGroup is the consumer group of the fanout scenario's processors.
const fanoutGroup = "bench-fanout"

// waitSpread waits until n members of group each own a partition of the
// sessions topic.
func (r *runner) waitSpread(ctx context.Context, k *kafka, group string, n int) error {
	deadline := time.Now().Add(stallLimit)
	for {
		described, err := k.adm.DescribeGroups(ctx, group)
		owning := 0
		if err == nil {
			err = described.Error()
		}
		if err == nil {
			for _, m := range described[group].Members {
				if a, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range a.Topics {
						if t.Topic == schemas.SessionsTopic && len(t.Partitions) > 0 {
							owning++
						}
					}
				}
			}
			if owning == n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d processors own sessions partitions after %s (%v)", owning, n, stallLimit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
