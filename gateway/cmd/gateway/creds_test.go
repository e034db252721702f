package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/schemas"
)

const kafkaPassword = "kafka-Pa55word"

// The gateway authenticates to a Kafka that requires SASL PLAIN: it reads
// notifications and writes the events posted to it, and says that PLAIN
// without TLS shows the password to the network. With a wrong password it
// stops at once, with an error that holds no password.
func TestGatewayWithCredentials(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("PLAIN", "gw", kafkaPassword),
		kfake.SeedTopics(12, schemas.SessionsTopic, schemas.GatewaysTopic, schemas.NotifyTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	args := []string{"--brokers", c.ListenAddrs()[0], "--addr", "127.0.0.1:0", "--id", "gw-creds", "--epoch", "e-1",
		"--kafka-sasl-mechanism", "PLAIN", "--kafka-username", "gw", "--insecure"}

	t.Run("right password", func(t *testing.T) {
		stderr, lines := logLines(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, args, func(k string) string {
				return map[string]string{"PRESENCE_KAFKA_PASSWORD": kafkaPassword}[k]
			}, io.Discard, stderr)
		}()
		waitLog(t, lines, "kafka SASL PLAIN without TLS: the password crosses the network in clear; add --kafka-tls or use SCRAM")
		addr := waitLog(t, lines, "gateway ready")["addr"].(string)
		waitLog(t, lines, "reading notifications")
		resp, err := http.Post("http://"+addr+"/v1/apps/chat/events", "application/json", strings.NewReader(
			`{"gateway":"ext-1","epoch":"e-1","events":[{"type":"connect","user":"ann","session":"s1","device":"web"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("posting an event: %s %s, want 202 once it is in Kafka", resp.Status, body)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("run did not return")
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var stderr strings.Builder
		err := run(ctx, append(args, "--kafka-password", "not-"+kafkaPassword), func(string) string { return "" }, io.Discard, &stderr)
		switch {
		case err == nil:
			t.Fatal("the gateway ran with a wrong password")
		case ctx.Err() != nil:
			t.Fatalf("the gateway took a minute to fail: %v", err)
		case !strings.Contains(err.Error(), `SASL PLAIN as "gw"`):
			t.Errorf("error %q does not say how the gateway authenticated", err)
		case strings.Contains(err.Error()+stderr.String(), kafkaPassword):
			t.Errorf("the error or the logs show the password: %v\n%s", err, stderr.String())
		}
	})
}
