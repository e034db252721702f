package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/presence/bench"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// smallConfig is a run of every scenario with tiny sizes, on a database of
// the test binary's Redis emptied for it, and in-process Kafka. Timings
// are never asserted: only that the work measured was done, and that the
// numbers are there.
func smallConfig(t *testing.T, db string) bench.Config {
	url := redistest.URL(t) + "/" + db
	redistest.Flush(t, url)
	return bench.Config{
		RedisURL:       url,
		Partitions:     4,
		Writers:        2,
		IngestUsers:    201,
		QueryUsers:     300,
		QueryClients:   2,
		QueryDuration:  300 * time.Millisecond,
		ReplaySessions: 2000,
		FanoutUsers:    20,
		FanoutFriends:  10,
		FanoutOnline:   0.3,
		FanoutClients:  4,
		// Two processors: members of the other's partitions are read
		// from Redis, the rest from memory.
		FanoutProcessors: 2,
		MemoryUsers:      300,
		RestoreUsers:     201,
	}
}

func TestSmoke(t *testing.T) {
	checkSmallRun(t, smallConfig(t, "11"))
}

// checkSmallRun runs cfg, every scenario at smallConfig's sizes, and
// checks what each measured and verified. It returns the report and the
// progress written.
func checkSmallRun(t *testing.T, cfg bench.Config) (*bench.Report, string) {
	t.Helper()
	var progress bytes.Buffer
	cfg.Progress = &progress
	rep, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	results := map[string]bench.Result{}
	for _, res := range rep.Results {
		results[res.Scenario] = res
	}
	if len(results) != len(bench.Scenarios()) {
		t.Fatalf("got results of %d scenarios, want %d: %+v", len(results), len(bench.Scenarios()), rep.Results)
	}

	// Every scenario measured both sides, and says how they compare.
	for _, name := range bench.Scenarios() {
		t.Run(name+"/measured", func(t *testing.T) {
			res := results[name]
			if len(res.Metrics) == 0 {
				t.Fatal("no metrics")
			}
			// The headline metric, and the bytes of the memory scenario,
			// are positive; CPU times may round to nothing on tiny runs,
			// and the growth of the heap drown in noise.
			for i, m := range res.Metrics {
				positive := i == 0 || !strings.Contains(m.Name, "CPU") && !strings.Contains(m.Name, "heap")
				if positive && !(m.Project > 0 && m.Raw > 0 && m.Ratio > 0) {
					t.Errorf("%s: project %g, raw %g, ratio %g: want positive numbers", m.Name, m.Project, m.Raw, m.Ratio)
				}
				if m.Project < 0 || m.Raw < 0 {
					t.Errorf("%s: project %g, raw %g: want no negative number", m.Name, m.Project, m.Raw)
				}
			}
			if !strings.Contains(progress.String(), name+": ") {
				t.Errorf("no progress line of %s:\n%s", name, progress.String())
			}
		})
	}

	t.Run("targets", func(t *testing.T) {
		for name, want := range map[string]string{"ingest": "0.5× raw", "query": "0.6× raw", "replay": "0.5× raw", "fanout": "0.8× raw", "memory": "200"} {
			if res := results[name]; !strings.Contains(res.Target, want) || res.Met == nil {
				t.Errorf("%s: target %q (met %v), want one about %q, judged", name, res.Target, res.Met, want)
			}
		}
		for _, name := range []string{"restore"} {
			if res := results[name]; res.Target != "" || res.Met != nil {
				t.Errorf("%s has target %q, want none", name, res.Target)
			}
		}
	})

	t.Run("ingest/every record is in redis", func(t *testing.T) {
		c := results["ingest"].Checks
		want := map[string]int64{"records": 201 + 101, "users_offline": 101, "users_online": 100, "users_wrong": 0, "raw_records": 201 + 101, "raw_keys": 100}
		checkCounts(t, c, want)
	})

	t.Run("query/answers", func(t *testing.T) {
		res := results["query"]
		c := res.Checks
		for _, k := range []string{"ids_online", "ids_offline", "ids_unknown", "lookups", "raw_lookups"} {
			if c[k] <= 0 {
				t.Errorf("%s = %d, want some", k, c[k])
			}
		}
		if got, want := c["ids_online"]+c["ids_offline"]+c["ids_unknown"], 500*c["lookups"]; got != want {
			t.Errorf("%d ids answered, want 500 per lookup: %d", got, want)
		}
		checkLatency(t, res, c["lookups"], c["raw_lookups"])
	})

	t.Run("replay/every user rebuilt", func(t *testing.T) {
		checkCounts(t, results["replay"].Checks, map[string]int64{"sessions": 2000, "users_replayed": 1000, "raw_keys": 1000})
	})

	t.Run("fanout/friends notified", func(t *testing.T) {
		res := results["fanout"]
		// 20 users, 10 friends each, 3 of them online.
		checkCounts(t, res.Checks, map[string]int64{"users_online": 20, "notified": 60, "raw_notified": 60,
			"unexpected": 0, "raw_unexpected": 0, "online_friends_each": 3})
		checkLatency(t, res, 60, 60)
	})

	t.Run("memory/users loaded", func(t *testing.T) {
		res := results["memory"]
		checkCounts(t, res.Checks, map[string]int64{"users_online": int64(cfg.MemoryUsers), "users_offline": int64(cfg.MemoryUsers)})
		if len(res.Metrics) != 2 || res.Metrics[1].Name != "bytes/offline user" {
			t.Errorf("metrics %+v, want bytes per online session, then per offline user", res.Metrics)
		}
	})

	t.Run("restore/both ways restore every user", func(t *testing.T) {
		res := results["restore"]
		// 201 users, 100 online with one session each, in 201 + 101
		// records.
		checkCounts(t, res.Checks, map[string]int64{"records": 302, "users_topic": 201, "users_redis": 201,
			"online_topic": 100, "online_redis": 100, "sessions_topic": 100, "sessions_redis": 100})
		if c := res.Checks; c["users_partition_0_topic"] <= 0 || c["users_partition_0_topic"] >= 201 {
			t.Errorf("partition 0 alone restored %d users, want some of the 201", c["users_partition_0_topic"])
		}
		if len(res.Metrics) != 5 || res.Metrics[4].Name != "heap bytes/user (topic | redis)" {
			t.Errorf("metrics %+v, want users/s of every partition then of one, CPU, then heap bytes per user", res.Metrics)
		}
	})

	t.Run("table", func(t *testing.T) {
		var out bytes.Buffer
		if err := bench.WriteTable(&out, rep); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"records/s", "ids/s", "sessions/s", "notifications/s", "bytes/online session",
			"users/s (topic | redis)", "latency p99", "≥ 0.6× raw", "checked replay"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("table lacks %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		var out bytes.Buffer
		if err := bench.WriteJSON(&out, rep); err != nil {
			t.Fatal(err)
		}
		var back bench.Report
		if err := json.Unmarshal(out.Bytes(), &back); err != nil {
			t.Fatalf("decoding: %v\n%s", err, out.String())
		}
		if len(back.Results) != len(rep.Results) || back.Results[1].ProjectLatency == nil || back.Results[1].Metrics[0].Ratio <= 0 {
			t.Errorf("decoded %+v, want the results written", back.Results)
		}
	})

	t.Run("chart", func(t *testing.T) {
		var out bytes.Buffer
		if err := bench.WriteChart(&out, rep); err != nil {
			t.Fatal(err)
		}
		lines, texts := parseSVG(t, out.Bytes())
		if lines != 4 {
			t.Errorf("%d curves, want project and raw of query and fanout", lines)
		}
		for _, want := range []string{"query: latency", "fanout: latency", "project: p50"} {
			if !strings.Contains(texts, want) {
				t.Errorf("chart lacks %q: %s", want, texts)
			}
		}
	})
	return rep, progress.String()
}

func checkCounts(t *testing.T, got, want map[string]int64) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (checks %v)", k, got[k], v, got)
		}
	}
}

