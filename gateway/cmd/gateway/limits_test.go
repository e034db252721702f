package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/schemas"
)

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With --metrics-addr, /metrics is served there only, and the health
// endpoints stay on --addr; the rate limit flags limit the WebSocket path
// per user.
func TestMetricsAddrAndRateLimits(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(12, schemas.SessionsTopic, schemas.GatewaysTopic, schemas.NotifyTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stderr, lines := logLines(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--brokers", c.ListenAddrs()[0], "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
			"--id", "gw-cmd", "--rate-user", "0.001", "--rate-user-burst", "1", "--insecure"},
			func(string) string { return "" }, io.Discard, stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	ready := waitLog(t, lines, "gateway ready")
	addr, metricsAddr := ready["addr"].(string), ready["metrics_addr"].(string)

	for _, c := range []struct {
		url    string
		status int
		has    string
	}{
		{"http://" + addr + "/healthz", http.StatusOK, `"ok"`},
		{"http://" + addr + "/metrics", http.StatusNotFound, `"not_found"`},
		{"http://" + metricsAddr + "/metrics", http.StatusOK, "presence_gateway_sockets"},
		{"http://" + metricsAddr + "/healthz", http.StatusNotFound, `"not_found"`},
		// Not a handshake: refused by the socket server; then alice is
		// over her rate.
		{"http://" + addr + "/v1/apps/chat/ws?user=alice&session=s1&device=web", http.StatusBadRequest, `"invalid"`},
		{"http://" + addr + "/v1/apps/chat/ws?user=alice&session=s1&device=web", http.StatusTooManyRequests, `"rate_limited"`},
		{"http://" + metricsAddr + "/metrics", http.StatusOK, `presence_http_rate_limited_total{scope="user",server="gateway"} 1`},
	} {
		if status, body := get(t, c.url); status != c.status || !strings.Contains(body, c.has) {
			t.Errorf("GET %s: %d, want %d with %s; body %.300s", c.url, status, c.status, c.has, body)
		}
	}
}
