package queryapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// A friendship is two records, one in each user's partition; ending it is
// two tombstones on the same keys.
func TestFriends(t *testing.T) {
	h := newHarness(t)
	path := "/v1/apps/chat/users/alice/friends/a%2Fb%25c"
	code, body := h.do("PUT", path, "")
	if code != http.StatusAccepted || string(body) != `{"user":"alice","friend":"a/b%c"}`+"\n" {
		t.Fatalf("PUT: %d %s", code, body)
	}
	code, body = h.do("DELETE", path, "")
	if code != http.StatusAccepted || string(body) != `{"user":"alice","friend":"a/b%c"}`+"\n" {
		t.Fatalf("DELETE: %d %s", code, body)
	}

	recs := h.records(schemas.FriendsTopic)
	if len(recs) != 4 {
		t.Fatalf("%d records, want two edges and two tombstones", len(recs))
	}
	for key, want := range map[string]*pb.FriendEdge{
		"chat/alice/a%2Fb%25c": {App: "chat", User: "alice", Friend: "a/b%c", TimestampMs: now.UnixMilli()},
		"chat/a%2Fb%25c/alice": {App: "chat", User: "a/b%c", Friend: "alice", TimestampMs: now.UnixMilli()},
	} {
		history := byKey(recs)[key]
		if len(history) != 2 {
			t.Errorf("%d records with key %q, want the edge then its tombstone", len(history), key)
			continue
		}
		var e pb.FriendEdge
		if err := proto.Unmarshal(history[0].Value, &e); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&e, want) || schemas.ValidateFriendEdge(&e) != nil {
			t.Errorf("record %q holds %v, want %v", key, &e, want)
		}
		if history[1].Value != nil {
			t.Errorf("removal wrote %x on %q, want a tombstone", history[1].Value, key)
		}
	}
}

// A friend whose id is "status" is not mistaken for the friends' status.
func TestFriendNamedStatus(t *testing.T) {
	h := newHarness(t)
	if code, body := h.do("PUT", "/v1/apps/chat/users/alice/friends/status", ""); code != http.StatusAccepted {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if recs := h.records(schemas.FriendsTopic); len(recs) != 2 || byKey(recs)["chat/alice/status"] == nil || byKey(recs)["chat/status/alice"] == nil {
		t.Fatalf("%d records, want alice's and status's halves", len(recs))
	}
}

func TestFriendsInvalid(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ name, method, path string }{
		{"own friend", "PUT", "/v1/apps/chat/users/alice/friends/alice"},
		{"own friend, escaped", "PUT", "/v1/apps/chat/users/a%2Fb/friends/a%2Fb"},
		{"bad friend", "PUT", "/v1/apps/chat/users/alice/friends/" + strings.Repeat("x", 129)},
		{"bad user", "DELETE", "/v1/apps/chat/users/" + strings.Repeat("x", 129) + "/friends/bob"},
		{"bad app", "DELETE", "/v1/apps/bad%20app/users/alice/friends/bob"},
		{"own friend on removal", "DELETE", "/v1/apps/chat/users/bob/friends/bob"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := h.do(c.method, c.path, "")
			wantError(t, code, body, http.StatusBadRequest, "invalid")
		})
	}
	h.empty()
}

// The friends' status holds the status of each friend Presence knows,
// sorted by user id, and leaves out those it does not.
func TestFriendsStatus(t *testing.T) {
	h := newHarness(t)
	at := time.Now().Add(-30 * time.Second).Truncate(time.Millisecond)
	h.apply(
		redisstore.Change{Op: redisstore.Connect, App: "chat", User: "dave", Session: "s9", Device: "android", Gateway: "gw", At: at, Version: 10},
		redisstore.Change{Op: redisstore.SetCustom, App: "chat", User: "dave", Custom: redisstore.Custom{Status: 2, Text: "away"}, At: at, Version: 11},
	)
	err := h.rdb.SAdd(context.Background(), h.userKey("alice")+":f", "dave", "bob", "ghost", "a/b%c").Err()
	if err != nil {
		t.Fatal(err)
	}

	code, body := h.do("GET", "/v1/apps/chat/users/alice/friends/status", "")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var got struct {
		Results []struct {
			User   string
			State  string
			Custom *struct {
				Status int
				Text   string
			}
		}
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, r := range got.Results {
		users = append(users, r.User+":"+r.State)
	}
	if want := []string{"a/b%c:online", "bob:offline", "dave:online"}; !slices.Equal(users, want) {
		t.Fatalf("results %q, want %q: %s", users, want, body)
	}
	if c := got.Results[2].Custom; c == nil || c.Status != 2 || c.Text != "away" {
		t.Errorf("dave's custom status %+v, want 2 away", c)
	}
	if !strings.Contains(string(body), `"custom":null`) {
		t.Errorf("statuses lack the contract's custom field: %s", body)
	}

	// A user without friends has an empty list, not null.
	code, body = h.do("GET", "/v1/apps/chat/users/bob/friends/status", "")
	if code != http.StatusOK || string(body) != `{"results":[]}`+"\n" {
		t.Fatalf("no friends: %d %s", code, body)
	}
	code, body = h.do("GET", "/v1/apps/chat/users/"+strings.Repeat("x", 129)+"/friends/status", "")
	wantError(t, code, body, http.StatusBadRequest, "invalid")
}
