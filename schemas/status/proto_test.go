package status

import (
	"testing"
	"time"

	pb "github.com/presence-im/presence/schemas/presencepb"
)

// TestFromProto checks that a record's UserStatus reads as the query API
// serves it: sessions oldest first, times in UTC, custom and last seen
// only when set, activity unset as active while online and null offline.
func TestFromProto(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	st := FromProto(&pb.UserStatus{User: "alice", Online: true, Version: 42,
		Custom: &pb.CustomStatus{Status: 2, Text: "away"},
		Sessions: []*pb.Session{
			{Session: "late", Device: &pb.Device{Type: "web", Id: "w1"}, Gateway: "gw", ConnectedAtMs: t0.Add(time.Minute).UnixMilli(), Activity: pb.Activity_ACTIVITY_IDLE},
			{Session: "early", Device: &pb.Device{Type: "ios", Id: "i1"}, Gateway: "gw", ConnectedAtMs: t0.UnixMilli()},
		}})
	got := string(st.AppendJSON(nil))
	want := `{"user":"alice","state":"online","sessions":[` +
		`{"session":"early","device":"ios","device_id":"i1","gateway":"gw","connected_at":"2026-12-07T10:00:00.000Z","activity":"active"},` +
		`{"session":"late","device":"web","device_id":"w1","gateway":"gw","connected_at":"2026-12-07T10:01:00.000Z","activity":"idle"}],` +
		`"custom":{"status":2,"text":"away"},"last_seen":null,"version":42,"activity":"active"}`
	if got != want {
		t.Errorf("online:\n got %s\nwant %s", got, want)
	}
	off := FromProto(&pb.UserStatus{User: "bob", LastSeenMs: t0.UnixMilli(), Version: 7})
	if got, want := string(off.AppendJSON(nil)), `{"user":"bob","state":"offline","sessions":[],"custom":null,"last_seen":"2026-12-07T10:00:00.000Z","version":7,"activity":null}`; got != want {
		t.Errorf("offline:\n got %s\nwant %s", got, want)
	}
}
