package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/ratelimit"
)

// queryBatch is how many ids one lookup asks for: the most the API takes.
const queryBatch = queryapi.MaxBatch

// kind is what Redis knows of an id of the query pool.
type kind uint8

const (
	unknown kind = iota
	online
	offline
)

// queryKind is the kind of id i of a pool of n: the first third online,
// the second offline, the last never seen.
func queryKind(i, n int) kind {
	switch {
	case i < n/3:
		return online
	case i < 2*n/3:
		return offline
	}
	return unknown
}

// lookup looks ids up, one round trip, and returns how many answers
// contradict kinds.
type lookup func(ctx context.Context, ids []string, kinds []kind) (wrong int, err error)

// runQuery measures batch lookups of queryBatch ids.
//
// Setup: QueryUsers ids, a third online (one session, every fourth user
// two), a third offline, a third never seen, written with
// redisstore.Store.Apply (the processor's own write) without Kafka: what
// is measured is reads.
//
// Project: QueryClients clients each post lookups of queryBatch ids drawn
// at random from the pool to POST /v1/apps/{app}/status/query of a
// queryapi.Server over loopback HTTP, one after the other, for
// QueryDuration; a lookup's latency runs from building the request to its
// answer decoded, every status whole (queryapi.DecodeResults, as a Go
// client would).
//
// Raw: the same clients look up the same ids, in the same order, as one
// go-redis pipeline of queryBatch HGETALL of the users' hashes each, for
// as long, reading the state of each id from the fields.
//
// Checked: every answer of both sides shows each id as what it is (and
// the project's, each status as the id's).
func runQuery(ctx context.Context, r *runner) (Result, error) {
	n := r.cfg.QueryUsers
	k, err := r.env.kafka(ctx) // the query API's writes need one, unused here
	if err != nil {
		return Result{}, err
	}
	defer k.close()
	store := r.env.store()
	if err := r.loadQueryUsers(ctx, store, n); err != nil {
		return Result{}, err
	}
	seed := uint64(time.Now().UnixNano())

	// No rate limits: the bench measures how fast lookups can go.
	qs, err := queryapi.New(queryapi.Config{Store: store, Brokers: k.brokers, KafkaOpts: k.opts, Logger: r.log,
		RateLimits: []ratelimit.Scope{}})
	if err != nil {
		return Result{}, err
	}
	defer qs.Close()
	l, err := httpapi.Listen("127.0.0.1:0")
	if err != nil {
		return Result{}, err
	}
	srvCtx, stopServer := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- httpapi.Serve(srvCtx, l, qs.Handler(), r.log) }()
	defer func() { stopServer(); <-served }()
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 2 * r.cfg.QueryClients, MaxIdleConnsPerHost: 2 * r.cfg.QueryClients, DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	url := "http://" + l.Addr().String() + "/v1/apps/" + app + "/status/query"

	r.out.printf("project: %d clients look up %d ids at a time through the query API for %s", r.cfg.QueryClients, queryBatch, r.cfg.QueryDuration)
	api := &apiClient{http: client, url: url}
	project, err := r.lookups(ctx, "project", n, seed, api.lookup)
	if err != nil {
		return Result{}, err
	}
	stopServer()
	r.out.printf("raw: the same clients and ids as pipelines of %d HGETALL for %s", queryBatch, r.cfg.QueryDuration)
	raw, err := r.lookups(ctx, "raw", n, seed, func(ctx context.Context, ids []string, kinds []kind) (int, error) {
		return rawLookup(ctx, r.env.rdb, ids, kinds)
	})
	if err != nil {
		return Result{}, err
	}
	res := Result{
		Metrics: append([]Metric{metric("ids/s", project.rate(), raw.rate())},
			cpuMetrics("1000 ids", project.measured(), project.ids/1000, raw.measured(), raw.ids/1000)...),
		Checks: map[string]int64{
			"lookups":     project.lookups,
			"raw_lookups": raw.lookups,
			"ids_online":  project.kinds[online], "ids_offline": project.kinds[offline], "ids_unknown": project.kinds[unknown],
		},
		projectSamples: project.samples, rawSamples: raw.samples,
	}
	res.ProjectLatency, res.RawLatency = summarize(project.samples), summarize(raw.samples)
	return res, nil
}

// loadQueryUsers writes the pool of ids with redisstore.Store.Apply.
func (r *runner) loadQueryUsers(ctx context.Context, store *redisstore.Store, n int) error {
	r.out.printf("setup: writing %d users (online, offline, never seen) with redisstore", n)
	now := time.Now()
	var changes []redisstore.Change
	var version int64
	add := func(c redisstore.Change) error {
		version++
		c.App, c.Version, c.At, c.Gateway, c.Epoch = app, version, now, ingestGateway, "e1"
		c.Partition = partitionOf(c.User, r.cfg.Partitions)
		if changes = append(changes, c); len(changes) == rawPipeline {
			return r.applyChanges(ctx, store, &changes)
		}
		return nil
	}
	for i := range 2 * n / 3 {
		u := userID("q", i)
		err := add(redisstore.Change{Op: redisstore.Connect, User: u, Session: u + "-ios", Device: "ios", DeviceID: "d" + u})
		if err == nil && i%4 == 0 {
			err = add(redisstore.Change{Op: redisstore.Connect, User: u, Session: u + "-web", Device: "web"})
		}
		if err == nil && queryKind(i, n) == offline {
			err = add(redisstore.Change{Op: redisstore.Disconnect, User: u, Session: u + "-ios"})
			if err == nil && i%4 == 0 {
				err = add(redisstore.Change{Op: redisstore.Disconnect, User: u, Session: u + "-web"})
			}
		}
		if err != nil {
			return err
		}
	}
	return r.applyChanges(ctx, store, &changes)
}

