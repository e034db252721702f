package dev_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/presence-im/presence/presence/dev"
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
