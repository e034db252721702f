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
// Each side restores every partition, as a processor alone in its group
// does, then partition 0 alone, as one of many does: the topic side reads
// only that partition, the Redis side still scans every key of the store.
// Both time from start to every partition asked restored, and report
// users per second, the CPU time of Redis and of this process per user,
// and the growth of this process's live heap (after a GC) per user
// restored: half the users are online with one session, half offline.
//
// Checked: both restore every user, the same number online with the same
// number of sessions, and the same users of partition 0.
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
	all := make([]int32, r.cfg.Partitions)
	for p := range all {
		all[p] = int32(p)
	}
	sides := []struct {
		name    string
		restore func(ctx context.Context, partitions []int32, parts []*state.Partition, done *atomic.Int64) error
	}{
		{"topic", func(ctx context.Context, partitions []int32, parts []*state.Partition, done *atomic.Int64) error {
			from := map[int32]int64{}
			for _, p := range partitions {
				from[p] = ends[p]
			}
			return foldTopic(ctx, k, from, parts, done)
		}},
		{"redis", func(ctx context.Context, partitions []int32, parts []*state.Partition, done *atomic.Int64) error {
			return loadRedis(ctx, r.env.store(), partitions, parts, done)
		}},
	}
	var whole, one [2]restored
	for i, side := range sides {
		if whole[i], err = r.restoreFrom(ctx, side.name, all, side.restore); err != nil {
			return Result{}, err
		}
		if one[i], err = r.restoreFrom(ctx, side.name, all[:1], side.restore); err != nil {
			return Result{}, err
		}
		checks["users_"+side.name], checks["online_"+side.name], checks["sessions_"+side.name] = whole[i].users, whole[i].online, whole[i].sessions
		checks["users_partition_0_"+side.name] = one[i].users
	}
	for _, c := range []string{"users", "online", "sessions", "users_partition_0"} {
		if checks[c+"_topic"] != checks[c+"_redis"] {
			return Result{}, fmt.Errorf("%w: %s restored from the topic %d, from redis %d", errMismatch, c, checks[c+"_topic"], checks[c+"_redis"])
		}
	}
	if want := int64(n); checks["users_topic"] != want || checks["sessions_topic"] != want/2 {
		return Result{}, fmt.Errorf("%w: restored %d users with %d sessions, want %d with %d", errMismatch, checks["users_topic"], checks["sessions_topic"], want, want/2)
	}
	per := func(v float64, rs restored) float64 { return v / float64(max(rs.users, 1)) }
	cpu := func(d time.Duration, rs restored) float64 { return per(float64(d.Microseconds()), rs) }
	return Result{
		Metrics: []Metric{
			metric("users/s (topic | redis)", perSecond(whole[0].users, whole[0].m.elapsed), perSecond(whole[1].users, whole[1].m.elapsed)),
			metric(fmt.Sprintf("users/s, 1 partition of %d (topic | redis)", r.cfg.Partitions),
				perSecond(one[0].users, one[0].m.elapsed), perSecond(one[1].users, one[1].m.elapsed)),
			metric("redis CPU µs/user (topic | redis)", cpu(whole[0].m.cpu.redis, whole[0]), cpu(whole[1].m.cpu.redis, whole[1])),
			metric("process CPU µs/user (topic | redis)", cpu(whole[0].m.cpu.self, whole[0]), cpu(whole[1].m.cpu.self, whole[1])),
			metric("heap bytes/user (topic | redis)", per(whole[0].heap, whole[0]), per(whole[1].heap, whole[1])),
		},
		Checks: checks,
	}, nil
}

// restored is what one restore measured.
type restored struct {
	m                       measured
	users, online, sessions int64
	// heap is the growth of the live heap, in bytes.
	heap float64
}

// restoreFrom restores the given partitions of presence.sessions from one
// side into new states, and measures it.
func (r *runner) restoreFrom(ctx context.Context, side string, partitions []int32,
	restore func(ctx context.Context, partitions []int32, parts []*state.Partition, done *atomic.Int64) error) (restored, error) {
	r.out.printf("%s: restoring the users of %d partitions", side, len(partitions))
	before := liveHeap()
	parts := make([]*state.Partition, r.cfg.Partitions)
	for p := range parts {
		parts[p] = state.New(state.Config{})
	}
	var done atomic.Int64
	stop := r.out.every(counting(side+": users restored", int64(r.cfg.RestoreUsers), done.Load))
	m, err := r.measure(ctx, func() error { return restore(ctx, partitions, parts, &done) })
	stop()
	if err != nil {
		return restored{}, fmt.Errorf("restoring from the %s: %w", side, err)
	}
	rs := restored{m: m, heap: max(float64(liveHeap())-float64(before), 0)} // a tiny run's can be noise below 0
	rs.users, rs.online, rs.sessions = countRestored(parts)
	runtime.KeepAlive(parts)
	r.out.printf("%s: %.0f users/s (%d users, %d sessions in %.2fs), %.0f heap bytes/user",
		side, perSecond(rs.users, m.elapsed), rs.users, rs.sessions, m.elapsed.Seconds(), rs.heap/float64(max(rs.users, 1)))
	return rs, nil
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

// loadRedis restores the given partitions of presence.sessions, whose
// states are parts (by partition), from Redis.
func loadRedis(ctx context.Context, store *redisstore.Store, partitions []int32, parts []*state.Partition, done *atomic.Int64) error {
	return store.ScanUsers(ctx, len(parts), partitions, func(u redisstore.StoredUser) error {
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

// liveHeap returns the bytes of live heap objects after two full GCs
// (the first leaves what sync.Pools held in their victim caches).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
