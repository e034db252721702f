package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"serve"}, `unknown command "serve"`},
		{"unknown flag", []string{"dev", "--nope"}, "flag provided but not defined"},
		{"stray argument", []string{"dev", "extra"}, "takes no arguments"},
		{"bad duration", []string{"dev", "--offline-ttl", "soon"}, "invalid value"},
		{"zero ttl", []string{"dev", "--offline-ttl", "0s"}, "must be positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), c.args, func(string) string { return "" }, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDevHelpListsContractFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"dev", "--help"}, func(string) string { return "" }, &stdout, &stderr)
	for _, f := range []string{"data-dir", "kafka-addr", "brokers", "redis-url", "query-addr", "gateway-addr", "offline-ttl", "offline-grace", "gateway-lease",
		"max-record-bytes", "max-clock-skew", "max-gateway-lease", "stall-timeout"} {
		if !strings.Contains(stderr.String(), "--"+f+" (PRESENCE_") {
			t.Errorf("presence dev --help does not list --%s:\n%s", f, stderr.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `presence dev` configured through the environment prints its ready line,
// with no warning on a first start but the one about serving without
// authentication, and stops cleanly when its context ends (as on SIGINT),
// saying so.
func TestDevReadyAndStop(t *testing.T) {
	env := map[string]string{
		"PRESENCE_DATA_DIR":     t.TempDir(),
		"PRESENCE_KAFKA_ADDR":   "127.0.0.1:0",
		"PRESENCE_QUERY_ADDR":   "127.0.0.1:0",
		"PRESENCE_GATEWAY_ADDR": "127.0.0.1:0",
		"PRESENCE_REDIS_URL":    redistest.URL(t) + "/5",
	}
	redistest.Flush(t, env["PRESENCE_REDIS_URL"])
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"dev"}, func(k string) string { return env[k] }, &stdout, &stderr) }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stdout.String(), "ready") {
		select {
		case err := <-done:
			t.Fatalf("presence dev stopped before ready: %v; stderr:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no ready line after 60s; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "level=WARN msg=\"serving without authentication") {
		t.Errorf("presence dev without --auth does not warn that it serves everyone; stderr:\n%s", stderr.String())
	}
	// A clean first start (no topic yet) warns of nothing else.
	for line := range strings.Lines(stderr.String()) {
		if (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) &&
			!strings.Contains(line, "serving without authentication") {
			t.Errorf("a first start logs before ready: %s", line)
		}
	}
	if !strings.Contains(stdout.String(), env["PRESENCE_REDIS_URL"]) {
		t.Errorf("ready line does not name the redis from the environment: %s", stdout.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("presence dev: %v", err)
		}
		if !strings.HasSuffix(stdout.String(), "presence stopped\n") {
			t.Errorf("a clean stop does not end with a stopped line; stdout:\n%s", stdout.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("presence dev did not stop within 30s")
	}
}
