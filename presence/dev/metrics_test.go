package dev_test

import (
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/presence/dev"
	"github.com/presence-im/presence/service/httpapi"
)

// With MetricsAddr, /metrics is served there, for both servers, and on
// neither server's address; their health endpoints stay where they were.
func TestMetricsAddr(t *testing.T) {
	p := startDevWith(t, dev.Config{DataDir: t.TempDir(), MetricsAddr: "127.0.0.1:0"})
	if p.Metrics == "" {
		t.Fatal("no metrics address in the ready signal")
	}
	for _, c := range []struct {
		url    string
		status int
		has    []string
	}{
		{"http://" + p.Metrics + "/metrics", http.StatusOK, []string{"presence_queryapi_rebuilding_partitions", "presence_gateway_sockets", "presence_processor_"}},
		{"http://" + p.Query + "/metrics", http.StatusNotFound, []string{`"not_found"`}},
		{"http://" + p.Gateway + "/metrics", http.StatusNotFound, []string{`"not_found"`}},
		{"http://" + p.Query + "/healthz", http.StatusOK, []string{`"ok"`}},
		{"http://" + p.Gateway + "/readyz", http.StatusOK, []string{`"ready"`}},
		{"http://" + p.Metrics + "/readyz", http.StatusNotFound, []string{`"not_found"`}},
	} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("GET %s: %d, want %d: %.200s", c.url, resp.StatusCode, c.status, body)
			continue
		}
		for _, want := range c.has {
			if !strings.Contains(string(body), want) {
				t.Errorf("GET %s lacks %s", c.url, want)
			}
		}
	}
}

// Every metric family the servers register is in the README's Metrics
// table and nothing else is, and a Grafana panel shows it; every metric a
// panel or a Prometheus rule names is registered. What is registered comes from the real wiring
// (presence dev runs every component of the three binaries) by the
// registry's descriptors, so that a vector with no series yet counts too.
func TestMetricsDocumented(t *testing.T) {
	reg := httpapi.NewRegistry() // what every server registers on, presence_build_info included
	startDevWith(t, dev.Config{DataDir: t.TempDir(), Registry: reg})
	registered := registeredFamilies(reg)
	if len(registered) < 40 {
		t.Fatalf("only %d presence_ families registered: %v", len(registered), slices.Sorted(maps.Keys(registered)))
	}

	readme := readFile(t, "../../README.md")
	table, _, ok := strings.Cut(after(readme, "\n## Metrics\n"), "\n## ")
	if !ok {
		t.Fatal("README.md has no \"## Metrics\" section")
	}
	documented := families(table)
	for name := range registered {
		if !documented[name] {
			t.Errorf("%s is registered but not in the README's Metrics table", name)
		}
	}
	for name := range documented {
		if !registered[name] {
			t.Errorf("the README's Metrics table lists %s, which no server registers", name)
		}
	}

	const dashboard = "../../deploy/grafana/dashboards/presence.json"
	for _, file := range []string{dashboard, "../../deploy/prometheus/alerts.yml"} {
		named := families(readFile(t, file))
		if len(named) == 0 {
			t.Errorf("%s names no presence_ metric", file)
		}
		for name := range named {
			if !registered[name] {
				t.Errorf("%s names %s, which no server registers", file, name)
			}
		}
		if file != dashboard {
			continue
		}
		for name := range registered {
			if !named[name] {
				t.Errorf("no panel of %s shows %s", file, name)
			}
		}
	}
}

// fqName is a descriptor's metric name in its String form.
var fqName = regexp.MustCompile(`fqName: "([a-z_:]+)"`)

// registeredFamilies are the presence_ families registered on reg.
func registeredFamilies(reg *prometheus.Registry) map[string]bool {
	ch := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	names := map[string]bool{}
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil && strings.HasPrefix(m[1], "presence_") {
			names[m[1]] = true
		}
	}
	return names
}

// metricName is a presence_ metric name in text: a README row, a panel's
// query, a rule's expression.
var metricName = regexp.MustCompile(`\bpresence_[a-z0-9_]*[a-z0-9]`)

// families are the metric families text names: a histogram's _bucket,
// _sum and _count series name its family.
func families(text string) map[string]bool {
	names := map[string]bool{}
	for _, name := range metricName.FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			name = strings.TrimSuffix(name, suffix)
		}
		names[name] = true
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// after is what follows sep in s ("" without sep).
func after(s, sep string) string {
	_, rest, _ := strings.Cut(s, sep)
	return rest
}
