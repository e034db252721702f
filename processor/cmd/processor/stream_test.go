package main

// The records the fault tests produce, and the state they must leave in
// Redis (the model).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/status"
)

// stream generates the records of users of one app connecting and
// disconnecting devices, setting and clearing custom statuses, making and
// ending friendships and subscribing to each other, in a random but
// reproducible order. Record times are close to now, so nobody expires.
type stream struct {
	rng     *rand.Rand
	users   []string
	t0      time.Time
	n       int                         // records generated
	live    map[string]*pb.SessionEvent // connect of the session live on each "user/device"
	friends map[[2]string]bool          // friendships, the smaller user first
	watched map[[2]string]bool          // subscriptions: user, subscriber
}

var (
	devices  = []string{"ios", "android", "web"}
	gateways = []string{"gw-0", "gw-1", "gw-2"}
)

func newStream(rng *rand.Rand) *stream {
	g := &stream{rng: rng, t0: time.Now().Add(-time.Hour).Truncate(time.Millisecond),
		live: map[string]*pb.SessionEvent{}, friends: map[[2]string]bool{}, watched: map[[2]string]bool{}}
	for i := range 200 {
		g.users = append(g.users, fmt.Sprintf("user-%03d", i))
	}
	return g
}

// heartbeats renew the leases of the gateways for a day, so that the
// processor ends none of their sessions as lost. Produce them before the
// processor starts: it reads them before judging leases.
func (g *stream) heartbeats() []*kgo.Record {
	var recs []*kgo.Record
	for _, gw := range gateways {
		recs = append(recs, record(schemas.GatewaysTopic, gw, &pb.GatewayHeartbeat{Gateway: gw, Epoch: "e1",
			LeaseMs: (24 * time.Hour).Milliseconds(), TimestampMs: time.Now().UnixMilli()}))
	}
	return recs
}

// next returns at least n more records.
func (g *stream) next(n int) []*kgo.Record {
	var recs []*kgo.Record
	for len(recs) < n {
		user := g.users[g.rng.IntN(len(g.users))]
		other := g.users[g.rng.IntN(len(g.users))]
		at := g.t0.Add(time.Duration(g.n) * time.Millisecond).UnixMilli()
		g.n++
		switch dice := g.rng.IntN(100); {
		case dice < 55:
			recs = append(recs, g.session(user, at))
		case dice < 70:
			recs = append(recs, g.customStatus(user, at))
		case user == other:
		case dice < 88:
			recs = append(recs, g.friendship(user, other, at)...)
		default:
			recs = append(recs, g.subscription(user, other, at))
		}
	}
	return recs
}

// session connects a device of user, or disconnects it when it is live.
func (g *stream) session(user string, at int64) *kgo.Record {
	device := devices[g.rng.IntN(len(devices))]
	slot := user + "/" + device
	var ev *pb.SessionEvent
	if connect, ok := g.live[slot]; ok {
		ev = &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_DISCONNECT, App: app, User: user, Session: connect.Session,
			Gateway: connect.Gateway, GatewayEpoch: "e1", TimestampMs: at, Reason: pb.DisconnectReason_DISCONNECT_REASON_CLIENT_CLOSED}
		delete(g.live, slot)
	} else {
		ev = &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CONNECT, App: app, User: user, Session: fmt.Sprintf("%s-%d", user, g.n),
			Device: &pb.Device{Type: device, Id: "id-" + slot}, Gateway: gateways[g.rng.IntN(len(gateways))], GatewayEpoch: "e1", TimestampMs: at}
		g.live[slot] = ev
	}
	return record(schemas.SessionsTopic, schemas.SessionKey(app, user, ev.Session), ev)
}

// customStatus sets the custom status of user, or clears it.
func (g *stream) customStatus(user string, at int64) *kgo.Record {
	key := schemas.CustomStatusKey(app, user)
	if g.rng.IntN(3) == 0 {
		return record(schemas.SessionsTopic, key, nil)
	}
	code := g.rng.IntN(5)
	return record(schemas.SessionsTopic, key, &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CUSTOM_STATUS, App: app, User: user,
		Custom: &pb.CustomStatus{Status: int32(code), Text: fmt.Sprintf("status %d of %s", code, user)}, TimestampMs: at})
}

