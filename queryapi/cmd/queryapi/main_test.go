package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/auth"
)

// TestRefusesToServeOpenly: without --auth, queryapi starts only with
// --insecure, and a bad auth file stops it with the file's error.
func TestRefusesToServeOpenly(t *testing.T) {
	env := func(string) string { return "" }
	err := run(context.Background(), []string{"--brokers", "127.0.0.1:1", "--addr", "127.0.0.1:0"}, env, io.Discard, io.Discard)
	if !errors.Is(err, auth.ErrNoAuth) || !strings.Contains(err.Error(), "--insecure") {
		t.Errorf("without --auth: %v, want an error telling to give --auth or --insecure", err)
	}
	missing := filepath.Join(t.TempDir(), "auth.json")
	err = run(context.Background(), []string{"--brokers", "127.0.0.1:1", "--auth", missing}, env, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "reading auth file") {
		t.Errorf("with a missing auth file: %v, want it named", err)
	}
	err = run(context.Background(), []string{"--brokers", "127.0.0.1:1"}, func(k string) string {
		return map[string]string{"PRESENCE_AUTH": missing}[k]
	}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "reading auth file") {
		t.Errorf("with PRESENCE_AUTH naming a missing file: %v, want it read", err)
	}
}

const (
	kafkaPassword = "kafka-Pa55word"
	redisPassword = "redis-Pa55word"
)

// The query API authenticates to a Kafka that requires SCRAM and to a
// Redis that requires a password: it serves lookups and writes a custom
// status to Kafka. Given a wrong password for either, it stops at once
// with an error that says what failed and holds no password.
func TestQueryAPIWithCredentials(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "query", kafkaPassword),
		kfake.SeedTopics(12, schemas.StateTopics...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs := redistest.NewServer(t, redistest.Options{Password: redisPassword})
	args := func(redisURL string) []string {
		return []string{"--brokers", c.ListenAddrs()[0], "--addr", "127.0.0.1:0", "--redis-url", redisURL, "--insecure",
			"--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-username", "query"}
	}
	env := func(password string) func(string) string {
		return func(k string) string { return map[string]string{"PRESENCE_KAFKA_PASSWORD": password}[k] }
	}

	t.Run("right passwords", func(t *testing.T) {
		r, w := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- run(ctx, args(rs.URL()), env(kafkaPassword), io.Discard, w); w.Close() }()
		var logged strings.Builder
		addr := ""
		s := bufio.NewScanner(r)
		for addr == "" && s.Scan() {
			logged.WriteString(s.Text() + "\n")
			var line struct{ Msg, Addr string }
			if json.Unmarshal(s.Bytes(), &line) == nil && line.Msg == "queryapi ready" {
				addr = line.Addr
			}
		}
		if addr == "" {
			t.Fatalf("no ready line; logs:\n%s", logged.String())
		}
		go func() { _, _ = io.Copy(io.Discard, r) }()
		for _, req := range []struct {
			method, path, body string
			status             int
		}{
			{"POST", "/v1/apps/chat/status/query", `{"users":["ann"]}`, http.StatusOK},
			{"PUT", "/v1/apps/chat/users/ann/custom-status", `{"status":1,"text":"here"}`, http.StatusAccepted},
		} {
			hr, _ := http.NewRequest(req.method, "http://"+addr+req.path, strings.NewReader(req.body))
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != req.status {
				t.Errorf("%s %s: %s %s, want %d", req.method, req.path, resp.Status, body, req.status)
			}
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("run did not return")
		}
	})

	for _, tc := range []struct {
		name, redisURL, kafkaPassword, want string
	}{
		{"wrong kafka password", rs.URL(), "not-" + kafkaPassword, `SASL SCRAM-SHA-256 as "query"`},
		{"no redis password", "redis://" + rs.Addr, kafkaPassword, "NOAUTH"},
		{"wrong redis password", "redis://:not-" + redisPassword + "@" + rs.Addr, kafkaPassword, "WRONGPASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stderr strings.Builder
			err := run(ctx, args(tc.redisURL), env(tc.kafkaPassword), io.Discard, &stderr)
			switch {
			case err == nil:
				t.Fatal("the query API ran")
			case ctx.Err() != nil:
				t.Fatalf("the query API took a minute to fail: %v", err)
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if out := err.Error() + stderr.String(); strings.Contains(out, kafkaPassword) || strings.Contains(out, redisPassword) {
				t.Errorf("the error or the logs show a password: %s", out)
			}
		})
	}
}
