package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/service/testcert"
)

const (
	kafkaPassword = "kafka-Pa55word"
	redisPassword = "redis-Pa55word"
)

// securedBackends starts a Kafka that takes only TLS connections
// authenticated with SCRAM-SHA-256, and a Redis that requires a password.
// It returns the brokers, the CA file of the Kafka's certificate and the
// Redis.
func securedBackends(t *testing.T) (brokers, caFile string, redis *redistest.Server) {
	t.Helper()
	ca := testcert.NewCA(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "presence", kafkaPassword),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").Pair}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	redis = redistest.NewServer(t, redistest.Options{Password: redisPassword})
	return strings.Join(c.ListenAddrs(), ","), testcert.WriteFile(t, "ca.pem", ca.PEM), redis
}

// devArgs are the arguments of a `presence dev` of those backends, with
// the Kafka password from the environment.
func devArgs(t *testing.T, brokers, caFile, redisURL string) []string {
	return []string{"dev", "--data-dir", t.TempDir(), "--query-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0",
		"--brokers", brokers, "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-username", "presence",
		"--kafka-tls", "--kafka-tls-ca", caFile, "--redis-url", redisURL}
}

var readyLine = regexp.MustCompile(`query API (http://\S+), gateway (http://\S+),`)

// `presence dev` on a Kafka that requires TLS and SCRAM and a Redis that
// requires a password runs the whole pipeline: a connect posted to the
// gateway and a custom status put to the query API go through Kafka and
// the processor into Redis, and come back in a lookup. Neither password
// shows in its output.
func TestDevWithCredentials(t *testing.T) {
	brokers, caFile, redis := securedBackends(t)
	env := map[string]string{"PRESENCE_KAFKA_PASSWORD": kafkaPassword}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, devArgs(t, brokers, caFile, redis.URL()), func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	var m []string
	deadline := time.Now().Add(60 * time.Second)
	for m = readyLine.FindStringSubmatch(stdout.String()); m == nil; m = readyLine.FindStringSubmatch(stdout.String()) {
		select {
		case err := <-done:
			t.Fatalf("presence dev stopped before ready: %v; stderr:\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready line after 60s; stderr:\n%s", stderr.String())
		}
	}
	query, gw := m[1], m[2]

	call(t, "POST", gw+"/v1/apps/chat/events", `{"gateway":"gw-1","epoch":"e-1","events":[{"type":"connect","user":"ann","session":"s1","device":"web"}]}`, http.StatusAccepted)
	call(t, "PUT", query+"/v1/apps/chat/users/ann/custom-status", `{"status":2,"text":"at work"}`, http.StatusAccepted)
	var st struct {
		State  string `json:"state"`
		Custom *struct {
			Text string `json:"text"`
		} `json:"custom"`
	}
	waitFor(t, "ann online with her custom status", func() bool {
		resp, err := http.Get(query + "/v1/apps/chat/users/ann/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		st.State, st.Custom = "", nil
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil &&
			st.State == "online" && st.Custom != nil && st.Custom.Text == "at work"
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("presence dev: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("presence dev did not stop within 30s")
	}
	if !strings.Contains(stdout.String(), "redis redis://:xxxxx@"+redis.Addr) {
		t.Errorf("the ready line does not show the redis URL redacted: %s", stdout.String())
	}
	for _, secret := range []string{kafkaPassword, redisPassword} {
		if strings.Contains(stdout.String()+stderr.String(), secret) {
			t.Errorf("the output shows a password:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
}

// `presence dev` given a wrong credential stops at once with an error that
// names what failed and holds no password.
func TestDevWrongCredentials(t *testing.T) {
	brokers, caFile, redis := securedBackends(t)
	noPassword := "redis://" + redis.Addr
	wrongPassword := "redis://:not-" + redisPassword + "@" + redis.Addr
	for _, tc := range []struct {
		name  string
		args  []string
		env   string // PRESENCE_KAFKA_PASSWORD
		wants []string
	}{
		{"wrong kafka password", devArgs(t, brokers, caFile, redis.URL()), "not-" + kafkaPassword,
			[]string{"connecting to kafka", `SASL SCRAM-SHA-256 as "presence"`}},
		{"kafka without tls", []string{"dev", "--brokers", brokers, "--redis-url", redis.URL()}, "",
			[]string{"connecting to kafka", "plaintext, no SASL"}},
		{"kafka with an unknown ca", devArgs(t, brokers, testcert.WriteFile(t, "other.pem", testcert.NewCA(t).PEM), redis.URL()), kafkaPassword,
			[]string{"connecting to kafka", "certificate signed by unknown authority"}},
		{"kafka flags without brokers", []string{"dev", "--kafka-tls"}, "", []string{"give its --brokers"}},
		{"redis without password", devArgs(t, brokers, caFile, noPassword), kafkaPassword, []string{noPassword, "NOAUTH"}},
		{"redis with a wrong password", devArgs(t, brokers, caFile, wrongPassword), kafkaPassword,
			[]string{"redis://:xxxxx@" + redis.Addr, "WRONGPASS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := run(ctx, tc.args, func(k string) string {
				return map[string]string{"PRESENCE_KAFKA_PASSWORD": tc.env}[k]
			}, &stdout, &stderr)
			if err == nil {
				t.Fatal("presence dev ran")
			}
			if ctx.Err() != nil {
				t.Fatalf("presence dev took 60s to fail: %v", err)
			}
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			out := err.Error() + stdout.String() + stderr.String()
			for _, secret := range []string{kafkaPassword, redisPassword} {
				if strings.Contains(out, secret) {
					t.Errorf("the error or output shows a password: %s", out)
				}
			}
		})
	}
}

// call sends body to url with method and fails the test unless it is
// answered with status.
func call(t *testing.T, method, url, body string, status int) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %s %s, want %d", method, url, resp.Status, b, status)
	}
}

// waitFor polls cond until it holds, failing the test after 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
