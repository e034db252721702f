package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presence-im/presence/presence/bench"
	"github.com/presence-im/presence/redisstore/redistest"
)

func TestBenchFlagErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown scenario", []string{"--scenarios", "ingest,warp"}, `unknown scenario "warp"`},
		{"no scenario", []string{"--scenarios", ","}, "names none"},
		{"zero writers", []string{"--writers", "0"}, "--writers must be positive"},
		{"negative users", []string{"--ingest-users", "-5"}, "--ingest-users must be positive"},
		{"share online", []string{"--online-share", "1.5"}, "--online-share must be above 0"},
		{"odd sessions", []string{"--sessions", "1001"}, "--sessions must be even"},
		{"zero duration", []string{"--duration", "0s"}, "--duration must be positive"},
		{"bad duration", []string{"--duration", "soon"}, "invalid value"},
		{"stray argument", []string{"extra"}, "takes no arguments"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"bench"}, c.args...), func(string) string { return "" }, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("printed results for a bad command:\n%s", stdout.String())
			}
		})
	}
}

func TestBenchHelpListsFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"bench", "--help"}, func(string) string { return "" }, &stdout, &stderr)
	for _, f := range []string{"scenarios", "json", "chart", "cpuprofile", "memprofile", "redis-url", "brokers", "sessions", "duration", "ingest-users", "fanout-users", "fanout-processors", "memory-users", "restore-users"} {
		if !strings.Contains(stderr.String(), "--"+f+" (PRESENCE_") {
			t.Errorf("presence bench --help does not list --%s:\n%s", f, stderr.String())
		}
	}
}

// `presence bench --json`, configured partly through the environment,
// prints the results as JSON on stdout, its progress on stderr, and the
// chart to the file asked for. Sizes are tiny; timings are not asserted.
func TestBenchJSONAndChart(t *testing.T) {
	url := redistest.URL(t) + "/14"
	redistest.Flush(t, url)
	env := map[string]string{
		"PRESENCE_REDIS_URL":    url,
		"PRESENCE_SCENARIOS":    "query,ingest",
		"PRESENCE_INGEST_USERS": "40",
		"PRESENCE_QUERY_USERS":  "90",
	}
	chart := filepath.Join(t.TempDir(), "bench.svg")
	args := []string{"bench", "--json", "--chart", chart, "--partitions", "2", "--writers", "2", "--query-clients", "2", "--duration", "200ms"}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	if len(rep.Results) != 2 || rep.Results[0].Scenario != "ingest" || rep.Results[1].Scenario != "query" {
		t.Fatalf("results %+v, want ingest then query", rep.Results)
	}
	ingest := rep.Results[0]
	if ingest.Checks["records"] != 60 || ingest.Checks["users_online"] != 20 || ingest.Checks["users_offline"] != 20 {
		t.Errorf("ingest checks %v, want 60 records of 40 users, half of them online", ingest.Checks)
	}
	for _, res := range rep.Results {
		if m := res.Metrics[0]; !(m.Project > 0 && m.Raw > 0 && m.Ratio > 0) || res.Met == nil {
			t.Errorf("%s: %+v, met %v: want positive numbers judged against the target", res.Scenario, m, res.Met)
		}
	}
	for _, want := range []string{"ingest: project:", "query: raw:", "chart of the latency distributions written"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	svg, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("query: latency")) || bytes.Count(svg, []byte("<polyline")) != 2 {
		t.Errorf("chart is not the query's latency curves:\n%.400s", svg)
	}
}
