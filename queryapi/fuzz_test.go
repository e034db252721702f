package queryapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/ratelimit"
)

// fuzzRoutes are the routes of the API, with {app}, {user} and {friend}
// to fill in.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/apps/{app}/status/query"},
	{"GET", "/v1/apps/{app}/users/{user}/status"},
	{"PUT", "/v1/apps/{app}/users/{user}/custom-status"},
	{"DELETE", "/v1/apps/{app}/users/{user}/custom-status"},
	{"GET", "/v1/apps/{app}/users/{user}/friends/status"},
	{"PUT", "/v1/apps/{app}/users/{user}/friends/{friend}"},
	{"DELETE", "/v1/apps/{app}/users/{user}/friends/{friend}"},
	{"POST", "/v1/apps/{app}/users/{user}/subscriptions"},
	{"DELETE", "/v1/apps/{app}/users/{user}/subscriptions"},
}

// fuzzServer is the query API over the test Redis (a prefix of its own,
// alice online) and an in-process Kafka.
func fuzzServer(f *testing.F) http.Handler {
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, schemas.SessionsTopic, schemas.FriendsTopic, schemas.SubscriptionsTopic, schemas.ChangesTopic))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(c.Close)
	store := redisstore.New(redistest.Client(f), redisstore.Options{Prefix: redistest.Prefix(f)})
	at := time.Now().Add(-time.Minute)
	if _, err := store.Apply(context.Background(), []redisstore.Change{
		{Op: redisstore.Connect, App: "chat", User: "alice", Session: "s1", Device: "ios", Gateway: "gw", At: at, Version: 1},
	}, false); err != nil {
		f.Fatal(err)
	}
	// No rate limits: the fuzzer's requests are to reach the routes.
	s, err := queryapi.New(queryapi.Config{Store: store, Brokers: c.ListenAddrs(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateLimits: []ratelimit.Scope{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	return s.Handler()
}

// Any request to any route, with any ids in its path (escaped as sent, or
// not) and any body, is answered: never a 5xx (Redis and Kafka are up),
// every 4xx in the error envelope, every 2xx JSON about valid ids.
// `go test` runs the seeds; `make fuzz` explores.
func FuzzRequests(f *testing.F) {
	for _, s := range []struct {
		route             uint8
		app, user, friend string
		body              string
	}{
		{0, "chat", "", "", `{"users":["alice","bob","a/b%c"]}`},
		{0, "chat", "", "", `{"users":["\ud800"]}`},
		{0, "chat", "", "", `{"users":[` + strings.Repeat(`"u",`, 600) + `"u"]}`},
		{0, "chat", "", "", `{"users":["alice"]}}`},
		{1, "chat", "alice", "", ""},
		{1, "chat", "a%2Fb%25c", "", ""},
		{1, "chat", "p%q", "", ""},
		{1, "chat", "%ff", "", ""},
		{1, "bad%20app", "alice", "", ""},
		{2, "chat", "alice", "", `{"status":2,"text":"at the doctor"}`},
		{2, "chat", "alice", "", `{"status":4294967296,"text":""}`},
		{2, "chat", "alice", "", "{\"status\":1,\"text\":\"\xff\"}"},
		{2, "chat", "alice", "", `{"status":1,"text":"` + strings.Repeat("x", 1<<20) + `"}`}, // a 1 MB value
		{3, "chat", "alice", "", ""},
		{4, "chat", "alice", "", ""},
		{5, "chat", "alice", "bob", ""},
		{5, "chat", "alice", "alice", ""},
		{6, "chat", "p%25q", "r", ""},
		{7, "chat", "alice", "", `{"users":["bob"],"ttl_seconds":60}`},
		{7, "chat", "alice", "", `{"users":["bob"],"ttl_seconds":9223372036854775807}`},
		{7, "chat", "alice", "", `{"users":["alice"],"ttl_seconds":60}`},
		{8, "chat", "alice", "", `{"users":["bob"]}`},
		{8, "chat", "alice", "", `{"users":[]}`},
	} {
		f.Add(s.route, s.app, s.user, s.friend, []byte(s.body))
	}
	h := fuzzServer(f)
	f.Fuzz(func(t *testing.T, route uint8, app, user, friend string, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.NewReplacer("{app}", app, "{user}", user, "{friend}", friend).Replace(rt.path)
		u, err := url.ParseRequestURI(path)
		if err != nil || u.RawQuery != "" || u.Fragment != "" {
			// Not a path net/http would pass on, as it is: send it escaped.
			path = strings.NewReplacer("{app}", url.PathEscape(app), "{user}", url.PathEscape(user),
				"{friend}", url.PathEscape(friend)).Replace(rt.path)
		}
		r, err := http.NewRequest(rt.method, path, bytes.NewReader(body))
		if err != nil {
			t.Fatalf("a request to %q: %v", path, err)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case w.Code >= 500:
			t.Fatalf("%s %s %q answered %d: %s", rt.method, path, body, w.Code, w.Body)
		case w.Code >= 400:
			var env struct {
				Error *httpapi.Error `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error == nil || env.Error.Code == "" || env.Error.Message == "" {
				t.Fatalf("%s %s %q answered %d outside the envelope: %s", rt.method, path, body, w.Code, w.Body)
			}
		case w.Code >= 200 && w.Code < 300:
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %s answered %d with invalid JSON: %s", rt.method, path, w.Code, w.Body)
			}
			// The ids the route read, as chi and the server unescape them.
			parts := strings.Split(r.URL.EscapedPath(), "/")
			gotApp, err := url.PathUnescape(parts[3])
			if err != nil || schemas.ValidateApp(gotApp) != nil {
				t.Fatalf("%s %s answered %d for app %q", rt.method, path, w.Code, parts[3])
			}
		}
	})
}
