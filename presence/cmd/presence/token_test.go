package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
)

// TestToken mints a token with `presence token` and checks the auth file
// verifies it as the user asked for.
func TestToken(t *testing.T) {
	f := authtest.New(t)
	env := func(string) string { return "" }
	var stdout strings.Builder
	if err := run(context.Background(), []string{"token", "--auth", f.File, "--app", "chat", "--user", "alice", "--ttl", "1h"}, env, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Verify(strings.TrimSpace(stdout.String()))
	if err != nil || id.App != "chat" || id.User != "alice" {
		t.Fatalf("the printed token verifies as %+v, %v", id, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "--app", "chat", "--user", "alice"}, "--auth is required"},
		{[]string{"token", "--auth", f.File, "--app", "chat"}, "--user is required"},
		{[]string{"token", "--auth", f.File, "--app", "nope", "--user", "alice"}, `app "nope" is not in the auth file`},
		{[]string{"token", "--auth", f.File, "--user", "alice", "--ttl", "-1h"}, "want a positive duration"},
	} {
		err := run(context.Background(), tc.args, env, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestConnectWithToken runs `presence dev --auth` and `presence connect`:
// without a token the socket is refused with 401, with one it opens as
// the token's user.
func TestConnectWithToken(t *testing.T) {
	f := authtest.New(t)
	env := map[string]string{
		"PRESENCE_DATA_DIR":     t.TempDir(),
		"PRESENCE_KAFKA_ADDR":   "127.0.0.1:0",
		"PRESENCE_QUERY_ADDR":   "127.0.0.1:0",
		"PRESENCE_GATEWAY_ADDR": "127.0.0.1:0",
		"PRESENCE_REDIS_URL":    redistest.URL(t) + "/6",
		"PRESENCE_AUTH":         f.File,
	}
	redistest.Flush(t, env["PRESENCE_REDIS_URL"])
	getenv := func(k string) string { return env[k] }
	var devOut, devErr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"dev"}, getenv, &devOut, &devErr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("presence dev: %v", err)
		}
	}()
	gatewayRE := regexp.MustCompile(`gateway http://(\S+),`)
	deadline := time.Now().Add(60 * time.Second)
	for !gatewayRE.MatchString(devOut.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line after 60s; stderr:\n%s", devErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(devErr.String(), "without authentication") {
		t.Errorf("presence dev --auth warns that it serves everyone")
	}
	addr := gatewayRE.FindStringSubmatch(devOut.String())[1]

	err := run(context.Background(), []string{"connect", "--gateway-addr", addr, "--user", "alice"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("connect without a token: %v, want 401", err)
	}

	token := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	var connErr syncBuffer
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan error, 1)
	go func() {
		cdone <- run(cctx, []string{"connect", "--gateway-addr", addr, "--token", token}, func(string) string { return "" }, io.Discard, &connErr)
	}()
	timeout := time.After(30 * time.Second)
	for !strings.Contains(connErr.String(), "connected as") {
		select {
		case err := <-cdone:
			ccancel()
			t.Fatalf("connect with a token: %v", err)
		case <-timeout:
			ccancel()
			t.Fatal("connect with a token: not connected after 30s")
		case <-time.After(20 * time.Millisecond):
		}
	}
	ccancel()
	if err := <-cdone; err != nil {
		t.Errorf("connect: %v", err)
	}
}
