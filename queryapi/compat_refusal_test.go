package queryapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
	"github.com/presence-im/presence/service/ratelimit"
)

// What the compat routes refuse, and how: bad input, credentials, rate
// limits, an outage; each with the native status, in the seed's envelope.

// imError and leanCloudError are the seeds' error envelopes.
type (
	imError struct {
		Code int
		Msg  string
		Data *json.RawMessage
	}
	leanCloudError struct {
		Code  int
		Error string
	}
)

// wantSeedError checks an answer is the seed's error envelope (imError
// for a path of the Java IM, leanCloudError for LeanCloud's) with status
// as its HTTP status and code, and nothing else in it, and returns its
// message.
func wantSeedError(t *testing.T, path string, code int, body string, status int) string {
	t.Helper()
	if code != status {
		t.Fatalf("%s: %d %s, want %d", path, code, body, status)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &fields); err != nil {
		t.Fatalf("%s: %v: %s", path, err, body)
	}
	if strings.HasPrefix(path, "/compat/im/") {
		var e imError
		if err := json.Unmarshal([]byte(body), &e); err != nil || len(fields) != 3 || e.Code != status || e.Msg == "" || string(fields["data"]) != "null" {
			t.Fatalf("%s: %s, want {\"code\":%d,\"msg\":…,\"data\":null}", path, body, status)
		}
		return e.Msg
	}
	var e leanCloudError
	if err := json.Unmarshal([]byte(body), &e); err != nil || len(fields) != 2 || e.Code != status || e.Error == "" {
		t.Fatalf("%s: %s, want {\"code\":%d,\"error\":…}", path, body, status)
	}
	return e.Error
}

// Bad requests are refused 4xx in the seed's envelope, and write nothing.
func TestCompatBadInput(t *testing.T) {
	h := imHarness(t)
	lc := func(body string) [4]string { return [4]string{"POST", onOffPath, body, "chat"} }
	im := func(route, query, body string) [4]string {
		return [4]string{"POST", imPath + route + "?" + query, body, ""}
	}
	many := `{"peerIds":[` + strings.Repeat(`"u",`, 500) + `"u"]}`
	for name, c := range map[string]struct {
		req    [4]string // method, path, body, X-LC-Id
		status int
		says   string // in the message
	}{
		"no X-LC-Id":             {[4]string{"POST", onOffPath, `{"peerIds":["a"]}`, ""}, 400, "X-LC-Id"},
		"bad app":                {[4]string{"POST", onOffPath, `{"peerIds":["a"]}`, "bad app"}, 400, "app"},
		"no peerIds":             {lc(`{}`), 400, `"peerIds" is required`},
		"peerIds null":           {lc(`{"peerIds":null}`), 400, ""},
		"peerIds not a list":     {lc(`{"peerIds":"alice"}`), 400, ""},
		"501 peerIds":            {lc(many), 400, "at most 500"},
		"empty peer id":          {lc(`{"peerIds":["alice",""]}`), 400, "peerIds[1]: invalid user id: empty"},
		"long peer id":           {lc(`{"peerIds":["` + strings.Repeat("x", 129) + `"]}`), 400, ""},
		"unknown parameter":      {lc(`{"peerIds":["a"],"limit":3}`), 400, ""},
		"not JSON":               {lc(`peerIds=a`), 400, ""},
		"empty body":             {lc(``), 400, ""},
		"body over 8 MiB":        {lc(`{"peerIds":["` + strings.Repeat("x", 8<<20) + `"]}`), 413, "over"},
		"two values":             {lc(`{"peerIds":[]}{}`), 400, ""},
		"unknown function":       {[4]string{"POST", "/compat/leancloud/1.1/functions/nope", `{}`, "chat"}, 404, ""},
		"GET a function":         {[4]string{"GET", onOffPath, ``, "chat"}, 405, ""},
		"no appId":               {im("queryUserOnlineStatus", "identifier=bob", `{"userList":["a"]}`), 400, ""},
		"bad appId":              {im("queryUserOnlineStatus", "appId=ten%20thousand", `{"userList":["a"]}`), 400, ""},
		"no userList":            {im("queryUserOnlineStatus", "appId=10000", `{}`), 400, ""},
		"control char in user":   {im("queryUserOnlineStatus", "appId=10000", `{"userList":["a\u0001"]}`), 400, "userList[0]"},
		"no identifier":          {im("queryFriendOnlineStatus", "appId=10000", `{}`), 400, "identifier is required"},
		"long identifier":        {im("queryFriendOnlineStatus", "appId=10000&identifier="+strings.Repeat("x", 129), `{}`), 400, ""},
		"friends, no body":       {im("queryFriendOnlineStatus", "appId=10000&identifier=alice", ``), 400, ""},
		"no subUserId":           {im("subscribeUserOnlineStatus", "appId=10000&identifier=alice", `{"subTime":1000}`), 400, ""},
		"no subTime":             {im("subscribeUserOnlineStatus", "appId=10000&identifier=alice", `{"subUserId":["bob"]}`), 400, ""},
		"subTime 0":              {im("subscribeUserOnlineStatus", "appId=10000&identifier=alice", `{"subUserId":["bob"],"subTime":0}`), 400, ""},
		"subTime over 7 days":    {im("subscribeUserOnlineStatus", "appId=10000&identifier=alice", `{"subUserId":["bob"],"subTime":604800001}`), 400, "1 to 604800000 milliseconds"},
		"subscribe to oneself":   {im("subscribeUserOnlineStatus", "appId=10000&identifier=alice", `{"subUserId":["alice"],"subTime":1000}`), 400, "subUserId[0]"},
		"no one to subscribe to": {im("subscribeUserOnlineStatus", "appId=10000&identifier=alice", `{"subUserId":[],"subTime":1000}`), 400, `"subUserId" is empty`},
		"text without status":    {im("setUserCustomerStatus", "appId=10000&identifier=alice", `{"customText":"hi"}`), 400, ""},
		"status over 32 bits":    {im("setUserCustomerStatus", "appId=10000&identifier=alice", `{"customStatus":4294967296}`), 400, `"customStatus" 4294967296 does not fit 32 bits`},
		"text too long":          {im("setUserCustomerStatus", "appId=10000&identifier=alice", `{"customStatus":1,"customText":"`+strings.Repeat("é", 101)+`"}`), 400, "101 characters"},
		"status not a number":    {im("setUserCustomerStatus", "appId=10000&identifier=alice", `{"customStatus":"1"}`), 400, ""},
		"nobody to set":          {im("setUserCustomerStatus", "appId=10000", `{"customStatus":1}`), 400, ""},
		"unknown route":          {im("deleteUser", "appId=10000", `{}`), 404, ""},
		"GET a route":            {[4]string{"GET", imPath + "queryUserOnlineStatus?appId=10000", ``, ""}, 405, ""},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, body := h.compatDo("", c.req[0], c.req[1], c.req[2], "X-LC-Id", c.req[3])
			if msg := wantSeedError(t, c.req[1], code, body, c.status); !strings.Contains(msg, c.says) {
				t.Errorf("message %q does not say %q", msg, c.says)
			}
		})
	}
	h.empty()
}

