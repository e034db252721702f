package queryapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
	"github.com/presence-im/presence/service/ratelimit"
)

// The seeds' APIs under /compat (package queryapi/compat), through the
// query API's handler: each answer in the exact shape the seed gives.

const (
	onOffPath = "/compat/leancloud/1.1/functions/getOnOffStatus"
	imPath    = "/compat/im/v1/user/status/"
)

// compatDo sends a request with the credential cred (none when empty)
// and the headers given as name, value pairs, and returns the answer.
func (h *harness) compatDo(cred, method, path, body string, header ...string) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// imApp is the app of the Java IM tests: the seed's apps are numbers.
const imApp = "10000"

// imHarness is a harness whose app 10000 holds: alice online on two
// devices (an iPhone on gateway gw, a web page on gateway 7) with custom
// status 3 "busy", bob offline, and the friends of alice: bob and ghost,
// whom Presence has never seen.
func imHarness(t *testing.T, configure ...func(*queryapi.Config)) *harness {
	h := newHarness(t, configure...)
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	h.apply(
		redisstore.Change{Op: redisstore.Connect, App: imApp, User: "alice", Session: "s1", Device: "ios", DeviceID: "imei-1", Gateway: "gw", At: at, Version: 1},
		redisstore.Change{Op: redisstore.Connect, App: imApp, User: "alice", Session: "s2", Device: "web", Gateway: "7", At: at, Version: 2},
		redisstore.Change{Op: redisstore.SetCustom, App: imApp, User: "alice", Custom: redisstore.Custom{Status: 3, Text: "busy"}, At: at, Version: 3},
		redisstore.Change{Op: redisstore.Connect, App: imApp, User: "bob", Session: "s3", Device: "android", Gateway: "gw", At: at, Version: 4},
		redisstore.Change{Op: redisstore.Disconnect, App: imApp, User: "bob", Session: "s3", At: at.Add(time.Second), Version: 5},
	)
	key := h.prefix + ":{" + schemas.UserKey(imApp, "alice") + "}:f"
	if err := h.rdb.SAdd(context.Background(), key, "bob", "ghost").Err(); err != nil {
		t.Fatal(err)
	}
	return h
}

// Alice's answer of the status queries, as the seed's UserOnlineStatusResp.
const (
	imAlice = `{"session":[` +
		`{"userId":"alice","appId":10000,"clientType":2,"version":null,"connectState":1,"brokerId":null,"brokerHost":"gw","imei":"imei-1"},` +
		`{"userId":"alice","appId":10000,"clientType":1,"version":null,"connectState":1,"brokerId":7,"brokerHost":"7","imei":null}],` +
		`"customText":"busy","customStatus":3}`
	imNobody = `{"session":[],"customText":null,"customStatus":null}`
	imOK     = `{"code":200,"msg":"success","data":null}` + "\n"
)

