package queryapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/auth/authtest"
)

// Setting a privacy writes one record on presence.sessions under the
// user's privacy key, in the user's partition; the default is that key's
// tombstone.
func TestPrivacyWrite(t *testing.T) {
	h := newHarness(t)
	path := "/v1/apps/chat/users/a%2Fb%25c/privacy"
	code, body := h.do("PUT", path, `{"invisible":true,"last_seen":"friends"}`)
	if code != http.StatusAccepted || string(body) != `{"user":"a/b%c","invisible":true,"last_seen":"friends"}`+"\n" {
		t.Fatalf("PUT: %d %s", code, body)
	}
	code, body = h.do("PUT", path, `{"invisible":false}`)
	if code != http.StatusAccepted || string(body) != `{"user":"a/b%c","invisible":false,"last_seen":"everyone"}`+"\n" {
		t.Fatalf("PUT of the default: %d %s", code, body)
	}
	recs := h.records(schemas.SessionsTopic)
	if len(recs) != 2 {
		t.Fatalf("%d records, want the setting and its tombstone", len(recs))
	}
	for _, r := range recs {
		if string(r.Key) != schemas.PrivacyKey("chat", "a/b%c") {
			t.Errorf("record key %q, want %q", r.Key, schemas.PrivacyKey("chat", "a/b%c"))
		}
	}
	var ev pb.SessionEvent
	if err := proto.Unmarshal(recs[0].Value, &ev); err != nil {
		t.Fatal(err)
	}
	want := &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_PRIVACY, App: "chat", User: "a/b%c",
		Privacy:     &pb.Privacy{Invisible: true, LastSeen: pb.LastSeenRule_LAST_SEEN_RULE_FRIENDS},
		TimestampMs: now.UnixMilli()}
	if !proto.Equal(&ev, want) {
		t.Errorf("record value %v, want %v", &ev, want)
	}
	if recs[1].Value != nil {
		t.Errorf("the default wrote %x, want a tombstone", recs[1].Value)
	}
}

// A bad request answers 400 and writes nothing.
func TestPrivacyInvalid(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ name, body string }{
		{"unknown rule", `{"invisible":true,"last_seen":"contacts"}`},
		{"rule in capitals", `{"last_seen":"EVERYONE"}`},
		{"rule a number", `{"last_seen":2}`},
		{"invisible a string", `{"invisible":"yes"}`},
		{"unknown field", `{"invisible":true,"hidden_since_ms":1}`},
		{"another user", `{"user":"bob","invisible":true}`},
		{"no body", ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := h.do("PUT", "/v1/apps/chat/users/alice/privacy", c.body)
			wantError(t, code, body, http.StatusBadRequest, "invalid")
		})
	}
	code, body := h.do("POST", "/v1/apps/chat/status/query?viewer=a%00b", `{"users":["alice"]}`)
	wantError(t, code, body, http.StatusBadRequest, "invalid")
	code, body = h.do("POST", "/v1/apps/chat/status/query?viewer=a&viewer=b", `{"users":["alice"]}`)
	wantError(t, code, body, http.StatusBadRequest, "invalid")
	h.empty()
}

