package queryapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/schemas"
)

// TestParallelSubscriptionsKeepTheCap sends, for several subscribers, 5
// requests of 400 new users each at once, spread over two query APIs
// sharing one Redis, against a cap of 1,000: at most 2 of each 5 are
// admitted, the others are refused 400 too_many_subscriptions, and no
// subscriber has more than 1,000 subscriptions written to Kafka.
func TestParallelSubscriptionsKeepTheCap(t *testing.T) {
	const maxSubs, parallel, batch = 1000, 5, 400
	a := newHarness(t, func(c *queryapi.Config) { c.MaxSubscriptions = maxSubs })
	b := newHarnessOn(t, a.rdb, func(c *queryapi.Config) { c.MaxSubscriptions = maxSubs; c.Store = a.store })
	servers := []*harness{a, b}
	subscribers := []string{"s1", "s2", "s3", "s4"}

	type answer struct {
		code  int
		error string
	}
	admitted := map[string]int{}
	for _, sub := range subscribers {
		answers := make([]answer, parallel)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range parallel {
			users := make([]string, batch)
			for j := range users {
				users[j] = fmt.Sprintf("w%d-%d", i, j)
			}
			body, _ := json.Marshal(map[string]any{"users": users, "ttl_seconds": 600})
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				resp, err := http.Post(servers[i%2].srv.URL+"/v1/apps/chat/users/"+sub+"/subscriptions", "application/json", bytes.NewReader(body))
				if err != nil {
					answers[i].error = err.Error()
					return
				}
				defer resp.Body.Close()
				answers[i].code = resp.StatusCode
				var e errorJSON
				if json.NewDecoder(resp.Body).Decode(&e) == nil {
					answers[i].error = e.Error.Code
				}
			}()
		}
		start.Done()
		done.Wait()
		for i, ans := range answers {
			switch {
			case ans.code == http.StatusOK:
				admitted[sub]++
			case ans.code != http.StatusBadRequest || ans.error != "too_many_subscriptions":
				t.Errorf("%s, request %d: %d %q, want 200 or 400 too_many_subscriptions", sub, i, ans.code, ans.error)
			}
		}
		if n := admitted[sub]; n != maxSubs/batch {
			t.Errorf("%s: %d of %d requests of %d admitted, want %d (the cap is %d)", sub, n, parallel, batch, maxSubs/batch, maxSubs)
		}
	}

	// What reached Kafka: the two servers' topics together.
	written := map[string]map[string]bool{}
	for _, h := range servers {
		for _, r := range h.records(schemas.SubscriptionsTopic) {
			parts := schemas.SplitKey(r.Key)
			if len(parts) != 3 || parts[0] != "chat" {
				t.Fatalf("record key %q", r.Key)
			}
			user, sub := parts[1], parts[2]
			if written[sub] == nil {
				written[sub] = map[string]bool{}
			}
			written[sub][user] = true
		}
	}
	for _, sub := range subscribers {
		if n := len(written[sub]); n > maxSubs || n != admitted[sub]*batch {
			t.Errorf("%s: %d subscriptions in Kafka, want %d admitted and at most %d", sub, n, admitted[sub]*batch, maxSubs)
		}
		if n, err := a.rdb.ZCard(context.Background(), a.userKey(sub)+":r").Result(); err != nil || n > maxSubs {
			t.Errorf("%s: %d reserved (%v), over the cap of %d", sub, n, err, maxSubs)
		}
	}
}