// getOnOffStatus answers "1", "0" or null per peer, in the order asked,
// duplicates included, in LeanCloud's {"result":[…]}.
func TestCompatGetOnOffStatus(t *testing.T) {
	h := newHarness(t)
	h.apply(redisstore.Change{Op: redisstore.Connect, App: "chat", User: "alice", Session: "s9", Device: "web", Gateway: "gw", At: time.Now(), Version: 9})
	code, header, body := h.compatDo("", "POST", onOffPath, `{"peerIds":["alice","bob","ghost","a/b%c","alice"]}`, "X-LC-Id", "chat")
	if want := `{"result":["1","0",null,"1","1"]}` + "\n"; code != http.StatusOK || body != want {
		t.Fatalf("%d %s, want 200 %s", code, body, want)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	// No processor has built the harness's state: the answer says so, as
	// the native status query's does.
	if got := header.Get(queryapi.RebuildingHeader); got != "3" {
		t.Errorf("%s %q, want 3", queryapi.RebuildingHeader, got)
	}
	code, _, body = h.compatDo("", "POST", onOffPath, `{"peerIds":[]}`, "X-LC-Id", "chat")
	if code != http.StatusOK || body != `{"result":[]}`+"\n" {
		t.Errorf("no peers: %d %s", code, body)
	}
}

// queryUserOnlineStatus answers every user named, at the contract's path
// and at the seed's own: the sessions of an online user, none for an
// offline or unknown one, the custom status or nulls.
func TestCompatQueryUserOnlineStatus(t *testing.T) {
	h := imHarness(t)
	want := `{"code":200,"msg":"success","data":{"alice":` + imAlice + `,"bob":` + imNobody + `,"ghost":` + imNobody + `}}` + "\n"
	for _, path := range []string{imPath, "/compat/im/v1/user/"} {
		code, header, body := h.compatDo("", "POST", path+"queryUserOnlineStatus?appId=10000&identifier=bob",
			`{"userList":["alice","bob","ghost","alice"],"appId":10000,"clientType":1,"imei":"x","operater":"bob"}`)
		if code != http.StatusOK || body != want {
			t.Errorf("%s: %d\n%s\nwant\n%s", path, code, body, want)
		}
		if got := header.Get(queryapi.RebuildingHeader); got != "3" {
			t.Errorf("%s %q, want 3", queryapi.RebuildingHeader, got)
		}
	}
}

// queryFriendOnlineStatus answers the identifier's friends Presence
// knows; a friend never seen is left out.
func TestCompatQueryFriendOnlineStatus(t *testing.T) {
	h := imHarness(t)
	code, _, body := h.compatDo("", "POST", imPath+"queryFriendOnlineStatus?appId=10000&identifier=alice", `{}`)
	if want := `{"code":200,"msg":"success","data":{"bob":` + imNobody + `}}` + "\n"; code != http.StatusOK || body != want {
		t.Errorf("alice's friends: %d %s, want %s", code, body, want)
	}
	code, _, body = h.compatDo("", "POST", imPath+"queryFriendOnlineStatus?appId=10000&identifier=a%2Fb%25c", `{}`)
	if want := `{"code":200,"msg":"success","data":{}}` + "\n"; code != http.StatusOK || body != want {
		t.Errorf("a/b%%c's friends: %d %s, want %s", code, body, want)
	}
}

// setUserCustomerStatus writes the record the native PUT writes; applied
// as the processor applies it, the status reads back through the native
// GET and the seed's query. Both fields absent clear it.
func TestCompatSetUserCustomerStatus(t *testing.T) {
	h := imHarness(t)
	code, _, body := h.compatDo("", "POST", imPath+"setUserCustomerStatus?appId=10000&identifier=bob",
		`{"userId":"bob","customStatus":2,"customText":"in a meeting ☕","clientType":2,"imei":"imei-9"}`)
	if code != http.StatusOK || body != imOK {
		t.Fatalf("set: %d %s", code, body)
	}
	if code, body := h.do("PUT", "/v1/apps/10000/users/bob/custom-status", `{"status":2,"text":"in a meeting ☕"}`); code != http.StatusAccepted {
		t.Fatalf("native PUT: %d %s", code, body)
	}
	// Without userId, the identifier's own status; nothing set clears it.
	if code, _, body := h.compatDo("", "POST", imPath+"setUserCustomerStatus?appId=10000&identifier=bob", `{}`); code != http.StatusOK || body != imOK {
		t.Fatalf("clear: %d %s", code, body)
	}

	recs := h.records(schemas.SessionsTopic)
	if len(recs) != 3 {
		t.Fatalf("%d records, want the compat set, the native set, the compat clear", len(recs))
	}
	key := schemas.CustomStatusKey(imApp, "bob")
	for i, r := range recs {
		if string(r.Key) != key {
			t.Errorf("record %d keyed %q, want %q", i, r.Key, key)
		}
	}
	if !proto.Equal(decodeEvent(t, recs[0].Value), decodeEvent(t, recs[1].Value)) {
		t.Errorf("the compat record differs from the native one")
	}
	if recs[2].Value != nil {
		t.Errorf("clearing wrote %x, want a tombstone", recs[2].Value)
	}

	ev := decodeEvent(t, recs[0].Value)
	h.apply(redisstore.Change{Op: redisstore.SetCustom, App: ev.App, User: ev.User,
		Custom: redisstore.Custom{Status: int(ev.Custom.Status), Text: ev.Custom.Text}, At: time.UnixMilli(ev.TimestampMs), Version: 10})
	code, b := h.do("GET", "/v1/apps/10000/users/bob/status", "")
	if code != http.StatusOK || !strings.Contains(string(b), `"custom":{"status":2,"text":"in a meeting ☕"}`) {
		t.Errorf("native GET: %d %s", code, b)
	}
	code, _, body = h.compatDo("", "POST", imPath+"queryUserOnlineStatus?appId=10000", `{"userList":["bob"]}`)
	want := `{"code":200,"msg":"success","data":{"bob":{"session":[],"customText":"in a meeting ☕","customStatus":2}}}` + "\n"
	if code != http.StatusOK || body != want {
		t.Errorf("read back: %d %s, want %s", code, body, want)
	}
}

func decodeEvent(t *testing.T, value []byte) *pb.SessionEvent {
	t.Helper()
	var ev pb.SessionEvent
	if err := proto.Unmarshal(value, &ev); err != nil {
		t.Fatal(err)
	}
	return &ev
}

// subscribeUserOnlineStatus writes the native subscriptions, for subTime
// rounded up to a second, and they count towards the subscriber's cap as
// the native ones do.
func TestCompatSubscribe(t *testing.T) {
	h := imHarness(t, func(c *queryapi.Config) { c.MaxSubscriptions = 3 })
	code, _, body := h.compatDo("", "POST", imPath+"subscribeUserOnlineStatus?appId=10000&identifier=alice",
		`{"subUserId":["bob","ghost","bob"],"subTime":90500}`)
	if code != http.StatusOK || body != imOK {
		t.Fatalf("subscribe: %d %s", code, body)
	}
	recs := byKey(h.records(schemas.SubscriptionsTopic))
	for _, u := range []string{"bob", "ghost"} {
		rs := recs[schemas.SubscriptionKey(imApp, u, "alice")]
		if len(rs) != 1 {
			t.Fatalf("%d records of alice watching %s, want 1", len(rs), u)
		}
		var sub pb.Subscription
		if err := proto.Unmarshal(rs[0].Value, &sub); err != nil {
			t.Fatal(err)
		}
		if want := now.Add(91 * time.Second).UnixMilli(); sub.ExpiresAtMs != want {
			t.Errorf("alice watches %s until %d, want %d", u, sub.ExpiresAtMs, want)
		}
	}
	if len(recs) != 2 {
		t.Errorf("%d subscription keys written, want 2", len(recs))
	}
	// The native API sees them: two more would pass the cap of 3.
	code, b := h.do("POST", "/v1/apps/10000/users/alice/subscriptions", `{"users":["carol","dave"],"ttl_seconds":60}`)
	wantError(t, code, b, http.StatusBadRequest, "too_many_subscriptions")
	if code, b := h.do("POST", "/v1/apps/10000/users/alice/subscriptions", `{"users":["carol"],"ttl_seconds":60}`); code != http.StatusOK {
		t.Errorf("a third subscription: %d %s", code, b)
	}
}

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

// The compat routes count their requests, by route and status.
func TestCompatMetrics(t *testing.T) {
	h := newHarness(t)
	h.compatDo("", "POST", onOffPath, `{"peerIds":["alice"]}`, "X-LC-Id", "chat")
	h.compatDo("", "POST", onOffPath, `{}`, "X-LC-Id", "chat")
	_, body := h.do("GET", "/metrics", "")
	for _, want := range []string{
		`presence_queryapi_compat_requests_total{code="200",route="leancloud_get_on_off_status"} 1`,
		`presence_queryapi_compat_requests_total{code="400",route="leancloud_get_on_off_status"} 1`,
		`presence_queryapi_requests_total{code="200",route="status_query"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
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
