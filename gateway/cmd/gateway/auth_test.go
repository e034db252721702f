package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/coder/websocket"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
)

// TestRefusesToServeOpenly: without --auth, the gateway starts only with
// --insecure.
func TestRefusesToServeOpenly(t *testing.T) {
	err := run(context.Background(), []string{"--brokers", "127.0.0.1:1", "--addr", "127.0.0.1:0", "--id", "gw"},
		func(string) string { return "" }, io.Discard, io.Discard)
	if !errors.Is(err, auth.ErrNoAuth) || !strings.Contains(err.Error(), "--insecure") {
		t.Errorf("without --auth: %v, want an error telling to give --auth or --insecure", err)
	}
}

// TestGatewayAuth runs the binary with --auth and --allowed-origins:
// heartbeats need the gateway's key, sockets a user token and an allowed
// origin; SIGHUP re-reads the file, and a key removed from it is refused.
func TestGatewayAuth(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(12, schemas.SessionsTopic, schemas.GatewaysTopic, schemas.NotifyTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := authtest.New(t)
	stderr, lines := logLines(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--brokers", c.ListenAddrs()[0], "--addr", "127.0.0.1:0", "--id", "gw-1",
			"--allowed-origins", "https://app.example.com"},
			func(k string) string { return map[string]string{"PRESENCE_AUTH": f.File}[k] }, io.Discard, stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	addr := waitLog(t, lines, "gateway ready")["addr"].(string)
	waitLog(t, lines, "reading notifications")

	heartbeat := func(cred string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/gateways/gw-1/heartbeat", strings.NewReader(`{"epoch":"e-2"}`))
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for cred, want := range map[string]int{"": 401, authtest.OtherGateway: 403, authtest.Gateway: 202} {
		if got := heartbeat(cred); got != want {
			t.Errorf("heartbeat: %d, want %d", got, want)
		}
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s without credentials: %d", path, resp.StatusCode)
		}
	}

	token := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	dial := func(origin string) (int, error) {
		dctx, dcancel := context.WithTimeout(context.Background(), wait)
		defer dcancel()
		ws, resp, err := websocket.Dial(dctx, "ws://"+addr+"/v1/apps/chat/ws?session=s-"+strings.TrimPrefix(origin, "https://")+"&device=web&token="+token,
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err != nil {
			return resp.StatusCode, err
		}
		ws.Close(websocket.StatusNormalClosure, "")
		return 101, nil
	}
	if code, err := dial("https://evil.example"); code != 403 {
		t.Errorf("socket from a foreign origin: %d %v, want 403", code, err)
	}
	if code, err := dial("https://app.example.com"); err != nil {
		t.Errorf("socket from an allowed origin: %d %v", code, err)
	}

	delete(f.Apps, "chat")
	f.Write()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, lines, "reloaded the auth file")
	if got := heartbeat(authtest.Gateway); got != 401 {
		t.Errorf("heartbeat with a key removed by SIGHUP: %d, want 401", got)
	}
	if got := heartbeat(authtest.GamesGateway); got != 202 {
		t.Errorf("heartbeat with a key kept: %d, want 202", got)
	}
}
