package queryapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// Subscribing writes one record per distinct watched user, in that user's
// partition, and answers the statuses ordered like a status query.
// Unsubscribing writes tombstones on the same keys.
func TestSubscribe(t *testing.T) {
	h := newHarness(t)
	path := "/v1/apps/chat/users/alice/subscriptions"
	code, body := h.do("POST", path, `{"users":["bob","ghost","a/b%c","bob"],"ttl_seconds":90}`)
	if code != http.StatusOK {
		t.Fatalf("POST: %d %s", code, body)
	}
	var got struct {
		Results   []*statusJSON
		ExpiresAt string `json:"expires_at"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	expires := now.Add(90 * time.Second)
	if want := expires.UTC().Format("2006-01-02T15:04:05.000Z07:00"); got.ExpiresAt != want {
		t.Errorf("expires_at %q, want %q", got.ExpiresAt, want)
	}
	var users []string
	for _, r := range got.Results {
		if r == nil {
			users = append(users, "null")
		} else {
			users = append(users, r.User+":"+r.State)
		}
	}
	if want := []string{"bob:offline", "null", "a/b%c:online", "bob:offline"}; !slices.Equal(users, want) {
		t.Errorf("results %q, want %q", users, want)
	}

	code, body = h.do("DELETE", path, `{"users":["bob","ghost","bob"]}`)
	if code != http.StatusAccepted || string(body) != `{"ended":2}`+"\n" {
		t.Fatalf("DELETE: %d %s", code, body)
	}

	recs := h.records(schemas.SubscriptionsTopic)
	if len(recs) != 5 {
		t.Fatalf("%d records, want 3 subscriptions and 2 tombstones", len(recs))
	}
	history := byKey(recs)
	for _, watched := range []string{"bob", "ghost", "a/b%c"} {
		key := schemas.SubscriptionKey("chat", watched, "alice")
		rs := history[key]
		if len(rs) == 0 {
			t.Errorf("no record with key %q", key)
			continue
		}
		var sub pb.Subscription
		if err := proto.Unmarshal(rs[0].Value, &sub); err != nil {
			t.Fatal(err)
		}
		want := &pb.Subscription{App: "chat", User: watched, Subscriber: "alice", ExpiresAtMs: expires.UnixMilli(), TimestampMs: now.UnixMilli()}
		if !proto.Equal(&sub, want) || schemas.ValidateSubscription(&sub) != nil {
			t.Errorf("record %q holds %v, want %v", key, &sub, want)
		}
		wantTombstone := watched != "a/b%c"
		if got := len(rs) == 2 && rs[1].Value == nil; got != wantTombstone || len(rs) > 2 {
			t.Errorf("%d records with key %q, want a tombstone after the subscription: %v", len(rs), key, wantTombstone)
		}
	}
}

func TestSubscribeInvalid(t *testing.T) {
	h := newHarness(t)
	many := make([]string, queryapi.MaxBatch+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprintf("u%d", i))
	}
	for _, c := range []struct{ name, method, body, code string }{
		{"no users", "POST", `{"ttl_seconds":60}`, "invalid"},
		{"empty users", "POST", `{"users":[],"ttl_seconds":60}`, "invalid"},
		{"501 users", "POST", `{"users":[` + strings.Join(many, ",") + `],"ttl_seconds":60}`, "too_many_users"},
		{"empty id", "POST", `{"users":["bob",""],"ttl_seconds":60}`, "invalid"},
		{"129-byte id", "POST", `{"users":["` + strings.Repeat("x", 129) + `"],"ttl_seconds":60}`, "invalid"},
		{"control character", "POST", `{"users":["a\u0007b"],"ttl_seconds":60}`, "invalid"},
		{"watching oneself", "POST", `{"users":["bob","alice"],"ttl_seconds":60}`, "invalid"},
		{"no ttl", "POST", `{"users":["bob"]}`, "invalid"},
		{"zero ttl", "POST", `{"users":["bob"],"ttl_seconds":0}`, "invalid"},
		{"negative ttl", "POST", `{"users":["bob"],"ttl_seconds":-5}`, "invalid"},
		{"ttl over 7 days", "POST", `{"users":["bob"],"ttl_seconds":604801}`, "invalid"},
		{"fractional ttl", "POST", `{"users":["bob"],"ttl_seconds":1.5}`, "invalid"},
		{"unknown field", "POST", `{"users":["bob"],"ttl_seconds":60,"x":1}`, "invalid"},
		{"unsubscribe, no users", "DELETE", `{}`, "invalid"},
		{"unsubscribe, empty users", "DELETE", `{"users":[]}`, "invalid"},
		{"unsubscribe, 501 users", "DELETE", `{"users":[` + strings.Join(many, ",") + `]}`, "too_many_users"},
		{"unsubscribe, bad id", "DELETE", `{"users":[""]}`, "invalid"},
		{"unsubscribe, oneself", "DELETE", `{"users":["alice"]}`, "invalid"},
		{"unsubscribe, no body", "DELETE", ``, "invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := h.do(c.method, "/v1/apps/chat/users/alice/subscriptions", c.body)
			wantError(t, code, body, http.StatusBadRequest, c.code)
		})
	}
	h.empty()

	code, body := h.do("POST", "/v1/apps/chat/users/alice/subscriptions", `{"users":["bob"],"ttl_seconds":604800}`)
	if code != http.StatusOK {
		t.Fatalf("7 days: %d %s", code, body)
	}
}

// A subscriber at the cap is refused new subscriptions, with nothing
// written, but may renew the ones it has; expired ones do not count.
func TestSubscriptionCap(t *testing.T) {
	h := newHarness(t, func(c *queryapi.Config) { c.MaxSubscriptions = 3 })
	live := float64(now.Add(time.Hour).UnixMilli())
	err := h.rdb.ZAdd(context.Background(), h.userKey("alice")+":s",
		redis.Z{Score: live, Member: "u1"},
		redis.Z{Score: live, Member: "u2"},
		redis.Z{Score: live, Member: "u3"},
		redis.Z{Score: float64(now.UnixMilli()), Member: "expired"},
	).Err()
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1/apps/chat/users/alice/subscriptions"

	code, body := h.do("POST", path, `{"users":["u1","u4"],"ttl_seconds":60}`)
	msg := wantError(t, code, body, http.StatusBadRequest, "too_many_subscriptions")
	if !strings.Contains(msg, "3 live") || !strings.Contains(msg, "cap of 3") {
		t.Errorf("message %q does not say how many are live and the cap", msg)
	}
	h.empty()

	code, body = h.do("POST", path, `{"users":["u3","u1","u3","expired"],"ttl_seconds":60}`)
	msg = wantError(t, code, body, http.StatusBadRequest, "too_many_subscriptions")
	if !strings.Contains(msg, "adds 1") {
		t.Errorf("an expired subscription counts as new: %q", msg)
	}
	h.empty()

	if code, body := h.do("POST", path, `{"users":["u3","u1","u3","u2"],"ttl_seconds":60}`); code != http.StatusOK {
		t.Fatalf("renewing at the cap: %d %s", code, body)
	}
	recs := h.records(schemas.SubscriptionsTopic)
	var keys []string
	for _, r := range recs {
		keys = append(keys, string(r.Key))
	}
	slices.Sort(keys)
	if want := []string{"chat/u1/alice", "chat/u2/alice", "chat/u3/alice"}; !slices.Equal(keys, want) {
		t.Errorf("renewal wrote %q, want %q", keys, want)
	}
}
