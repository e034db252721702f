package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/queryapi/webhook"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
)

// TestHostileRecords: records of presence.changes under a key of the app
// that are not a change of that key's user (a value that does not
// decode, another app's change, another user's, the empty user's) are
// skipped, a change
// whose body would be over MaxBody is given up, and the changes after
// them are delivered.
func TestHostileRecords(t *testing.T) {
	k := newKafka(t, 3)
	rc := newReceiver(t, func(int, string, int64) answer { return accept }, chatSecret)
	f := authtest.New(t)
	hooks(t, f, map[string][2]string{"chat": {rc.srv.URL, chatSecret}})
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	start(t, webhook.Config{Brokers: k.brokers, Webhooks: a, Registerer: reg})

	raw := func(user string, value []byte) {
		t.Helper()
		r := &kgo.Record{Topic: schemas.ChangesTopic, Key: []byte(schemas.UserKey("chat", user)), Value: value}
		if err := k.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	change := func(app, user string, version int64, sessions int) []byte {
		st := &pb.UserStatus{User: user, Online: sessions > 0, Version: version}
		for i := range sessions {
			st.Sessions = append(st.Sessions, &pb.Session{Session: fmt.Sprintf("s%d", i), Gateway: "g", ConnectedAtMs: 1})
		}
		b, err := proto.Marshal(&pb.StatusChange{App: app, Status: st, TimestampMs: time.Now().UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	raw("mallory", []byte("\xff\xff not protobuf"))
	raw("mallory", change("games", "mallory", 1, 0))
	raw("mallory", change("chat", "alice", 2, 0))
	raw("", change("chat", "", 2, 0))
	big := change("chat", "big", 3, 12000)
	raw("big", big)
	raw("alice", change("chat", "alice", 4, 1))
	raw("mallory", change("chat", "mallory", 5, 0))

	eventually(t, "the records that are not changes skipped", func() bool {
		return value(t, reg, "presence_webhook_skipped_total", map[string]string{"app": "chat"}) == 4
	})
	rc.wait("the genuine changes", all(map[string][]int64{"alice": {4}, "mallory": {5}}))
	eventually(t, "the large change given up", func() bool { return count(t, reg, "chat", "failed") == 1 })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.accepted) != 2 || len(rc.accepted["alice"]) != 1 || len(rc.accepted["mallory"]) != 1 {
		t.Errorf("accepted %v, want alice's version 4 and mallory's 5 only (the record was %d bytes)", rc.accepted, len(big))
	}
}

// TestHostileEndpoint: an endpoint that redirects is not followed (the
// change is given up after its attempts, the target hears nothing); one
// that answers 200 with an endless body is done with after a few KiB.
func TestHostileEndpoint(t *testing.T) {
	k := newKafka(t, 3)
	target := newReceiver(t, func(int, string, int64) answer { return accept }, chatSecret)
	redirect := httptest.NewServer(http.RedirectHandler(target.srv.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for {
			if _, err := w.Write(make([]byte, 64<<10)); err != nil {
				return
			}
		}
	}))
	defer endless.Close()
	f := authtest.New(t)
	hooks(t, f, map[string][2]string{"chat": {redirect.URL, chatSecret}, "games": {endless.URL, gamesSecret}})
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	start(t, webhook.Config{Brokers: k.brokers, Webhooks: a, Registerer: reg, MaxAttempts: 2, MinBackoff: time.Millisecond})
	k.change("chat", "alice", 1)
	k.change("games", "bob", 1)
	eventually(t, "the redirected change given up, the endless answer taken", func() bool {
		return count(t, reg, "chat", "failed") == 1 && count(t, reg, "games", "delivered") == 1
	})
	target.mu.Lock()
	defer target.mu.Unlock()
	if target.requests != 0 {
		t.Errorf("the redirect was followed: its target got %d requests", target.requests)
	}
}