// applyChanges applies changes quietly and empties them.
func (r *runner) applyChanges(ctx context.Context, store *redisstore.Store, changes *[]redisstore.Change) error {
	if len(*changes) == 0 {
		return nil
	}
	if _, err := store.Apply(ctx, *changes, true); err != nil {
		return err
	}
	*changes = (*changes)[:0]
	return nil
}

// lookupRun is what one side of the query scenario did.
type lookupRun struct {
	lookups, ids int64
	kinds        [3]int64
	samples      []time.Duration
	elapsed      time.Duration
	cpu          cpuSpent
}

func (l lookupRun) rate() float64 { return perSecond(l.ids, l.elapsed) }

func (l lookupRun) measured() measured { return measured{elapsed: l.elapsed, cpu: l.cpu} }

// lookups runs QueryClients clients doing do for QueryDuration, each
// drawing its ids from a generator seeded by seed and its number, so that
// both sides ask for the same ids. Each client first does two lookups
// that are not counted (connections opened, caches warm).
func (r *runner) lookups(ctx context.Context, side string, n int, seed uint64, do lookup) (lookupRun, error) {
	var (
		mu   sync.Mutex
		run  lookupRun
		done atomic.Int64
	)
	stop := r.out.every(func() string {
		return fmt.Sprintf("%s: %d lookups (%d ids) so far", side, done.Load(), done.Load()*queryBatch)
	})
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	var deadline atomic.Pointer[time.Time]
	ready := make(chan struct{})
	var warm sync.WaitGroup
	warm.Add(r.cfg.QueryClients)
	for c := range r.cfg.QueryClients {
		g.Go(func() error {
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			ids, kinds := make([]string, queryBatch), make([]kind, queryBatch)
			var mine lookupRun
			for i := 0; ; i++ {
				if i == 2 {
					warm.Done()
					<-ready
				}
				if i >= 2 && time.Now().After(*deadline.Load()) {
					break
				}
				for j := range ids {
					at := rng.IntN(n)
					ids[j], kinds[j] = userID("q", at), queryKind(at, n)
				}
				began := time.Now()
				wrong, err := do(gctx, ids, kinds)
				took := time.Since(began)
				if err != nil {
					if i < 2 {
						warm.Done()
					}
					return fmt.Errorf("%s lookup: %w", side, err)
				}
				if wrong > 0 {
					return fmt.Errorf("%w: a %s lookup answered %d of %d ids wrong", errMismatch, side, wrong, queryBatch)
				}
				if i < 2 {
					continue
				}
				done.Add(1)
				mine.lookups++
				mine.ids += queryBatch
				mine.samples = append(mine.samples, took)
				for _, k := range kinds {
					mine.kinds[k]++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			run.lookups += mine.lookups
			run.ids += mine.ids
			for k := range mine.kinds {
				run.kinds[k] += mine.kinds[k]
			}
			run.samples = append(run.samples, mine.samples...)
			return nil
		})
	}
	warm.Wait()
	before, cpuErr := r.cpuNow(ctx)
	start := time.Now()
	end := start.Add(r.cfg.QueryDuration)
	deadline.Store(&end)
	close(ready)
	err := g.Wait()
	run.elapsed = time.Since(start)
	if err == nil && cpuErr == nil {
		var after cpuSpent
		after, err = r.cpuNow(ctx)
		run.cpu = after.sub(before)
	}
	err = cmp.Or(err, cpuErr)
	slices.Sort(run.samples)
	if err == nil {
		r.out.printf("%s: %.0f ids/s (%d lookups in %.1fs)", side, run.rate(), run.lookups, run.elapsed.Seconds())
	}
	return run, err
}

// apiClient looks ids up through the query API.
type apiClient struct {
	http *http.Client
	url  string
	// answers holds buffers to read answers into, for reuse: a decoder
	// of its own per answer would allocate several times the answer's
	// size while it grows, and that garbage is collected on the cores the
	// server uses too.
	answers sync.Pool
}

// lookup posts one status query and checks its answer.
func (c *apiClient) lookup(ctx context.Context, ids []string, kinds []kind) (int, error) {
	body, err := json.Marshal(map[string][]string{"users": ids})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("status query answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	buf, _ := c.answers.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer c.answers.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return 0, fmt.Errorf("reading the status query's answer: %w", err)
	}
	// Every status decoded whole, as a Go client of the API would.
	results, err := queryapi.DecodeResults(buf.Bytes())
	if err != nil {
		return 0, fmt.Errorf("decoding the status query's answer: %w", err)
	}
	if len(results) != len(ids) {
		return len(ids), nil
	}
	wrong := 0
	for i, st := range results {
		got := unknown
		if st != nil {
			got = offline
			if st.State == redisstore.Online {
				got = online
			}
		}
		if got != kinds[i] || (st != nil && st.User != ids[i]) {
			wrong++
		}
	}
	return wrong, nil
}

// rawLookup reads the users' hashes in one pipeline and checks them.
func rawLookup(ctx context.Context, rdb redis.UniversalClient, ids []string, kinds []kind) (int, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, userKey(id))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pipeline of %d HGETALL: %w", len(ids), err)
	}
	wrong := 0
	for i, c := range cmds {
		h, got := c.Val(), unknown
		if len(h) > 0 {
			got = offline
			for f := range h {
				if f[0] == 's' {
					got = online
					break
				}
			}
		}
		if got != kinds[i] {
			wrong++
		}
	}
	return wrong, nil
}
