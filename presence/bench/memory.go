package bench

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"time"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// memoryGrace is the offline grace of the memory scenario's processor:
// short, since the scenario waits for the offline announcements to be done
// before it measures.
const memoryGrace = time.Second

// runMemory measures what Presence keeps in Redis per user.
//
// Project: MemoryUsers users connect, one session each, through
// gateway.Publisher and Kafka, applied by a processor (not quiet). The
// growth of used_memory (INFO memory; on a cluster, the masters' total)
// from before to after, per user, is the cost of an online session: the
// user's hash and the session's entry in its gateway's index. Then every one disconnects; once the processor
// has applied them and made their offline announcements (the grace
// period passed), the growth from the empty state, per user, is the cost
// of an offline user: the hash with its last seen and expiry, and the
// session's record key scheduled for tombstoning.
//
// Raw, for reference: the same sessions as one HSET of the session's
// field in the user's hash; then, offline, HDEL of it, HSET of a last seen
// and PEXPIRE of the offline TTL (the cloud-function recipe's
// "peerId -> 0 with a 7-day expiry", in the same layout).
//
// Checked: Redis shows every user online, then offline.
func runMemory(ctx context.Context, r *runner) (Result, error) {
	n := r.cfg.MemoryUsers
	k, err := r.env.kafka(ctx)
	if err != nil {
		return Result{}, err
	}
	defer k.close()
	pub, err := newPublisher(k, ingestGateway)
	if err != nil {
		return Result{}, err
	}
	defer pub.Close()
	proc, err := r.startProcessor(ctx, k, processor.Config{Group: "bench-memory", OfflineGrace: memoryGrace})
	if err != nil {
		return Result{}, err
	}
	defer proc.stop()
	if err := proc.waitCaughtUp(ctx); err != nil {
		return Result{}, err
	}
	defer keepLease(ctx, pub)() // once the processor is ready: see leaseAfterReady
	empty, err := r.env.usedMemory(ctx)
	if err != nil {
		return Result{}, err
	}
	events := func(t gateway.Type) func(int) iter.Seq[gateway.Event] {
		return func(l int) iter.Seq[gateway.Event] {
			return func(yield func(gateway.Event) bool) {
				for i := l; i < n; i += r.cfg.Writers {
					u := userID("m", i)
					if !yield(gateway.Event{Type: t, App: app, User: u, Session: u + "-ios", Device: "ios", DeviceID: "d" + u}) {
						return
					}
				}
			}
		}
	}
	store := r.env.store()
	checks := map[string]int64{}
	var online, offline int64
	for _, step := range []struct {
		name  string
		t     gateway.Type
		state string
		used  *int64
	}{{"connect", gateway.Connect, redisstore.Online, &online}, {"disconnect", gateway.Disconnect, redisstore.Offline, &offline}} {
		r.out.printf("project: %d users %s through gateway.Publisher and the processor", n, step.name)
		var published atomic.Int64
		stop := r.out.every(counting("project: "+step.name+"s published", int64(n), published.Load))
		err := publish(ctx, pub.Publish, r.cfg.Writers, setupBatch, events(step.t), &published)
		stop()
		if err != nil {
			return Result{}, err
		}
		ends, err := k.ends(ctx, schemas.SessionsTopic)
		if err == nil {
			err = r.waitApplied(ctx, proc, schemas.SessionsTopic, ends)
		}
		if err != nil {
			return Result{}, err
		}
		if *step.used, err = r.env.usedMemory(ctx); err != nil {
			return Result{}, err
		}
		count, err := countState(ctx, store, n, step.state)
		if err != nil {
			return Result{}, err
		}
		if count != int64(n) {
			return Result{}, fmt.Errorf("%w: after the %ss, %d of %d users are %s", errMismatch, step.name, count, n, step.state)
		}
		checks["users_"+step.state] = count
	}
	if err := proc.stop(); err != nil {
		return Result{}, err
	}

	if err := r.env.flush(ctx); err != nil {
		return Result{}, err
	}
	r.out.printf("raw: the same sessions as HSET, then HDEL, HSET of last seen and PEXPIRE")
	rawEmpty, err := r.env.usedMemory(ctx)
	if err != nil {
		return Result{}, err
	}
	at, epoch := time.Now(), pub.Epoch()
	var rawOnline, rawOffline int64
	for _, step := range []struct {
		ops  func(u string) []rawOp
		used *int64
	}{
		{func(u string) []rawOp {
			return []rawOp{{key: userKey(u), field: sessionField(u + "-ios"), value: rawSession("ios", "d"+u, ingestGateway, epoch, at)}}
		}, &rawOnline},
		{func(u string) []rawOp {
			return []rawOp{{key: userKey(u), field: sessionField(u + "-ios"), del: true},
				{key: userKey(u), field: "l", value: fmt.Sprint(at.UnixMilli()), expire: redisstore.DefaultOfflineTTL}}
		}, &rawOffline},
	} {
		var done atomic.Int64
		err := r.writeRaw(ctx, r.cfg.Writers, func(l int) iter.Seq[rawOp] {
			return func(yield func(rawOp) bool) {
				for i := l; i < n; i += r.cfg.Writers {
					for _, op := range step.ops(userID("m", i)) {
						if !yield(op) {
							return
						}
					}
				}
			}
		}, &done)
		if err != nil {
			return Result{}, err
		}
		if *step.used, err = r.env.usedMemory(ctx); err != nil {
			return Result{}, err
		}
	}
	perUser := func(used, base int64) float64 { return float64(used-base) / float64(n) }
	r.out.printf("project: %.0f bytes per online session, %.0f per offline user; raw: %.0f, %.0f",
		perUser(online, empty), perUser(offline, empty), perUser(rawOnline, rawEmpty), perUser(rawOffline, rawEmpty))
	return Result{
		Metrics: []Metric{
			metric("bytes/online session", perUser(online, empty), perUser(rawOnline, rawEmpty)),
			metric("bytes/offline user", perUser(offline, empty), perUser(rawOffline, rawEmpty)),
		},
		Checks: checks,
	}, nil
}

// countState counts the users of the memory scenario Redis shows in state.
func countState(ctx context.Context, store *redisstore.Store, n int, state string) (int64, error) {
	var count int64
	err := statusesOf(ctx, store, numbered("m", 0, n), func(_ string, st *redisstore.Status) {
		if st != nil && st.State == state {
			count++
		}
	})
	return count, err
}
