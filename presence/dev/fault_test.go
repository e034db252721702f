package dev_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/presence/dev"
)

// A gateway killed without sending disconnects: once its lease lapses the
// processor ends its sessions, and after the grace period the friends of
// its users, on another gateway, are told they went offline. The users of
// the other gateway, which keeps its lease, are untouched.
// It holds on the embedded Redis and on a real 3-master Redis Cluster.
func TestGatewayKilled(t *testing.T) {
	t.Run("embedded redis", func(t *testing.T) { gatewayKilled(t, "") })
	t.Run("redis cluster", func(t *testing.T) { gatewayKilled(t, flushCluster(t)) })
}

func gatewayKilled(t *testing.T, redisURL string) {
	const lease, grace = time.Second, 500 * time.Millisecond
	p := startDevWith(t, dev.Config{DataDir: t.TempDir(), RedisURL: redisURL, GatewayLease: lease, OfflineGrace: grace})
	doomed := startGateway(t, p.Brokers, "gw-doomed", lease)
	p.do(t, "PUT", "/v1/apps/chat/users/ann/friends/bob", "")
	p.do(t, "PUT", "/v1/apps/chat/users/ann/friends/cid", "")

	bob := p.dial(t, "bob", "b1", "ios")
	cid := p.dial(t, "cid", "c1", "web")
	// Friends and sessions are separate topics: ann's connect is announced
	// to the friends the processor has applied by then.
	eventually(t, "bob and cid are ann's friends and online", func() bool {
		_, body := p.do(t, "GET", "/v1/apps/chat/users/ann/friends/status", "")
		return strings.Contains(body, `"user":"bob","state":"online"`) && strings.Contains(body, `"user":"cid","state":"online"`)
	})
	dial(t, doomed.addr, "ann", "a1", "android")
	bob.expect(t, "presence ann online - 1 sessions")
	cid.expect(t, "presence ann online - 1 sessions")

	if err := doomed.cmd.Process.Kill(); err != nil { // SIGKILL: no disconnect, no heartbeat
		t.Fatal(err)
	}
	killed := time.Now()
	bob.expect(t, "presence ann offline - 0 sessions")
	t.Logf("ann's ghost session lasted %s after the gateway died (lease %s, grace %s)", time.Since(killed).Round(time.Millisecond), lease, grace)
	cid.expect(t, "presence ann offline - 0 sessions")

	got := p.query(t, "ann", "bob", "cid")
	if got[0] == nil || got[0].State != "offline" || got[1] == nil || got[1].State != "online" || got[2] == nil || got[2].State != "online" {
		t.Fatalf("after gw-doomed was lost: ann %+v, bob %+v, cid %+v; want ann offline, bob and cid online", got[0], got[1], got[2])
	}
}

// gatewayProcess is a gateway binary running for a test.
type gatewayProcess struct {
	cmd  *exec.Cmd
	addr string
}

// startGateway builds and starts the gateway binary, and waits until it
// is ready.
func startGateway(t *testing.T, brokers []string, id string, lease time.Duration) *gatewayProcess {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/presence-im/presence/gateway/cmd/gateway").CombinedOutput(); err != nil {
		t.Fatalf("building the gateway: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--brokers", strings.Join(brokers, ","), "--addr", addr, "--id", id, "--gateway-lease", lease.String(), "--insecure")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gateway %s logs:\n%s", id, logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if resp, err := http.Get(fmt.Sprintf("http://%s/readyz", addr)); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &gatewayProcess{cmd: cmd, addr: addr}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gateway %s not ready after 30s:\n%s", id, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