// Credentials are checked as for the native route each compat route
// calls: refused 401 or 403 with the native status, in the seed's
// envelope, writing nothing; allowed, served.
func TestCompatAuth(t *testing.T) {
	h, _, _ := authHarness(t)
	alice := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	bob := authtest.HS256(t, authtest.UserSecret, "chat", "bob")
	type call struct{ path, body string }
	onOff := call{onOffPath, `{"peerIds":["alice","bob"]}`}
	users := call{imPath + "queryUserOnlineStatus?appId=chat", `{"userList":["alice"]}`}
	friends := call{imPath + "queryFriendOnlineStatus?appId=chat&identifier=alice", `{}`}
	subscribe := call{imPath + "subscribeUserOnlineStatus?appId=chat&identifier=alice", `{"subUserId":["bob"],"subTime":60000}`}
	custom := call{imPath + "setUserCustomerStatus?appId=chat&identifier=bob", `{"userId":"alice","customStatus":1,"customText":"hacked"}`}
	refused := []struct {
		name, cred string
		call       call
		status     int
	}{
		{"no credential", "", onOff, 401},
		{"bad key", "not-a-key-000000000", users, 401},
		{"no credential", "", custom, 401},
		{"other app's key", authtest.GamesBackend, onOff, 403},
		{"backend of another app", authtest.GamesBackend, custom, 403},
		{"bob's friends are not alice's", bob, friends, 403},
		{"read key may not subscribe", authtest.Read, subscribe, 403},
		{"bob subscribes for alice", bob, subscribe, 403},
		{"bob sets alice's status", bob, custom, 403},
		{"read key sets a status", authtest.Read, custom, 403},
	}
	for _, c := range refused {
		t.Run("refused/"+c.name, func(t *testing.T) {
			code, header, body := h.compatDo(c.cred, "POST", c.call.path, c.call.body, "X-LC-Id", "chat")
			wantSeedError(t, c.call.path, code, body, c.status)
			if c.status == 401 && header.Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
	h.empty()
	for _, c := range []struct {
		name, cred string
		call       call
	}{
		{"read key", authtest.Read, onOff},
		{"bob's token", bob, onOff},
		{"alice's token", alice, users},
		{"alice's friends", alice, friends},
		{"alice subscribes", alice, subscribe},
		{"backend subscribes for alice", authtest.Backend, subscribe},
		{"alice sets her status", alice, custom},
		{"backend sets alice's status", authtest.Backend, custom},
	} {
		t.Run("allowed/"+c.name, func(t *testing.T) {
			code, _, body := h.compatDo(c.cred, "POST", c.call.path, c.call.body, "X-LC-Id", "chat")
			if code != http.StatusOK || !(strings.HasPrefix(body, `{"result":`) || strings.HasPrefix(body, `{"code":200,"msg":"success",`)) {
				t.Errorf("%d %s", code, body)
			}
		})
	}
	if n := len(h.records(schemas.SessionsTopic)); n != 2 {
		t.Errorf("%d custom status records, want alice's and the backend's", n)
	}
}

// With Redis down, the compat lookups answer 503 as the native ones do,
// in the seed's envelope, saying to retry.
func TestCompatRedisDown(t *testing.T) {
	rs := redistest.NewServer(t, redistest.Options{})
	opts, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries, opts.DialerRetries = -1, 1
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	h := newHarnessOn(t, rdb)
	rs.Kill()
	for path, req := range map[string]string{
		onOffPath: `{"peerIds":["alice"]}`,
		imPath + "queryUserOnlineStatus?appId=chat": `{"userList":["alice"]}`,
	} {
		code, _, body := h.compatDo("", "POST", path, req, "X-LC-Id", "chat")
		if msg := wantSeedError(t, path, code, body, http.StatusServiceUnavailable); !strings.Contains(msg, "retry") {
			t.Errorf("%s: message %q does not say to retry", path, msg)
		}
	}
}

// A compat request is limited once, at the native route it calls, for
// the app and user that route is counted for; over a limit it is refused
// 429 in the seed's envelope, with Retry-After.
func TestCompatRateLimits(t *testing.T) {
	t.Run("open", func(t *testing.T) {
		h := newHarness(t, func(c *queryapi.Config) {
			f := ratelimit.Flags{App: ratelimit.Rule{PerSecond: 0.01, Burst: 100}, User: ratelimit.Rule{PerSecond: 0.01, Burst: 3}}
			c.RateLimits = f.Scopes(false)
		})
		friends := imPath + "queryFriendOnlineStatus?appId=chat&identifier=alice"
		for i := range 2 {
			if code, _, body := h.compatDo("", "POST", friends, `{}`); code != http.StatusOK {
				t.Fatalf("alice's compat request %d: %d %s", i, code, body)
			}
		}
		// alice's third: the compat requests took one token each.
		if code, body := h.do("GET", "/v1/apps/chat/users/alice/friends/status", ""); code != http.StatusOK {
			t.Fatalf("alice's native request: %d %s", code, body)
		}
		code, header, body := h.compatDo("", "POST", friends, `{}`)
		wantSeedError(t, friends, code, body, http.StatusTooManyRequests)
		if header.Get("Retry-After") == "" {
			t.Error("a 429 without Retry-After")
		}
	})
	t.Run("auth", func(t *testing.T) {
		f := authtest.New(t)
		a, err := auth.New(auth.Config{File: f.File})
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, func(c *queryapi.Config) {
			c.Auth = a
			rates := ratelimit.Flags{App: ratelimit.Rule{PerSecond: 0.01, Burst: 100}, User: ratelimit.Rule{PerSecond: 0.01, Burst: 2}}
			c.RateLimits = rates.Scopes(true)
		})
		alice := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
		for i := range 2 {
			if code, _, body := h.compatDo(alice, "POST", onOffPath, `{"peerIds":["bob"]}`, "X-LC-Id", "chat"); code != http.StatusOK {
				t.Fatalf("alice's request %d: %d %s", i, code, body)
			}
		}
		code, _, body := h.compatDo(alice, "POST", onOffPath, `{"peerIds":["bob"]}`, "X-LC-Id", "chat")
		wantSeedError(t, onOffPath, code, body, http.StatusTooManyRequests)
	})
}
