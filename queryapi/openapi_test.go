package queryapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/service/auth/authtest"
	"github.com/presence-im/presence/service/openapi"
	"github.com/presence-im/presence/service/openapi/openapitest"
)

// TestOpenAPIMatchesRoutes walks the server's real route table: every
// method and path it routes must be an operation of its OpenAPI document,
// and every operation of the document a route. A route added to New
// without its operation fails here, saying what to add where.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s, err := queryapi.New(queryapi.Config{
		Store:   redisstore.New(redistest.Client(t), redisstore.Options{Prefix: redistest.Prefix(t)}),
		Brokers: c.ListenAddrs(),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	var routes []openapi.Route
	err = chi.Walk(s.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, openapi.Route{Method: method, Path: route})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 10 {
		t.Fatalf("walked %d routes: %v", len(routes), routes)
	}
	if err := openapi.Compare(openapi.QueryAPI(), openapi.QueryAPIFile, openapi.FoldAnyMethod(routes)); err != nil {
		t.Error(err)
	}
}

// TestOpenAPIServedOpen: a server that checks credentials serves its
// document to anyone, as it is, even with a bad credential; only on GET
// of its exact path.
func TestOpenAPIServedOpen(t *testing.T) {
	h, _, _ := authHarness(t)
	code, header, body := h.doHeader("GET", openapi.Path, "")
	if code != http.StatusOK || header.Get("Content-Type") != "application/json" || string(body) != string(openapi.QueryAPI()) {
		t.Errorf("GET %s without credentials: %d %q, %d bytes; want 200 and the query API's document", openapi.Path, code, header.Get("Content-Type"), len(body))
	}
	if code, _, body := h.doAs("not-a-key", "GET", openapi.Path, ""); code != http.StatusOK || string(body) != string(openapi.QueryAPI()) {
		t.Errorf("GET %s with an invalid credential: %d, want 200 and the document", openapi.Path, code)
	}
	for _, method := range []string{"POST", "PUT", "DELETE"} {
		if code, _ := h.do(method, openapi.Path, "{}"); code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405", method, openapi.Path, code)
		}
	}
	if code, _ := h.do("GET", openapi.Path+"/", ""); code != http.StatusNotFound {
		t.Errorf("GET %s/: %d, want 404", openapi.Path, code)
	}
	if code, _ := h.do("GET", "/v1/apps/chat/users/alice/status", ""); code != http.StatusUnauthorized {
		t.Errorf("a lookup without credentials: %d, want 401 (the server does check credentials)", code)
	}
}

