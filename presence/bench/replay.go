package bench

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// replayGateways is how many gateways the replayed sessions are spread
// over.
const replayGateways = 8

// runReplay measures a rebuild of Redis from the compacted sessions topic.
//
// Setup: ReplaySessions connects, two sessions (ios, web) for each of
// ReplaySessions/2 users, spread over replayGateways gateways, are
// published through gateway.Publisher to presence.sessions.
//
// Project: what presence replay does: a quiet processor (no
// notifications, leases or tombstones) in a consumer group of its own
// applies the topic from its beginning into an empty Redis. The time runs
// from its start (joining the group included) until it has caught up.
//
// Raw: the same sessions written to an empty Redis as HSET of the
// session's field in the user's hash (same keys and values as redisstore's
// layout), in pipelines of 1000 from Writers connections.
//
// Reference: a plain consumer reads the topic from its start and does
// nothing with the records: the most any rebuild reading Kafka could do
// (the raw side reads no Kafka).
//
// Checked: afterwards, Redis holds every user with both sessions.
func runReplay(ctx context.Context, r *runner) (Result, error) {
	sessions := r.cfg.ReplaySessions
	users := sessions / 2
	k, err := r.env.kafka(ctx)
	if err != nil {
		return Result{}, err
	}
	defer k.close()
	at := time.Now()
	if err := r.writeReplayTopic(ctx, k, users, at); err != nil {
		return Result{}, err
	}

	group := fmt.Sprintf("bench-replay-%d", time.Now().UnixNano())
	r.out.printf("project: a quiet processor in group %s rebuilds %d sessions of %d users into an empty redis", group, sessions, users)
	var proc *running
	project, err := r.measure(ctx, func() (err error) {
		if proc, err = r.startProcessor(ctx, k, processor.Config{Group: group, Quiet: true}); err != nil {
			return err
		}
		stop := r.out.every(counting("project: records applied", int64(sessions), func() int64 { return proc.p.Progress().Done }))
		defer stop()
		return proc.waitCaughtUp(ctx)
	})
	if proc != nil {
		defer proc.stop()
	}
	if err != nil {
		return Result{}, err
	}
	if err := proc.stop(); err != nil {
		return Result{}, err
	}
	if _, err := k.adm.DeleteGroup(ctx, group); err != nil {
		r.log.Warn("deleting the replay's consumer group", "group", group, "err", err)
	}
	r.out.printf("project: %.0f sessions/s (%d in %.1fs); checking them", perSecond(int64(sessions), project.elapsed), sessions, project.elapsed.Seconds())
	checks, err := r.checkReplay(ctx, users)
	if err != nil {
		return Result{}, err
	}

	if err := r.env.flush(ctx); err != nil {
		return Result{}, err
	}
	r.out.printf("reference: a plain consumer reads the %d records of the sessions topic and does nothing with them", sessions)
	read, err := r.measure(ctx, func() error { return readTopic(ctx, k, int64(sessions)) })
	if err != nil {
		return Result{}, err
	}
	r.out.printf("reference: %.0f records/s read (%d in %.2fs)", perSecond(int64(sessions), read.elapsed), sessions, read.elapsed.Seconds())

	r.out.printf("raw: the same %d sessions as HSET in pipelines of %d", sessions, rawPipeline)
	var done atomic.Int64
	stop := r.out.every(counting("raw: sessions written", int64(sessions), done.Load))
	raw, err := r.measure(ctx, func() error {
		return r.writeRaw(ctx, r.cfg.Writers, func(l int) iter.Seq[rawOp] {
			return func(yield func(rawOp) bool) {
				for e := range replayEvents(users, l, r.cfg.Writers) {
					if !yield(rawOp{key: userKey(e.User), field: sessionField(e.Session), value: rawSession(e.Device, e.DeviceID, e.Gateway, e.Epoch, at)}) {
						return
					}
				}
			}
		}, &done)
	})
	stop()
	if err != nil {
		return Result{}, err
	}
	if checks["raw_keys"], err = r.env.countKeys(ctx); err != nil {
		return Result{}, err
	}
	r.out.printf("raw: %.0f sessions/s (%d in %.2fs)", perSecond(done.Load(), raw.elapsed), done.Load(), raw.elapsed.Seconds())
	rawRate := perSecond(done.Load(), raw.elapsed)
	return Result{
		Metrics: append([]Metric{metric("sessions/s", perSecond(int64(sessions), project.elapsed), rawRate),
			// What reading the topic alone allows: no rebuild that reads
			// Kafka can beat it.
			metric("read only sessions/s", perSecond(int64(sessions), read.elapsed), rawRate)},
			cpuMetrics("session", project, int64(sessions), raw, done.Load())...),
		Checks: checks,
	}, nil
}

// readTopic reads the sessions topic from its start with a plain consumer
// (no group, no decoding) until it has read want records.
func readTopic(ctx context.Context, k *kafka, want int64) error {
	cl, err := k.client(kgo.ConsumeTopics(schemas.SessionsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	for n := int64(0); n < want; {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			return fmt.Errorf("reading %s: %w", schemas.SessionsTopic, err)
		}
		n += int64(fetches.NumRecords())
	}
	return nil
}

// writeReplayTopic publishes the replay's sessions.
func (r *runner) writeReplayTopic(ctx context.Context, k *kafka, users int, at time.Time) error {
	pub, err := newPublisher(k, "bench-replay-setup")
	if err != nil {
		return err
	}
	defer pub.Close()
	r.out.printf("setup: publishing %d sessions of %d users to the sessions topic", 2*users, users)
	var done atomic.Int64
	stop := r.out.every(counting("setup: sessions published", int64(2*users), done.Load))
	defer stop()
	return publish(ctx, pub.Publish, r.cfg.Writers, setupBatch, func(l int) iter.Seq[gateway.Event] {
		return func(yield func(gateway.Event) bool) {
			for e := range replayEvents(users, l, r.cfg.Writers) {
				e.At = at
				if !yield(e) {
					return
				}
			}
		}
	}, &done)
}

// replayEvents yields the connects of the users of lane l of lanes, two
// sessions each, held by the gateway of the user's number.
func replayEvents(users, l, lanes int) iter.Seq[gateway.Event] {
	return func(yield func(gateway.Event) bool) {
		for i := l; i < users; i += lanes {
			u := userID("r", i)
			gw := fmt.Sprintf("bench-gw-%d", i%replayGateways)
			for _, dev := range []string{"ios", "web"} {
				e := gateway.Event{Type: gateway.Connect, App: app, User: u, Session: u + "-" + dev, Device: dev,
					DeviceID: "d" + u + dev, Gateway: gw, Epoch: "e1"}
				if !yield(e) {
					return
				}
			}
		}
	}
}

// checkReplay counts the users Redis shows with both sessions, and fails
// unless every user does.
func (r *runner) checkReplay(ctx context.Context, users int) (map[string]int64, error) {
	store := r.env.store()
	var whole, wrong int64
	err := statusesOf(ctx, store, numbered("r", 0, users), func(_ string, st *redisstore.Status) {
		if st != nil && st.State == redisstore.Online && len(st.Sessions) == 2 {
			whole++
		} else {
			wrong++
		}
	})
	if err != nil {
		return nil, err
	}
	if wrong > 0 {
		return nil, fmt.Errorf("%w: after the replay, %d of %d users do not have both sessions", errMismatch, wrong, users)
	}
	return map[string]int64{"sessions": int64(2 * users), "users_replayed": whole}, nil
}
