package bench

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// ingestGateway is the id of the gateway publishing in the ingest and
// memory scenarios.
const ingestGateway = "bench-gw"

// runIngest measures how many session records per second go from a
// gateway to Redis.
//
// Project: IngestUsers users connect, one session each, then every other
// one disconnects (1.5 records per user). Writers goroutines publish
// them through one gateway.Publisher (the library a gateway embeds),
// publishBatch events per Publish, a user's events in order, to the
// in-process (or given) Kafka, while a processor (not quiet: it makes
// announcements, as in production) applies them to Redis. The
// time runs from the first publish until the processor's checkpoints in
// Redis cover every record: each applied, its announcements made.
//
// Raw: the same records (the same SessionEvent values, keys and
// partitioner as gateway.Publisher's) produced by Writers goroutines
// through a plain franz-go client, publishBatch per acknowledged produce,
// to the same Kafka; a plain franz-go consumer (no group: every
// partition, from where the project's records end) decodes them and
// writes each poll's to an empty Redis in one pipeline, blindly: HSET of
// the session's field in the user's hash (redisstore's keys and values)
// for a connect, HDEL of it for a disconnect. The time runs from the
// first produce until every record is in Redis. So the ratio is what
// Presence adds over the tools: validation, the consumer group, the
// versioned apply in the processor's memory, announcements (each changed
// user's audience read from Redis), checkpoints.
//
// Checked: afterwards, every user is in Redis with the state its last
// record says (online with its session, or offline with a last seen);
// on the raw side, every record written and one hash left per online
// user.
func runIngest(ctx context.Context, r *runner) (Result, error) {
	n := r.cfg.IngestUsers
	total := int64(n + (n+1)/2)
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
	proc, err := r.startProcessor(ctx, k, processor.Config{Group: "bench-ingest"})
	if err != nil {
		return Result{}, err
	}
	defer proc.stop()
	if err := proc.waitCaughtUp(ctx); err != nil {
		return Result{}, err
	}
	// Heartbeats start once the processor is ready (see leaseAfterReady).
	defer keepLease(ctx, pub)()

	r.out.printf("project: %d users connect, every other one disconnects: %d records through gateway.Publisher, kafka, the processor, into redis", n, total)
	var published atomic.Int64
	store := r.env.store()
	stop := r.out.every(func() string {
		ends := map[int32]int64{}
		for p := range r.cfg.Partitions {
			ends[p] = total // no partition holds more
		}
		applied, _ := applied(ctx, store, schemas.SessionsTopic, ends)
		return fmt.Sprintf("project: %d/%d records published, %d applied", published.Load(), total, applied)
	})
	project, err := r.measure(ctx, func() error {
		err := publish(ctx, pub.Publish, r.cfg.Writers, publishBatch, func(l int) iter.Seq[gateway.Event] { return ingestEvents(n, l, r.cfg.Writers) }, &published)
		if err != nil {
			return err
		}
		ends, err := k.ends(ctx, schemas.SessionsTopic)
		if err != nil {
			return err
		}
		return r.waitApplied(ctx, proc, schemas.SessionsTopic, ends)
	})
	stop()
	if err != nil {
		return Result{}, fmt.Errorf("publishing and applying: %w", err)
	}
	checks, err := checkIngest(ctx, store, n)
	if err != nil {
		return Result{}, err
	}
	checks["records"] = published.Load()
	if err := proc.stop(); err != nil {
		return Result{}, err
	}
	r.out.printf("project: %.0f records/s (%d in %.2fs)", perSecond(total, project.elapsed), total, project.elapsed.Seconds())

	if err := r.env.flush(ctx); err != nil {
		return Result{}, err
	}
	r.out.printf("raw: the same %d records through a plain producer, kafka, a plain consumer, into redis as HSET/HDEL pipelined per poll", total)
	var produced atomic.Int64
	cons, err := startRawConsumer(ctx, k, r.env.rdb, total)
	if err != nil {
		return Result{}, err
	}
	defer cons.close()
	cl, err := k.client()
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	prod := &rawProducer{cl: cl, gateway: ingestGateway, epoch: pub.Epoch()}
	stop = r.out.every(func() string {
		return fmt.Sprintf("raw: %d/%d records produced, %d written", produced.Load(), total, cons.written.Load())
	})
	raw, err := r.measure(ctx, func() error {
		err := publish(ctx, prod.send, r.cfg.Writers, publishBatch, func(l int) iter.Seq[gateway.Event] { return ingestEvents(n, l, r.cfg.Writers) }, &produced)
		if err != nil {
			return err
		}
		return cons.wait(ctx)
	})
	stop()
	if err != nil {
		return Result{}, fmt.Errorf("producing and writing raw: %w", err)
	}
	written := cons.written.Load()
	checks["raw_records"] = written
	if checks["raw_keys"], err = r.env.countKeys(ctx); err != nil {
		return Result{}, err
	}
	r.out.printf("raw: %.0f records/s (%d in %.2fs)", perSecond(written, raw.elapsed), written, raw.elapsed.Seconds())
	return Result{
		Metrics: append([]Metric{metric("records/s", perSecond(total, project.elapsed), perSecond(written, raw.elapsed))},
			cpuMetrics("record", project, total, raw, written)...),
		Checks: checks,
	}, nil
}

// ingestOffline reports whether user i of the ingest ends offline.
func ingestOffline(i int) bool { return i%2 == 0 }

// ingestEvents yields the events of lane l of lanes: the connects of its
// users, then the disconnects of those that go offline.
func ingestEvents(n, l, lanes int) iter.Seq[gateway.Event] {
	return func(yield func(gateway.Event) bool) {
		for i := l; i < n; i += lanes {
			u := userID("u", i)
			if !yield(gateway.Event{Type: gateway.Connect, App: app, User: u, Session: u + "-ios", Device: "ios", DeviceID: "d" + u}) {
				return
			}
		}
		for i := l; i < n; i += lanes {
			if u := userID("u", i); ingestOffline(i) && !yield(gateway.Event{Type: gateway.Disconnect, App: app, User: u, Session: u + "-ios"}) {
				return
			}
		}
	}
}

// checkIngest counts the users of the ingest by the state Redis shows, and
// fails unless each shows what its last record says.
func checkIngest(ctx context.Context, store *redisstore.Store, n int) (map[string]int64, error) {
	checks := map[string]int64{"users_online": 0, "users_offline": 0, "users_wrong": 0}
	i := 0
	err := statusesOf(ctx, store, numbered("u", 0, n), func(user string, st *redisstore.Status) {
		switch {
		case st == nil:
			checks["users_wrong"]++
		case ingestOffline(i) && st.State == redisstore.Offline && st.LastSeen != nil:
			checks["users_offline"]++
		case !ingestOffline(i) && st.State == redisstore.Online && len(st.Sessions) == 1 && st.Sessions[0].Session == user+"-ios":
			checks["users_online"]++
		default:
			checks["users_wrong"]++
		}
		i++
	})
	if err != nil {
		return nil, err
	}
	if checks["users_wrong"] > 0 {
		return nil, fmt.Errorf("%w: %d of %d users do not show their last record", errMismatch, checks["users_wrong"], n)
	}
	return checks, nil
}
