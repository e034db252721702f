package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/service/auth/authtest"
)

// The queryapi command delivers the webhooks of its --auth file: a change
// on presence.changes reaches the endpoint signed, and is counted on
// /metrics.
func TestWebhooks(t *testing.T) {
	const secret = "cmd-webhook-secret-0001"
	bodies := make(chan string, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if r.Header.Get("Presence-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("a body whose signature does not verify: %s", body)
		}
		bodies <- string(body)
	}))
	defer hook.Close()
	f := authtest.New(t)
	f.Apps["chat"].(map[string]any)["webhooks"] = []any{map[string]any{"url": hook.URL, "secret": secret}}
	f.Write()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, schemas.ChangesTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	r, w := io.Pipe()
	ready := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			var m struct{ Msg, Addr string }
			if json.Unmarshal(s.Bytes(), &m) == nil && m.Msg == "queryapi ready" {
				ready <- m.Addr
			}
		}
	}()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--brokers", c.ListenAddrs()[0], "--redis-url", redistest.URL(t), "--key-prefix", redistest.Prefix(t),
			"--addr", "127.0.0.1:0", "--auth", f.File}, func(string) string { return "" }, io.Discard, w)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready within 10s")
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(records.Partitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec, err := records.Encode(schemas.ChangesTopic, schemas.UserKey("chat", "alice"), &pb.StatusChange{App: "chat",
		Status: &pb.UserStatus{User: "alice", Online: true, Version: 7}, TimestampMs: time.Now().UnixMilli()}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := records.Produce(ctx, cl, rec); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-bodies:
		if want := `{"type":"presence","user":"alice","state":"online","sessions":[],"custom":null,"last_seen":null,"version":7,"activity":"active"}`; body != want {
			t.Errorf("body %s, want %s", body, want)
		}
	case <-time.After(30 * time.Second): // a guard, not a timing
		t.Fatal("no webhook within 30s")
	}
	const delivered = `presence_webhook_deliveries_total{app="chat",outcome="delivered"} 1`
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(metrics), delivered) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s", delivered)
		}
	}
}
