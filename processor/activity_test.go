package processor_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

func activityEv(user, session string, a pb.Activity, at time.Time) *pb.SessionEvent {
	ev := connectEv(user, session, at)
	ev.Type, ev.Activity = pb.EventType_EVENT_TYPE_ACTIVITY, a
	return ev
}

// activities is each user's state, aggregate and sessions' activity as
// the store serves them, sessions by id: `online "idle" s1=idle,s2=background`.
func activities(t *testing.T, store *redisstore.Store, users []string) map[string]string {
	t.Helper()
	got, err := store.Statuses(context.Background(), "chat", users)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i, st := range got {
		if st == nil {
			out[users[i]] = "null"
			continue
		}
		var each []string
		for _, s := range st.Sessions {
			each = append(each, s.Session+"="+string(s.Activity))
		}
		slices.Sort(each) // a session rebuilt from its activity record alone connected when it reported
		out[users[i]] = fmt.Sprintf("%s %q %s", st.State, st.Activity, strings.Join(each, ","))
	}
	return out
}

// Activity records survive compaction: a session whose key keeps only
// its activity record (its connect compacted away) is rebuilt online,
// with that activity; one that disconnected after reporting stays
// offline, with none.
func TestActivityReplayAfterCompaction(t *testing.T) {
	c, cl := newCluster(t)
	var users []string
	for i := range 40 {
		user := fmt.Sprintf("user-%d", i)
		users = append(users, user)
		produce(t, cl, connectEv(user, user+"-a", t0), connectEv(user, user+"-b", t0))
	}
	// Many produce batches, so that compaction has whole segments to
	// work on.
	for round, a := range []pb.Activity{pb.Activity_ACTIVITY_IDLE, pb.Activity_ACTIVITY_BACKGROUND, pb.Activity_ACTIVITY_IDLE} {
		for i, user := range users {
			at := t0.Add(time.Duration(round+1) * time.Minute)
			switch {
			case i%4 == 3 && round == 2:
				produce(t, cl, disconnectEv(user, user+"-a", at), disconnectEv(user, user+"-b", at))
			case i%2 == 0:
				produce(t, cl, activityEv(user, user+"-a", a, at))
			default:
				produce(t, cl, activityEv(user, user+"-a", a, at), activityEv(user, user+"-b", pb.Activity_ACTIVITY_BACKGROUND, at))
			}
		}
	}
	live := newStore(t)
	start(t, c, live, "live")
	waitCaughtUp(t, cl, live)
	want := activities(t, live, users)
	for _, w := range []string{`online "active" user-0-a=idle,user-0-b=active`, `online "idle" user-1-a=idle,user-1-b=background`, `offline "" `} {
		found := false
		for v := range maps.Values(want) {
			found = found || v == w
		}
		if !found {
			t.Fatalf("no user shows %s: %v", w, want)
		}
	}

	before := countRecords(t, cl)
	c.Compact()
	if n := countRecords(t, cl); n >= before {
		t.Fatalf("compaction removed nothing: %d records of %d", n, before)
	}
	// user-1-a's connect is gone: its key keeps its last activity only.
	var kept []pb.EventType
	for _, r := range readTopic(t, cl, schemas.SessionsTopic) {
		if string(r.Key) == schemas.SessionKey("chat", "user-1", "user-1-a") {
			var ev pb.SessionEvent
			if err := proto.Unmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			kept = append(kept, ev.Type)
		}
	}
	if !slices.Equal(kept, []pb.EventType{pb.EventType_EVENT_TYPE_ACTIVITY}) {
		t.Fatalf("user-1-a's key keeps %v after compaction, want its last activity only", kept)
	}
	rebuilt := newStore(t)
	start(t, c, rebuilt, "rebuild")
	waitCaughtUp(t, cl, rebuilt)
	if got := activities(t, rebuilt, users); !maps.Equal(got, want) {
		for _, u := range users {
			if got[u] != want[u] {
				t.Errorf("%s after compaction: %s, want %s", u, got[u], want[u])
			}
		}
	}
}

// An activity record the processor refuses (an activity out of the enum)
// under a live session's key is a dead letter and ends the session, as
// compaction will make of it; the user's other session keeps its own.
func TestRefusedActivityRecord(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	start(t, c, store, "g")
	produce(t, cl, connectEv("bob", "s1", t0), connectEv("bob", "s2", t0),
		activityEv("bob", "s2", pb.Activity_ACTIVITY_IDLE, t0.Add(time.Second)),
		activityEv("bob", "s1", 7, t0.Add(2*time.Second)))
	waitCaughtUp(t, cl, store)
	if got := activities(t, store, []string{"bob"})["bob"]; got != `online "idle" s2=idle` {
		t.Fatalf("bob: %s, want only s2, idle", got)
	}
	dead := readAll(t, c, schemas.DeadLetterTopic, 1)
	if string(dead[0].Key) != schemas.SessionKey("chat", "bob", "s1") {
		t.Errorf("dead letter of key %q, want s1's", dead[0].Key)
	}
}

// An activity report that comes after its session's disconnect (a
// gateway that sent it late, a client that retried it) brings no ghost
// back: the user stays offline, and the processor writes the disconnect
// again, so that the key's latest record, all that compaction keeps, ends
// the session; a rebuild from the compacted topic agrees.
func TestLateActivityReport(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	start(t, c, store, "g")
	produce(t, cl, connectEv("bob", "s1", t0), disconnectEv("bob", "s1", t0.Add(time.Second)),
		activityEv("bob", "s1", pb.Activity_ACTIVITY_IDLE, t0.Add(2*time.Second)))
	// The disconnect written again is the fourth record of bob's.
	key := schemas.SessionKey("chat", "bob", "s1")
	var last *kgo.Record
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		for _, r := range readTopic(t, cl, schemas.SessionsTopic) {
			if string(r.Key) == key {
				n, last = n+1, r
			}
		}
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records of %s, want 4: the disconnect written again", n, key)
		}
	}
	var ev pb.SessionEvent
	if err := proto.Unmarshal(last.Value, &ev); err != nil || ev.Type != pb.EventType_EVENT_TYPE_DISCONNECT {
		t.Fatalf("the latest record of %s: %v (%v), want a disconnect", key, &ev, err)
	}
	waitCaughtUp(t, cl, store)
	if got := activities(t, store, []string{"bob"})["bob"]; !strings.HasPrefix(got, "offline") {
		t.Fatalf("bob after a late report: %s, want offline", got)
	}
	c.Compact()
	fresh := newStore(t)
	startWith(t, c, processor.Config{Store: fresh, Group: "rebuild"})
	waitCaughtUp(t, cl, fresh)
	if got := activities(t, fresh, []string{"bob"})["bob"]; !strings.HasPrefix(got, "offline") {
		t.Fatalf("bob rebuilt from the compacted topic: %s, want offline", got)
	}
}