// TestOpenAPIDescribesAnswers sends a request of each operation, and
// some refused ones, to a server that checks credentials, and checks
// every exchange against the document: the request it accepts, the
// status, headers and body it answers.
func TestOpenAPIDescribesAnswers(t *testing.T) {
	h, _, _ := authHarness(t)
	h.built() // a watch starts only on whole state
	c := openapitest.New(t, openapi.QueryAPI())
	users501 := `{"users":["u"` + strings.Repeat(`,"u"`, 500) + `]}`
	backend := http.Header{"Authorization": {"Bearer " + authtest.Backend}}
	for _, r := range []struct {
		method, path, body string
		invalid            bool
		want               int
	}{
		{"GET", "/v1/apps/chat/users/alice/status", "", true, 401},
		{"PUT", "/v1/apps/games/users/alice/friends/bob", "", false, 403},
		{"POST", "/v1/apps/chat/status/query", `{"users":["alice","bob","nobody"]}`, false, 200},
		{"POST", "/v1/apps/chat/status/query", users501, true, 400},
		{"POST", "/v1/apps/chat/status/query", `{"users":"alice"}`, true, 400},
		{"POST", "/v1/apps/chat/status/watch", `{"users":["alice"],"cursor":"not one","timeout_ms":0}`, false, 400},
		{"POST", "/v1/apps/chat/status/watch", `{"users":["alice"],"timeout_ms":30001}`, true, 400},
		{"GET", "/v1/apps/chat/users/alice/status", "", false, 200},
		{"GET", "/v1/apps/chat/users/bob/status", "", false, 200},
		{"GET", "/v1/apps/chat/users/nobody/status", "", false, 404},
		{"GET", "/v1/apps/chat!/users/alice/status", "", true, 400},
		{"PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":2,"text":"away"}`, false, 202},
		{"PUT", "/v1/apps/chat/users/alice/custom-status", `{"text":"away"}`, true, 400},
		{"DELETE", "/v1/apps/chat/users/alice/custom-status", "", false, 202},
		{"PUT", "/v1/apps/chat/users/alice/privacy", `{"invisible":true,"last_seen":"friends"}`, false, 202},
		{"PUT", "/v1/apps/chat/users/alice/privacy", `{"last_seen":"sometimes"}`, true, 400},
		{"GET", "/v1/apps/chat/users/alice/privacy", "", false, 200},
		{"GET", "/v1/apps/chat/users/alice/status?viewer=bob", "", false, 200},
		{"PUT", "/v1/apps/chat/users/alice/friends/bob", "", false, 202},
		{"GET", "/v1/apps/chat/users/alice/friends/status", "", false, 200},
		{"DELETE", "/v1/apps/chat/users/alice/friends/bob", "", false, 202},
		{"POST", "/v1/apps/chat/users/alice/subscriptions", `{"users":["bob","nobody"],"ttl_seconds":60}`, false, 200},
		{"DELETE", "/v1/apps/chat/users/alice/subscriptions", `{"users":["bob"]}`, false, 202},
		{"POST", "/compat/leancloud/1.1/functions/getOnOffStatus", `{"peerIds":["alice","bob","nobody"]}`, false, 200},
		{"POST", "/compat/leancloud/1.1/functions/getOnOffStatus", `{"peerIds":["alice"]}`, true, 401},
		{"POST", "/compat/leancloud/1.1/functions/getOnOffStatus", `{"peerIds":"alice"}`, true, 400},
		{"POST", "/compat/im/v1/user/status/queryUserOnlineStatus?appId=chat", `{"userList":["alice","nobody"],"clientType":1}`, false, 200},
		{"POST", "/compat/im/v1/user/queryUserOnlineStatus?appId=chat", users501, true, 400},
		{"POST", "/compat/im/v1/user/status/queryFriendOnlineStatus?appId=chat&identifier=alice", `{}`, false, 200},
		{"POST", "/compat/im/v1/user/subscribeUserOnlineStatus?appId=chat&identifier=alice", `{"subUserId":["bob"],"subTime":60000}`, false, 200},
		{"POST", "/compat/im/v1/user/status/setUserCustomerStatus?appId=chat&identifier=alice", `{"customStatus":1,"customText":"busy"}`, false, 200},
		{"POST", "/compat/im/v1/user/status/setUserCustomerStatus?appId=chat&identifier=alice", `{}`, false, 200},
		{"POST", "/compat/im/v1/user/status/setUserCustomerStatus?appId=chat", `{"customStatus":1}`, false, 400},
		{"GET", "/healthz", "", false, 200},
		{"GET", "/readyz", "", false, 200},
		{"GET", "/metrics", "", false, 200},
		{"GET", "/openapi.json", "", false, 200},
	} {
		header := backend.Clone()
		if r.want == http.StatusUnauthorized {
			header = http.Header{}
		}
		if strings.HasPrefix(r.path, "/compat/leancloud/") {
			header.Set("X-LC-Id", "chat")
		}
		code, body := c.Do(t, openapitest.Request{Method: r.method, URL: h.srv.URL + r.path, Body: r.body, Header: header, Invalid: r.invalid})
		if code != r.want {
			t.Errorf("%s %s: %d %.200s, want %d", r.method, r.path, code, body, r.want)
		}
	}

	// A watch from its start, then from its cursor to the timeout.
	watch := h.srv.URL + "/v1/apps/chat/status/watch"
	code, body := c.Do(t, openapitest.Request{Method: "POST", URL: watch, Body: `{"users":["alice","nobody"]}`, Header: backend})
	var start struct{ Cursor string }
	if err := json.Unmarshal(body, &start); code != http.StatusOK || err != nil || start.Cursor == "" {
		t.Fatalf("a watch without a cursor: %d %.200s", code, body)
	}
	next := `{"users":["alice","nobody"],"cursor":"` + start.Cursor + `","timeout_ms":100}`
	if code, body := c.Do(t, openapitest.Request{Method: "POST", URL: watch, Body: next, Header: backend}); code != http.StatusOK {
		t.Errorf("a watch from its cursor: %d %.200s", code, body)
	}
}