// friendship makes a and b friends, both halves, or ends it.
func (g *stream) friendship(a, b string, at int64) []*kgo.Record {
	pair := [2]string{min(a, b), max(a, b)}
	g.friends[pair] = !g.friends[pair]
	if !g.friends[pair] {
		return []*kgo.Record{record(schemas.FriendsTopic, schemas.FriendKey(app, a, b), nil), record(schemas.FriendsTopic, schemas.FriendKey(app, b, a), nil)}
	}
	return []*kgo.Record{
		record(schemas.FriendsTopic, schemas.FriendKey(app, a, b), &pb.FriendEdge{App: app, User: a, Friend: b, TimestampMs: at}),
		record(schemas.FriendsTopic, schemas.FriendKey(app, b, a), &pb.FriendEdge{App: app, User: b, Friend: a, TimestampMs: at}),
	}
}

// subscription subscribes subscriber to user for a day or more, or ends
// the subscription.
func (g *stream) subscription(user, subscriber string, at int64) *kgo.Record {
	key := schemas.SubscriptionKey(app, user, subscriber)
	pair := [2]string{user, subscriber}
	if g.watched[pair] && g.rng.IntN(3) == 0 {
		delete(g.watched, pair)
		return record(schemas.SubscriptionsTopic, key, nil)
	}
	g.watched[pair] = true
	expires := time.Now().Add(24*time.Hour + time.Duration(g.rng.IntN(600))*time.Minute)
	return record(schemas.SubscriptionsTopic, key, &pb.Subscription{App: app, User: user, Subscriber: subscriber,
		ExpiresAtMs: expires.UnixMilli(), TimestampMs: at})
}

// record is a record of topic; a nil value makes a tombstone.
func record(topic, key string, value proto.Message) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: []byte(key)}
	if value != nil {
		b, err := proto.Marshal(value)
		if err != nil {
			panic(err)
		}
		r.Value = b
	}
	return r
}

// state is what Redis must hold of the users of app.
type state struct {
	statuses map[string]*redisstore.Status
	friends  map[string][]string             // sorted
	watchers map[string][]string             // sorted
	watching map[string]map[string]time.Time // by subscriber, then user
	// history lists the records of each user's status, for failures.
	history map[string][]string
}

