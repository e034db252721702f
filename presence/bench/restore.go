package bench

import (
	"context"
	"fmt"
	"iter"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// restoreGateway is the id of the gateway publishing in the restore
// scenario.
const restoreGateway = "bench-restore"

// runRestore measures the two ways a processor assigned partitions of
// presence.sessions can restore their users in memory (processor/state):
// from the topic, or from Redis. It compares them with each other, not
// with a raw baseline: the table's project column is the topic, its raw
// column Redis.
//
// Setup: RestoreUsers users connect, one session each, then every other
// one disconnects (1.5 records per user, as in ingest), through
// gateway.Publisher to presence.sessions; a quiet processor then applies
// them to an empty Redis, and stops.
//
// Topic (project column): a plain franz-go consumer (no group) reads
// every partition from its beginning to its end, each record decoded and
// checked as the processor does (decodeSession), and folded quietly into
// the state of its partition (state.Partition.Apply).
//
// Redis (raw column): redisstore.ScanUsers reads the users of every
// partition (SCAN of the whole store, HGETALL and PEXPIRETIME pipelined),
// each loaded into the state of its partition (state.Partition.Load).
//
// Both time from start to every partition restored, and report users per
// second, the CPU time of Redis and of this process per user, and the
// growth of this process's live heap (after a GC) per user restored: half
// the users are online with one session, half offline.
//
// Checked: both restore every user, the same number online with the same
// number of sessions.
func runRestore(ctx context.Context, r *runner) (Result, error) {
	n := r.cfg.RestoreUsers
	k, err := r.env.kafka(ctx)
	if err != nil {
		return Result{}, err
	}
	defer k.close()
	if err := r.writeRestoreState(ctx, k, n); err != nil {
		return Result{}, err
	}
	ends, err := k.ends(ctx, schemas.SessionsTopic)
	if err != nil {
		return Result{}, err
	}
	var records int64
	for _, end := range ends {
		records += end
	}

	checks := map[string]int64{"records": records}
	restores := []struct {
		side    string
		restore func(ctx context.Context, parts []*state.Partition, done *atomic.Int64) error
	}{
		{"topic", func(ctx context.Context, parts []*state.Partition, done *atomic.Int64) error {
			return foldTopic(ctx, k, ends, parts, done)
		}},
		{"redis", func(ctx context.Context, parts []*state.Partition, done *atomic.Int64) error {
			return loadRedis(ctx, r.env.store(), parts, done)
		}},
	}
	var times [2]measured
	var heap [2]float64
	for i, side := range restores {
		r.out.printf("%s: restoring the users of %d partitions", side.side, r.cfg.Partitions)
		before := liveHeap()
		parts := make([]*state.Partition, r.cfg.Partitions)
		for p := range parts {
			parts[p] = state.New(state.Config{})
		}
		var done atomic.Int64
		stop := r.out.every(counting(side.side+": users restored", int64(n), done.Load))
		times[i], err = r.measure(ctx, func() error { return side.restore(ctx, parts, &done) })
		stop()
		if err != nil {
			return Result{}, fmt.Errorf("restoring from the %s: %w", side.side, err)
		}
		heap[i] = max(float64(liveHeap())-float64(before), 0) // a tiny run's can be noise below 0
		users, online, sessions := countRestored(parts)
		runtime.KeepAlive(parts)
		checks["users_"+side.side], checks["online_"+side.side], checks["sessions_"+side.side] = users, online, sessions
		r.out.printf("%s: %.0f users/s (%d users, %d sessions in %.2fs), %.0f heap bytes/user",
			side.side, perSecond(users, times[i].elapsed), users, sessions, times[i].elapsed.Seconds(), heap[i]/float64(max(users, 1)))
	}
	for _, c := range []string{"users", "online", "sessions"} {
		if checks[c+"_topic"] != checks[c+"_redis"] {
			return Result{}, fmt.Errorf("%w: %s restored from the topic %d, from redis %d", errMismatch, c, checks[c+"_topic"], checks[c+"_redis"])
		}
	}
	if want := int64(n); checks["users_topic"] != want || checks["sessions_topic"] != want/2 {
		return Result{}, fmt.Errorf("%w: restored %d users with %d sessions, want %d with %d", errMismatch, checks["users_topic"], checks["sessions_topic"], want, want/2)
	}
	users := checks["users_topic"]
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(users, 1)) }
	return Result{
		Metrics: []Metric{
			metric("users/s (topic | redis)", perSecond(users, times[0].elapsed), perSecond(users, times[1].elapsed)),
			metric("redis CPU µs/user (topic | redis)", per(times[0].cpu.redis), per(times[1].cpu.redis)),
			metric("process CPU µs/user (topic | redis)", per(times[0].cpu.self), per(times[1].cpu.self)),
			metric("heap bytes/user (topic | redis)", heap[0]/float64(max(users, 1)), heap[1]/float64(max(users, 1))),
		},
		Checks: checks,
	}, nil
}

// writeRestoreState publishes the scenario's records, and has a quiet
// processor apply them to Redis.
func (r *runner) writeRestoreState(ctx context.Context, k *kafka, n int) error {
	pub, err := newPublisher(k, restoreGateway)
	if err != nil {
		return err
	}
	defer pub.Close()
	total := int64(n + (n+1)/2)
	r.out.printf("setup: publishing %d records of %d users, then a quiet processor applies them", total, n)
	var published atomic.Int64
	stop := r.out.every(counting("setup: records published", total, published.Load))
	err = publish(ctx, pub.Publish, r.cfg.Writers, setupBatch, func(l int) iter.Seq[gateway.Event] { return ingestEvents(n, l, r.cfg.Writers) }, &published)
	stop()
	if err != nil {
		return err
	}
	proc, err := r.startProcessor(ctx, k, processor.Config{Group: "bench-restore", Quiet: true})
	if err != nil {
		return err
	}
	defer proc.stop()
	stop = r.out.every(counting("setup: records applied", total, func() int64 { return proc.p.Progress().Done }))
	err = proc.waitCaughtUp(ctx)
	stop()
	if err != nil {
		return err
	}
	if err := proc.stop(); err != nil {
		return err
	}
	checks, err := checkIngest(ctx, r.env.store(), n)
	if err != nil {
		return err
	}
	r.out.printf("setup: redis holds %d users online, %d offline", checks["users_online"], checks["users_offline"])
	return nil
}

// loadRedis restores parts, the partitions of presence.sessions, from
// Redis.
func loadRedis(ctx context.Context, store *redisstore.Store, parts []*state.Partition, done *atomic.Int64) error {
	all := make([]int32, len(parts))
	for p := range all {
		all[p] = int32(p)
	}
	return store.ScanUsers(ctx, len(parts), all, func(u redisstore.StoredUser) error {
		done.Add(1)
		return parts[u.Partition].Load(u.App, u.User, u.Fields, u.ExpireAt)
	})
}

// countRestored counts the users of parts, those online, and their
// sessions.
func countRestored(parts []*state.Partition) (users, online, sessions int64) {
	for _, p := range parts {
		users += int64(p.Len())
		seen := map[redisstore.User]bool{}
		for _, gw := range p.Gateways() {
			for _, s := range p.SessionsOf(gw) {
				sessions++
				if key := (redisstore.User{App: s.App, User: s.User}); !seen[key] {
					seen[key] = true
					online++
				}
			}
		}
	}
	return users, online, sessions
}

// liveHeap returns the bytes of live heap objects after a full GC.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