func checkLatency(t *testing.T, res bench.Result, project, raw int64) {
	t.Helper()
	p, r := res.ProjectLatency, res.RawLatency
	if p == nil || r == nil {
		t.Fatalf("latency project %v, raw %v: want both", p, r)
	}
	if int64(p.Count) != project || int64(r.Count) != raw {
		t.Errorf("latency samples %d and %d, want %d and %d", p.Count, r.Count, project, raw)
	}
	for _, l := range []*bench.Latency{p, r} {
		if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("percentiles %+v, want 0 < p50 ≤ p90 ≤ p99 ≤ max", l)
		}
	}
}

// parseSVG checks that svg is well-formed XML and returns its polylines
// and its text.
func parseSVG(t *testing.T, svg []byte) (polylines int, texts string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	var b strings.Builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return polylines, b.String()
		}
		if err != nil {
			t.Fatalf("chart is not well-formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "polyline" {
				polylines++
			}
		case xml.CharData:
			b.Write(tok)
			b.WriteByte('|')
		}
	}
}

// A Redis given whose database holds keys is refused before anything is
// written to it.
func TestRefusesNonEmptyRedis(t *testing.T) {
	url := redistest.URL(t) + "/12"
	redistest.Flush(t, url)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "precious", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cfg := smallConfig(t, "13")
	cfg.RedisURL, cfg.Scenarios = url, []string{"ingest"}
	_, err = bench.Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "holds 1 keys") {
		t.Fatalf("got %v, want a refusal naming the keys held", err)
	}
	if v, _ := rdb.Get(ctx, "precious").Result(); v != "1" {
		t.Errorf("the key held is now %q, want it untouched", v)
	}
}

// With a Kafka given, each scenario creates the Presence topics there and
// deletes them when it ends; a Kafka that already holds them is refused.
// A Redis given is left as empty as it was found.
func TestExternalKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()

	cfg := smallConfig(t, "15")
	cfg.Brokers, cfg.Scenarios = c.ListenAddrs(), []string{"ingest", "replay"}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Results[1].Checks["users_replayed"]; got != 1000 {
		t.Errorf("replayed %d users, want 1000", got)
	}
	// The Redis given, empty before, is empty again.
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("the run left %d keys in redis (%v), want none", n, err)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := topics.Names(); len(names) > 0 {
		t.Errorf("the run left topics %v behind", names)
	}

	if _, err := adm.CreateTopic(ctx, 1, 1, nil, schemas.SessionsTopic); err != nil {
		t.Fatal(err)
	}
	_, err = bench.Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "holds Presence topics ("+schemas.SessionsTopic+")") {
		t.Fatalf("got %v, want a refusal naming the topic held", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  bench.Config
		want string
	}{
		{"unknown scenario", bench.Config{Scenarios: []string{"ingest", "warp"}}, `unknown scenario "warp"`},
		{"negative size", bench.Config{IngestUsers: -1}, "ingest users must not be negative"},
		{"share online", bench.Config{FanoutOnline: 1.5}, "between 0 and 1"},
		{"odd sessions", bench.Config{ReplaySessions: 3}, "must be even"},
		{"processors without partitions", bench.Config{Partitions: 2, FanoutProcessors: 3}, "must not outnumber the partitions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := bench.Run(context.Background(), c.cfg)
			if !errors.Is(err, bench.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrConfig saying %q", err, c.want)
			}
		})
	}
}
