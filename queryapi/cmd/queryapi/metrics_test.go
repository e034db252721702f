package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/cli"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// With --metrics-addr, /metrics is served there only, presence_build_info
// with it; the API and the health endpoints stay on --addr, and the rate
// limit flags apply.
func TestMetricsAddrAndRateLimits(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, schemas.SessionsTopic, schemas.FriendsTopic, schemas.SubscriptionsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, w := io.Pipe()
	ready := make(chan map[string]any, 1)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			var m map[string]any
			if json.Unmarshal(s.Bytes(), &m) == nil && m["msg"] == "queryapi ready" {
				ready <- m
			}
		}
	}()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--brokers", c.ListenAddrs()[0], "--redis-url", redistest.URL(t), "--key-prefix", redistest.Prefix(t),
			"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--rate-user", "0.001", "--rate-user-burst", "1", "--insecure"},
			func(string) string { return "" }, io.Discard, w)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var addr, metricsAddr string
	select {
	case m := <-ready:
		addr, metricsAddr = m["addr"].(string), m["metrics_addr"].(string)
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready within 10s")
	}
	for _, c := range []struct {
		url    string
		status int
		has    string
	}{
		{"http://" + addr + "/healthz", http.StatusOK, `"ok"`},
		{"http://" + addr + "/metrics", http.StatusNotFound, `"not_found"`},
		{"http://" + addr + "/v1/apps/chat/users/alice/status", http.StatusNotFound, `"not_found"`},
		{"http://" + addr + "/v1/apps/chat/users/alice/status", http.StatusTooManyRequests, `"rate_limited"`},
		{"http://" + metricsAddr + "/metrics", http.StatusOK, `presence_http_rate_limited_total{scope="user",server="queryapi"} 1`},
		{"http://" + metricsAddr + "/metrics", http.StatusOK, `presence_build_info{goversion="` + runtime.Version() + `",version="` + cli.Version() + `"} 1`},
		{"http://" + metricsAddr + "/healthz", http.StatusNotFound, `"not_found"`},
	} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.has) {
			t.Errorf("GET %s: %d, want %d with %s; body %.300s", c.url, resp.StatusCode, c.status, c.has, body)
		}
	}
}
