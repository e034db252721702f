package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
)

// The statuses of a batch share their memory, and none spills into
// another: each keeps its own sessions, in order, whatever a caller
// appends.
func TestStatusesShareNoSessions(t *testing.T) {
	s := newStore(t, time.Hour)
	apply(t, s,
		connect("u1", "b", 1, base), connect("u1", "a", 2, base), connect("u1", "c", 3, base.Add(-time.Second)),
		connect("u2", "x", 1, base),
		connect("u3", "y", 1, base), disconnect("u3", "y", 2, base.Add(time.Second)),
		connect("u4", "z", 1, base), connect("u4", "w", 2, base.Add(time.Second)),
	)
	users := []string{"u1", "u2", "nobody", "u3", "u4", "u1"}
	got, err := s.Statuses(context.Background(), "chat", users)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"u1": {"c", "a", "b"}, "u2": {"x"}, "u3": {}, "u4": {"z", "w"}}
	for i, st := range got {
		if users[i] == "nobody" {
			if st != nil {
				t.Errorf("[%d] = %+v, want nil", i, st)
			}
			continue
		}
		st.Sessions = append(st.Sessions, redisstore.Session{Session: "appended"})
	}
	for i, st := range got {
		if st == nil {
			continue
		}
		ids := sessionIDs(st)
		w := append(append([]string(nil), want[users[i]]...), "appended")
		if users[i] == "u1" { // asked twice, answered with one status
			w = append(w, "appended")
		}
		if strings.Join(ids, ",") != strings.Join(w, ",") {
			t.Errorf("[%d] %s: sessions %v, want %v", i, users[i], ids, w)
		}
	}

	// Fresh, the offline user's sessions read as [], not null.
	got, err = s.Statuses(context.Background(), "chat", []string{"u3", "u2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range got {
		b := st.AppendJSON(nil)
		want, _ := json.Marshal(st)
		if string(b) != string(want) {
			t.Errorf("%s: AppendJSON %s, encoding/json %s", st.User, b, want)
		}
	}
	if b := got[0].AppendJSON(nil); !strings.Contains(string(b), `"sessions":[],`) || got[0].LastSeen == nil {
		t.Errorf("u3: %s, want no sessions as [] and a last_seen", b)
	}
}

// Lookups into one StatusBuffer, one after the other, each answer as a
// lookup of its own: more users, fewer, repeated ones, unknown ones.
func TestStatusesIntactInto(t *testing.T) {
	s := newStore(t, time.Hour)
	apply(t, s,
		connect("u1", "b", 1, base), connect("u1", "a", 2, base.Add(-time.Second)),
		connect("u2", "x", 1, base), disconnect("u2", "x", 2, base.Add(time.Second)),
		connect("u3", "y", 1, base),
	)
	ctx := context.Background()
	var buf redisstore.StatusBuffer
	for _, users := range [][]string{
		{"u1", "u2", "u3"},
		{"nobody", "u3"},
		{"u2", "u1", "u2", "u3", "nobody", "u1"},
		{"u3", "u1", "u2", "nobody", "nobody2", "u1", "u2", "u3"},
		{"u2"},
	} {
		got, _, err := s.StatusesIntactInto(ctx, &buf, "chat", users)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := s.StatusesIntact(ctx, "chat", users)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: read into the buffer\n%s\nwant\n%s", users, statusesJSON(got), statusesJSON(want))
		}
	}

	// A user of many sessions makes the buffer hold room for them.
	if buf.Holds(4) {
		t.Fatal("the buffer holds room for more than 4 statuses or sessions after lookups of 3 users of 1 or 2 sessions")
	}
	var many []redisstore.Change
	for i := range 20 {
		many = append(many, connect("busy", fmt.Sprint("s", i), int64(i+1), base))
	}
	apply(t, s, many...)
	if got, _, err := s.StatusesIntactInto(ctx, &buf, "chat", []string{"busy"}); err != nil || len(got[0].Sessions) != 20 {
		t.Fatalf("busy: %v, %v", got, err)
	}
	if !buf.Holds(4) {
		t.Error("the buffer does not say it holds room for the 20 sessions of busy")
	}
}

// statusesJSON writes statuses one a line, for a test's failure.
func statusesJSON(statuses []*redisstore.Status) string {
	var b []byte
	for _, st := range statuses {
		b = append(st.AppendJSON(b), '\n')
	}
	return string(b)
}