// Each caller reads what its viewer may see: backends the truth (or as
// ?viewer=), read keys as ?viewer= or as anyone, user tokens as their
// user; a friend sees a last seen kept for friends.
func TestPrivacyViewers(t *testing.T) {
	h, _, _ := authHarness(t)
	ctx := context.Background()
	// alice (online) is invisible since 5000; bob (offline) shows his last
	// seen to his friends, carol among them.
	if err := h.rdb.HSet(ctx, h.userKey("alice"), "p", "1:everyone:5000").Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.HSet(ctx, h.userKey("bob"), "p", "0:friends:0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.SAdd(ctx, h.userKey("bob")+":f", "carol").Err(); err != nil {
		t.Fatal(err)
	}
	alice := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	carol := authtest.HS256(t, authtest.UserSecret, "chat", "carol")
	type view struct {
		State    string
		Sessions []json.RawMessage
		LastSeen *string `json:"last_seen"`
	}
	show := func(v *view) string {
		if v == nil {
			return "null"
		}
		s := v.State + "/" + strconv.Itoa(len(v.Sessions))
		if v.LastSeen != nil {
			return s + "/seen"
		}
		return s + "/unseen"
	}
	for _, c := range []struct {
		name, cred, query string
		alice, bob        string
	}{
		{"backend: the truth", authtest.Backend, "", "online/1/unseen", "offline/0/seen"},
		{"backend as dave", authtest.Backend, "?viewer=dave", "offline/0/seen", "offline/0/unseen"},
		{"backend as carol", authtest.Backend, "?viewer=carol", "offline/0/seen", "offline/0/seen"},
		{"backend as bob", authtest.Backend, "?viewer=bob", "offline/0/seen", "offline/0/seen"},
		{"read key: anyone", authtest.Read, "", "offline/0/seen", "offline/0/unseen"},
		{"read key as carol", authtest.Read, "?viewer=carol", "offline/0/seen", "offline/0/seen"},
		{"alice herself", alice, "", "online/1/unseen", "offline/0/unseen"},
		{"alice naming herself", alice, "?viewer=alice", "online/1/unseen", "offline/0/unseen"},
		{"carol", carol, "", "offline/0/seen", "offline/0/seen"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, body := h.doAs(c.cred, "POST", "/v1/apps/chat/status/query"+c.query, `{"users":["alice","bob"]}`)
			var out struct{ Results []*view }
			if code != http.StatusOK || json.Unmarshal(body, &out) != nil || len(out.Results) != 2 {
				t.Fatalf("%d %s", code, body)
			}
			if got := show(out.Results[0]); got != c.alice {
				t.Errorf("alice: %s, want %s", got, c.alice)
			}
			if got := show(out.Results[1]); got != c.bob {
				t.Errorf("bob: %s, want %s", got, c.bob)
			}
			code, _, body = h.doAs(c.cred, "GET", "/v1/apps/chat/users/alice/status"+c.query, "")
			var one view
			if code != http.StatusOK || json.Unmarshal(body, &one) != nil || show(&one) != c.alice {
				t.Errorf("alice's status: %d %s, want %s", code, body, c.alice)
			}
		})
	}
	code, _, body := h.doAs(alice, "POST", "/v1/apps/chat/status/query?viewer=bob", `{"users":["alice"]}`)
	wantError(t, code, body, http.StatusForbidden, "forbidden")

	// The setting: its user's, or a backend's, to read.
	code, _, body = h.doAs(alice, "GET", "/v1/apps/chat/users/alice/privacy", "")
	if code != http.StatusOK || string(body) != `{"user":"alice","invisible":true,"last_seen":"everyone"}`+"\n" {
		t.Errorf("alice's privacy: %d %s", code, body)
	}
	code, _, body = h.doAs(authtest.Backend, "GET", "/v1/apps/chat/users/dave/privacy", "")
	if code != http.StatusOK || string(body) != `{"user":"dave","invisible":false,"last_seen":"everyone"}`+"\n" {
		t.Errorf("an unknown user's privacy: %d %s", code, body)
	}
	code, _, body = h.doAs(alice, "GET", "/v1/apps/chat/users/bob/privacy", "")
	wantError(t, code, body, http.StatusForbidden, "forbidden")
	code, _, body = h.doAs(alice, "PUT", "/v1/apps/chat/users/bob/privacy", `{"invisible":true}`)
	wantError(t, code, body, http.StatusForbidden, "forbidden")
	code, _, body = h.doAs(authtest.Read, "PUT", "/v1/apps/chat/users/bob/privacy", `{"invisible":true}`)
	wantError(t, code, body, http.StatusForbidden, "forbidden")
}