// model computes the state the produced records make, reading each key's
// records in offset order: the version of a status is the offset of the
// user's latest record, a user who goes offline is last seen at the time
// of the disconnect that ended the last session, and a user with neither
// session, last seen nor custom status is unknown.
func model(produced []*kgo.Record) state {
	recs := slices.Clone(produced)
	slices.SortStableFunc(recs, func(a, b *kgo.Record) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	st := state{statuses: map[string]*redisstore.Status{}, friends: map[string][]string{}, watchers: map[string][]string{}, watching: map[string]map[string]time.Time{}, history: map[string][]string{}}
	friends := map[[2]string]bool{}
	watches := map[[2]string]time.Time{}
	for _, r := range recs {
		ids := schemas.SplitKey(r.Key)
		switch r.Topic {
		case schemas.SessionsTopic:
			st.history[ids[1]] = append(st.history[ids[1]], applySession(st.statuses, ids[1], r))
		case schemas.FriendsTopic:
			friends[[2]string{ids[1], ids[2]}] = r.Value != nil
		case schemas.SubscriptionsTopic:
			pair := [2]string{ids[1], ids[2]}
			if r.Value == nil {
				delete(watches, pair)
				continue
			}
			var s pb.Subscription
			mustUnmarshal(r.Value, &s)
			watches[pair] = time.UnixMilli(s.ExpiresAtMs)
		}
	}
	for pair, ok := range friends {
		if ok {
			st.friends[pair[0]] = append(st.friends[pair[0]], pair[1])
		}
	}
	for pair, expires := range watches {
		user, subscriber := pair[0], pair[1]
		st.watchers[user] = append(st.watchers[user], subscriber)
		if st.watching[subscriber] == nil {
			st.watching[subscriber] = map[string]time.Time{}
		}
		st.watching[subscriber][user] = expires
	}
	for _, list := range []map[string][]string{st.friends, st.watchers} {
		for _, l := range list {
			slices.Sort(l)
		}
	}
	for _, s := range st.statuses {
		s.State = redisstore.Offline
		if len(s.Sessions) > 0 {
			s.State, s.Activity = redisstore.Online, status.Active
		}
		slices.SortFunc(s.Sessions, func(a, b redisstore.Session) int {
			return cmp.Or(a.ConnectedAt.Compare(b.ConnectedAt.Time), cmp.Compare(a.Session, b.Session))
		})
	}
	return st
}

// applySession applies a record of presence.sessions to the status of
// user, and describes it.
func applySession(statuses map[string]*redisstore.Status, user string, r *kgo.Record) string {
	s := statuses[user]
	if s == nil {
		s = &redisstore.Status{User: user, Sessions: []redisstore.Session{}}
		statuses[user] = s
	}
	s.Version = r.Offset
	if r.Value == nil { // the custom status cleared
		s.Custom = nil
		if len(s.Sessions) == 0 && s.LastSeen == nil {
			delete(statuses, user)
		}
		return fmt.Sprintf("%d/%d clear custom", r.Partition, r.Offset)
	}
	var ev pb.SessionEvent
	mustUnmarshal(r.Value, &ev)
	at := redisstore.Time{Time: time.UnixMilli(ev.TimestampMs).UTC()}
	s.Sessions = slices.DeleteFunc(s.Sessions, func(x redisstore.Session) bool { return x.Session == ev.Session })
	switch ev.Type {
	case pb.EventType_EVENT_TYPE_CONNECT:
		s.Sessions = append(s.Sessions, redisstore.Session{Session: ev.Session, Device: ev.Device.Type,
			DeviceID: ev.Device.Id, Gateway: ev.Gateway, ConnectedAt: at, Activity: status.Active})
		s.LastSeen = nil
	case pb.EventType_EVENT_TYPE_DISCONNECT:
		if len(s.Sessions) == 0 {
			s.LastSeen = &at
		}
	case pb.EventType_EVENT_TYPE_CUSTOM_STATUS:
		s.Custom = &redisstore.Custom{Status: int(ev.Custom.Status), Text: ev.Custom.Text}
	}
	return fmt.Sprintf("%d/%d %s %s", r.Partition, r.Offset, strings.TrimPrefix(ev.Type.String(), "EVENT_TYPE_"), ev.Session)
}

func mustUnmarshal(b []byte, m proto.Message) {
	if err := proto.Unmarshal(b, m); err != nil {
		panic(err)
	}
}

// requireModel compares what Redis holds of users with want: the status
// the query API serves, the friends and live subscribers a change is
// told to, and the subscriptions of each subscriber.
func requireModel(t *testing.T, store *redisstore.Store, users []string, want state) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	statuses, err := store.Statuses(ctx, app, users)
	if err != nil {
		t.Fatal(err)
	}
	audience := make([]redisstore.User, len(users))
	for i, u := range users {
		audience[i] = redisstore.User{App: app, User: u}
	}
	audiences, err := store.Audiences(ctx, audience, now)
	if err != nil {
		t.Fatal(err)
	}
	var diffs []string
	diff := func(what string, got, want any, records ...string) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			d := fmt.Sprintf("%s:\n  got  %s\n  want %s", what, g, w)
			if len(records) > 0 {
				d += "\n  from the records " + strings.Join(records, ", ")
			}
			diffs = append(diffs, d)
		}
	}
	var online, offline, custom, friends, watched int
	for i, u := range users {
		diff("status of "+u, statuses[i], want.statuses[u], want.history[u]...)
		diff("friends of "+u, sorted(audiences[i].Friends), want.friends[u])
		diff("watchers of "+u, sorted(audiences[i].Watchers), want.watchers[u])
		watching, err := store.Watching(ctx, app, u, now)
		if err != nil {
			t.Fatal(err)
		}
		diff("subscriptions of "+u, millis(watching), millis(want.watching[u]))
		if s := want.statuses[u]; s != nil {
			online += len(s.Sessions)
			offline += boolInt(s.LastSeen != nil)
			custom += boolInt(s.Custom != nil)
		}
		friends += len(want.friends[u])
		watched += len(want.watchers[u])
	}
	if online == 0 || offline == 0 || custom == 0 || friends == 0 || watched == 0 {
		t.Fatalf("the stream makes too little state to compare: %d sessions, %d users last seen, %d custom statuses, %d friendships, %d subscriptions",
			online, offline, custom, friends, watched)
	}
	t.Logf("compared %d users: %d sessions, %d users last seen, %d custom statuses, %d friendship halves, %d subscriptions",
		len(users), online, offline, custom, friends, watched)
	if len(diffs) > 0 {
		t.Fatalf("redis differs from the records for %d items; the first ones:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
	}
}

// sorted returns l sorted, nil when empty, as the model has it.
func sorted(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return slices.Sorted(slices.Values(l))
}

// millis returns the expiries of m in Unix milliseconds, nil when empty.
func millis(m map[string]time.Time) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v.UnixMilli()
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
