package dev_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presence-im/presence/presence/dev"
	"github.com/presence-im/presence/service/auth/authtest"
)

// TestDevAuth runs the pipeline with an auth file: a gateway key's
// events, a read key's lookup and a user token's socket go through the
// whole pipeline; without credentials both servers answer 401, but for
// their OpenAPI documents.
func TestDevAuth(t *testing.T) {
	f := authtest.New(t)
	p := startDevWith(t, dev.Config{DataDir: t.TempDir(), AuthFile: f.File})
	send := func(host, cred, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+host+path, strings.NewReader(body))
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := send(p.Gateway, "", "/v1/apps/chat/events", events(connect("alice", "phone"))); code != 401 {
		t.Fatalf("events without credentials: %d %s", code, body)
	}
	if code, body := send(p.Query, "", "/v1/apps/chat/status/query", `{"users":["alice"]}`); code != 401 {
		t.Fatalf("query without credentials: %d %s", code, body)
	}
	wantOpenAPI(t, p)
	if code, body := send(p.Gateway, authtest.Gateway, "/v1/apps/chat/events", events(connect("alice", "phone"))); code != 202 {
		t.Fatalf("events with gw-1's key: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+p.Gateway+"/v1/apps/chat/ws?session=web&device=web&token="+
		authtest.HS256(t, authtest.UserSecret, "chat", "bob"), nil)
	if err != nil {
		t.Fatalf("bob's socket: %v", err)
	}
	defer ws.CloseNow()
	eventually(t, "alice and bob online", func() bool {
		code, body := send(p.Query, authtest.Read, "/v1/apps/chat/status/query", `{"users":["alice","bob"]}`)
		return code == 200 && strings.Count(body, `"state":"online"`) == 2
	})
}
