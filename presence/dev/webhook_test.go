package dev_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presence-im/presence/presence/dev"
	"github.com/presence-im/presence/service/auth/authtest"
)

// TestDevWebhook runs the pipeline with an auth file, adds a webhook to
// it and sends SIGHUP: alice's connect and disconnect, sent to the
// gateway, reach the endpoint as signed presence messages, online then
// offline, though it fails its first request.
func TestDevWebhook(t *testing.T) {
	const secret = "dev-webhook-secret-0001"
	type message struct {
		Type, User, State string
		Sessions          []struct{ Session string }
		Version           int64
	}
	got := make(chan message, 16)
	var mu sync.Mutex
	requests := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if r.Header.Get("Presence-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("a body whose signature does not verify: %s", body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		requests++
		first := requests == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var m message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("%s: %v", body, err)
		}
		got <- m
	}))
	defer hook.Close()
	f := authtest.New(t)
	p := startDevWith(t, dev.Config{DataDir: t.TempDir(), AuthFile: f.File, OfflineGrace: 100 * time.Millisecond})
	// The webhook comes with a SIGHUP, as an operator adds one.
	f.Apps["chat"].(map[string]any)["webhooks"] = []any{map[string]any{"url": hook.URL, "secret": secret}}
	f.Write()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the webhook started", func() bool {
		resp, err := http.Get("http://" + p.Query + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		metrics, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(metrics), "presence_webhook_endpoints 1")
	})

	send := func(body string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+p.Gateway+"/v1/apps/chat/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+authtest.Gateway)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("events: %d", resp.StatusCode)
		}
	}
	next := func() message {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-time.After(30 * time.Second): // a guard, not a timing
			t.Fatal("no webhook after 30s")
			return message{}
		}
	}
	send(events(connect("alice", "phone")))
	on := next()
	if on.Type != "presence" || on.User != "alice" || on.State != "online" || len(on.Sessions) != 1 || on.Sessions[0].Session != "phone" {
		t.Fatalf("first webhook %+v, want alice online on her phone", on)
	}
	send(events(disconnect("alice", "phone")))
	off := next()
	if off.User != "alice" || off.State != "offline" || off.Version <= on.Version {
		t.Fatalf("second webhook %+v, want alice offline, after version %d", off, on.Version)
	}
}
