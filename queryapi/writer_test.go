package queryapi_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/presence-im/presence/queryapi"
)

// With Kafka gone, or dropping every produce request, every write answers
// 503 unavailable and says the request is safe to retry; lookups still
// answer from Redis.
func TestKafkaDown(t *testing.T) {
	for _, c := range []struct {
		name string
		down func(*kfake.Cluster)
	}{
		{"cluster gone", (*kfake.Cluster).Close},
		{"produce requests dropped", func(c *kfake.Cluster) {
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				return nil, errors.New("broker down"), true // closes the connection
			})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, func(c *queryapi.Config) { c.WriteTimeout = 300 * time.Millisecond })
			c.down(h.kafka)
			for _, w := range []struct{ method, path, body string }{
				{"PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":1,"text":"x"}`},
				{"DELETE", "/v1/apps/chat/users/alice/custom-status", ""},
				{"PUT", "/v1/apps/chat/users/alice/friends/bob", ""},
				{"DELETE", "/v1/apps/chat/users/alice/friends/bob", ""},
				{"POST", "/v1/apps/chat/users/alice/subscriptions", `{"users":["bob"],"ttl_seconds":60}`},
				{"DELETE", "/v1/apps/chat/users/alice/subscriptions", `{"users":["bob"]}`},
			} {
				code, body := h.do(w.method, w.path, w.body)
				msg := wantError(t, code, body, http.StatusServiceUnavailable, "unavailable")
				if !strings.Contains(msg, "safe to retry") {
					t.Errorf("%s %s: message %q does not say the request is safe to retry", w.method, w.path, msg)
				}
			}
			if code, body := h.do("GET", "/v1/apps/chat/users/alice/status", ""); code != http.StatusOK {
				t.Errorf("lookup with Kafka down: %d %s", code, body)
			}
			_, body := h.do("GET", "/metrics", "")
			if want := `presence_queryapi_writes_total{kind="friend",result="failed"} 4`; !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		})
	}
}

// Writes are counted by kind and result.
func TestWriteMetrics(t *testing.T) {
	h := newHarness(t)
	h.do("PUT", "/v1/apps/chat/users/alice/friends/bob", "")
	h.do("PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":1}`)
	h.do("POST", "/v1/apps/chat/users/alice/subscriptions", `{"users":["bob","carol","bob"],"ttl_seconds":60}`)
	_, body := h.do("GET", "/metrics", "")
	for _, want := range []string{
		`presence_queryapi_writes_total{kind="friend",result="ok"} 2`,
		`presence_queryapi_writes_total{kind="custom_status",result="ok"} 1`,
		`presence_queryapi_writes_total{kind="subscription",result="ok"} 2`,
		`presence_queryapi_requests_total{code="202",route="friend_add"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestNewRequiresBrokers(t *testing.T) {
	h := newHarness(t)
	if _, err := queryapi.New(queryapi.Config{Store: h.store}); err == nil || !strings.Contains(err.Error(), "brokers") {
		t.Fatalf("New without brokers: %v, want an error naming the brokers", err)
	}
}
