package queryapi_test

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// Setting a custom status writes one record on presence.sessions keyed by
// the user, in the user's partition; clearing it writes a tombstone there.
func TestCustomStatus(t *testing.T) {
	h := newHarness(t)
	path := "/v1/apps/chat/users/a%2Fb%25c/custom-status"

	code, body := h.do("PUT", path, `{"status":7,"text":"in a meeting ☕"}`)
	if code != http.StatusAccepted || string(body) != `{"user":"a/b%c","custom":{"status":7,"text":"in a meeting ☕"}}`+"\n" {
		t.Fatalf("PUT: %d %s", code, body)
	}
	code, body = h.do("DELETE", path, "")
	if code != http.StatusAccepted || string(body) != `{"user":"a/b%c","custom":null}`+"\n" {
		t.Fatalf("DELETE: %d %s", code, body)
	}

	recs := h.records(schemas.SessionsTopic)
	if len(recs) != 2 {
		t.Fatalf("%d records, want the status and its tombstone", len(recs))
	}
	key := schemas.CustomStatusKey("chat", "a/b%c")
	for _, r := range recs {
		if string(r.Key) != key || !r.Timestamp.Equal(now) {
			t.Errorf("record key %q at %s, want %q at %s", r.Key, r.Timestamp, key, now)
		}
	}
	var ev pb.SessionEvent
	if err := proto.Unmarshal(recs[0].Value, &ev); err != nil {
		t.Fatal(err)
	}
	want := &pb.SessionEvent{
		Type: pb.EventType_EVENT_TYPE_CUSTOM_STATUS, App: "chat", User: "a/b%c",
		Custom: &pb.CustomStatus{Status: 7, Text: "in a meeting ☕"}, TimestampMs: now.UnixMilli(),
	}
	if !proto.Equal(&ev, want) {
		t.Errorf("record value %v, want %v", &ev, want)
	}
	if err := schemas.ValidateSessionEvent(&ev); err != nil {
		t.Errorf("the processor would refuse the record: %v", err)
	}
	if recs[1].Value != nil {
		t.Errorf("clearing wrote value %x, want a tombstone (null value)", recs[1].Value)
	}
}

func TestCustomStatusLimits(t *testing.T) {
	for _, c := range []struct {
		name, body string
		status     int32
		text       string
	}{
		{"no text", `{"status":3}`, 3, ""},
		{"largest status", `{"status":2147483647,"text":""}`, 2147483647, ""},
		{"smallest status", `{"status":-2147483648}`, -2147483648, ""},
		{"100 characters", `{"status":1,"text":"` + strings.Repeat("é", 100) + `"}`, 1, strings.Repeat("é", 100)},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			if code, body := h.do("PUT", "/v1/apps/chat/users/alice/custom-status", c.body); code != http.StatusAccepted {
				t.Fatalf("%d %s", code, body)
			}
			recs := h.records(schemas.SessionsTopic)
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			var ev pb.SessionEvent
			if err := proto.Unmarshal(recs[0].Value, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.GetCustom().GetStatus() != c.status || ev.GetCustom().GetText() != c.text {
				t.Errorf("record holds %v, want status %d text %q", ev.GetCustom(), c.status, c.text)
			}
		})
	}
}

// A bad request answers 400 and writes nothing.
func TestCustomStatusInvalid(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ name, path, body string }{
		{"no status", "/v1/apps/chat/users/alice/custom-status", `{"text":"hi"}`},
		{"status over int32", "/v1/apps/chat/users/alice/custom-status", `{"status":2147483648}`},
		{"status under int32", "/v1/apps/chat/users/alice/custom-status", `{"status":-2147483649}`},
		{"fractional status", "/v1/apps/chat/users/alice/custom-status", `{"status":1.5}`},
		{"status a string", "/v1/apps/chat/users/alice/custom-status", `{"status":"busy"}`},
		{"101 characters", "/v1/apps/chat/users/alice/custom-status", `{"status":1,"text":"` + strings.Repeat("x", 101) + `"}`},
		{"control character", "/v1/apps/chat/users/alice/custom-status", `{"status":1,"text":"a\nb"}`},
		{"unknown field", "/v1/apps/chat/users/alice/custom-status", `{"status":1,"emoji":"x"}`},
		{"no body", "/v1/apps/chat/users/alice/custom-status", ``},
		{"bad app", "/v1/apps/bad%20app/users/alice/custom-status", `{"status":1}`},
		{"bad user", "/v1/apps/chat/users/" + strings.Repeat("x", 129) + "/custom-status", `{"status":1}`},
		{"bad user on clear", "/v1/apps/chat/users/" + strings.Repeat("x", 129) + "/custom-status", ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			method := "PUT"
			if strings.HasSuffix(c.name, "on clear") {
				method = "DELETE"
			}
			code, body := h.do(method, c.path, c.body)
			wantError(t, code, body, http.StatusBadRequest, "invalid")
		})
	}
	h.empty()
}
