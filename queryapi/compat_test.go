package queryapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/auth/authtest"
)

// The seeds' APIs under /compat (package queryapi/compat), through the
// query API's handler: each answer in the exact shape the seed gives.

const (
	onOffPath = "/compat/leancloud/1.1/functions/getOnOffStatus"
	imPath    = "/compat/im/v1/user/status/"
)

// compatDo is doAs answering the body as a string.
func (h *harness) compatDo(cred, method, path, body string, header ...string) (int, http.Header, string) {
	h.t.Helper()
	code, hdr, b := h.doAs(cred, method, path, body, header...)
	return code, hdr, string(b)
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

// The seeds' lookups mask an invisible user as the native ones do: the
// Java IM's for the user who calls (identifier), whatever the key;
// getOnOffStatus for the caller's ?viewer= (a backend key without one
// reads the truth, as natively).
func TestCompatPrivacy(t *testing.T) {
	h, _, _ := authHarness(t)
	if err := h.rdb.HSet(context.Background(), h.userKey("alice"), "p", "1:everyone:5000").Err(); err != nil {
		t.Fatal(err)
	}
	lc := onOffPath
	for _, c := range []struct{ name, path, want string }{
		{"a backend key, no viewer: the truth", lc, `{"result":["1"]}`},
		{"a backend key as bob", lc + "?viewer=bob", `{"result":["0"]}`},
	} {
		code, _, body := h.compatDo(authtest.Backend, "POST", c.path, `{"peerIds":["alice"]}`, "X-LC-Id", "chat")
		if code != http.StatusOK || strings.TrimSpace(body) != c.want {
			t.Errorf("%s: %d %s, want %s", c.name, code, body, c.want)
		}
	}
	im := imPath + "queryUserOnlineStatus?appId=chat"
	code, _, body := h.compatDo(authtest.Backend, "POST", im+"&identifier=bob", `{"userList":["alice"]}`)
	if code != http.StatusOK || !strings.Contains(body, `"alice":{"session":[]`) {
		t.Errorf("queryUserOnlineStatus for bob: %d %s, want alice without sessions", code, body)
	}
	code, _, body = h.compatDo(authtest.Backend, "POST", im+"&identifier=alice", `{"userList":["alice"]}`)
	if code != http.StatusOK || strings.Contains(body, `"alice":{"session":[]`) {
		t.Errorf("queryUserOnlineStatus for alice herself: %d %s, want her session", code, body)
	}
}
