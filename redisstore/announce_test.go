package redisstore_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

func outcomes(t *testing.T, s *redisstore.Store, quiet bool, changes ...redisstore.Change) []redisstore.Outcome {
	t.Helper()
	out, err := s.Apply(context.Background(), changes, quiet)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return out
}

func markAnnounced(t *testing.T, s *redisstore.Store, user string, o redisstore.Outcome) {
	t.Helper()
	err := s.MarkAnnounced(context.Background(), []redisstore.User{{App: "chat", User: user}}, []string{o.Visible})
	if err != nil {
		t.Fatal(err)
	}
}

func custom(user string, status int, text string, version int64, at time.Time) redisstore.Change {
	return redisstore.Change{Op: redisstore.SetCustom, App: "chat", User: user, Custom: redisstore.Custom{Status: status, Text: text}, At: at, Version: version}
}

// What the audience must be told follows the visible state (devices and
// custom status), not session ids or versions.
func TestAnnounce(t *testing.T) {
	s := newStore(t, time.Hour)
	steps := []struct {
		name   string
		change redisstore.Change
		want   redisstore.Announce
	}{
		{"first connect", connect("ann", "s1", 1, base), redisstore.Now},
		{"second device", redisstore.Change{Op: redisstore.Connect, App: "chat", User: "ann", Session: "s2", Device: "web", Gateway: "gw-1", At: base, Version: 2}, redisstore.Now},
		{"custom status", custom("ann", 2, "busy", 3, base), redisstore.Now},
		{"same custom status again", custom("ann", 2, "busy", 4, base), redisstore.Nothing},
		{"second device leaves", disconnect("ann", "s2", 5, base), redisstore.Now},
		{"last device leaves", disconnect("ann", "s1", 6, base), redisstore.AfterGrace},
	}
	for _, step := range steps {
		o := outcomes(t, s, false, step.change)[0]
		if !o.Applied || o.Announce != step.want {
			t.Fatalf("%s: %+v, want applied and announce %d", step.name, o, step.want)
		}
		if o.Announce == redisstore.Now {
			markAnnounced(t, s, "ann", o)
		}
	}
	// The same device comes back within the grace period: no news.
	again := connect("ann", "s3", 7, base)
	again.DeviceID = "dev-s1"
	o := outcomes(t, s, false, again)[0]
	if o.Announce != redisstore.Nothing {
		t.Fatalf("reconnect of the same device: %+v, want nothing to announce", o)
	}
	// A duplicate changes nothing and has nothing to announce.
	if o := outcomes(t, s, false, again)[0]; o.Applied || o.Announce != redisstore.Nothing {
		t.Fatalf("duplicate: %+v", o)
	}
	// Gone for good: the check after the grace period says announce.
	outcomes(t, s, false, disconnect("ann", "s3", 8, base))
	got, err := s.Check(context.Background(), []redisstore.User{{App: "chat", User: "ann"}})
	if err != nil || got[0].Announce != redisstore.Now {
		t.Fatalf("check after going offline: %+v, %v", got, err)
	}
}

// A rebuild records the state as announced and asks for nothing.
func TestQuietApply(t *testing.T) {
	s := newStore(t, time.Hour)
	for _, o := range outcomes(t, s, true, connect("qa", "s1", 1, base), custom("qa", 1, "hi", 2, base)) {
		if o.Announce != redisstore.Nothing {
			t.Fatalf("rebuild asked to announce: %+v", o)
		}
	}
	if o := outcomes(t, s, false, custom("qa", 1, "hi", 3, base))[0]; o.Announce != redisstore.Nothing {
		t.Fatalf("after a rebuild, an unchanged state is news: %+v", o)
	}
	// The first live changes after a rebuild are judged against the state
	// the rebuild left: a device that drops and comes back within one
	// batch is no news, a new device is, until it is announced.
	back := connect("qa", "s1b", 5, base)
	back.DeviceID = "dev-s1"
	got := outcomes(t, s, false, disconnect("qa", "s1", 4, base), back)
	if got[0].Announce != redisstore.AfterGrace || got[1].Announce != redisstore.Nothing {
		t.Fatalf("drop and reconnect after a rebuild: %+v, want after grace then nothing", got)
	}
	o := outcomes(t, s, false, connect("qa", "s2", 6, base))[0]
	if o.Announce != redisstore.Now {
		t.Fatalf("new device after a rebuild: %+v, want announce now", o)
	}
	check := func() redisstore.Announce {
		got, err := s.Check(context.Background(), []redisstore.User{{App: "chat", User: "qa"}})
		if err != nil {
			t.Fatal(err)
		}
		return got[0].Announce
	}
	if a := check(); a != redisstore.Now {
		t.Fatalf("check before announcing: %d, want announce now", a)
	}
	markAnnounced(t, s, "qa", o)
	if a := check(); a != redisstore.Nothing {
		t.Fatalf("check once announced: %d, want nothing", a)
	}
	// Gone offline after a rebuild: announced after the grace period.
	outcomes(t, s, true, connect("qb", "s1", 1, base))
	if o := outcomes(t, s, false, disconnect("qb", "s1", 2, base))[0]; o.Announce != redisstore.AfterGrace {
		t.Fatalf("offline after a rebuild: %+v, want after grace", o)
	}
	if got, err := s.Check(context.Background(), []redisstore.User{{App: "chat", User: "qb"}}); err != nil || got[0].Announce != redisstore.Now {
		t.Fatalf("check after the grace period: %+v, %v", got, err)
	}
}

func TestCustomStatus(t *testing.T) {
	s := newStore(t, time.Hour)
	apply(t, s, custom("cs", 3, "on holiday ☀", 1, base))
	st := status(t, s, "cs")
	if st == nil || st.State != redisstore.Offline || st.Custom == nil || *st.Custom != (redisstore.Custom{Status: 3, Text: "on holiday ☀"}) || st.LastSeen != nil {
		t.Fatalf("custom status of a user never connected: %+v", st)
	}
	apply(t, s, connect("cs", "s1", 2, base))
	if st := status(t, s, "cs"); st.State != redisstore.Online || st.Custom == nil || st.Custom.Text != "on holiday ☀" {
		t.Fatalf("custom status kept when online: %+v", st)
	}
	apply(t, s, redisstore.Change{Op: redisstore.ClearCustom, App: "chat", User: "cs", At: base, Version: 3})
	if st := status(t, s, "cs"); st.Custom != nil {
		t.Fatalf("custom status after clearing: %+v", st.Custom)
	}
	// Cleared on a user that never connected: nothing is left to show.
	apply(t, s, custom("cs2", 1, "x", 1, base), redisstore.Change{Op: redisstore.ClearCustom, App: "chat", User: "cs2", At: base, Version: 2})
	if st := status(t, s, "cs2"); st != nil {
		t.Fatalf("user with only a cleared custom status: %+v, want nil", st)
	}
	// A custom status set while offline expires with the user.
	old := time.Now().Add(-2 * time.Hour)
	apply(t, s, custom("cs3", 1, "x", 1, old))
	if st := status(t, s, "cs3"); st != nil {
		t.Fatalf("custom status older than the offline TTL: %+v, want nil", st)
	}
}

func TestFriendsAndSubscriptions(t *testing.T) {
	s := newStore(t, time.Hour)
	ctx := context.Background()
	now := time.Now()
	err := s.ApplyFriends(ctx, redisstore.Owner{}, []redisstore.FriendChange{
		{App: "chat", User: "fa", Friend: "fb"}, {App: "chat", User: "fa", Friend: "fc"},
		{App: "chat", User: "fa", Friend: "fc", Remove: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.ApplySubscriptions(ctx, redisstore.Owner{}, []redisstore.SubscriptionChange{
		{App: "chat", User: "fa", Subscriber: "w1", ExpiresAt: now.Add(time.Hour)},
		{App: "chat", User: "fa", Subscriber: "w2", ExpiresAt: now.Add(time.Hour)},
		{App: "chat", User: "fa", Subscriber: "w2", Remove: true},
		{App: "chat", User: "fa", Subscriber: "w3", ExpiresAt: now.Add(-time.Second)},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, connect("fa", "s1", 1, base))
	aud, err := s.Audiences(ctx, []redisstore.User{{App: "chat", User: "fa"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if a := aud[0]; a.Status == nil || a.Status.State != redisstore.Online || len(a.Friends) != 1 || a.Friends[0] != "fb" || len(a.Watchers) != 1 || a.Watchers[0] != "w1" {
		t.Fatalf("audience: %+v", a)
	}
	watching, err := s.Watching(ctx, "chat", "w1", now)
	if err != nil || len(watching) != 1 || watching["fa"].UnixMilli() != now.Add(time.Hour).UnixMilli() {
		t.Fatalf("w1 watches %v, %v", watching, err)
	}
	// Later, the subscription has expired: it is neither an audience nor
	// counted for its subscriber.
	later := now.Add(2 * time.Hour)
	aud, _ = s.Audiences(ctx, []redisstore.User{{App: "chat", User: "fa"}}, later)
	watching, _ = s.Watching(ctx, "chat", "w1", later)
	if len(aud[0].Watchers) != 0 || len(watching) != 0 {
		t.Fatalf("expired subscription still live: watchers %v, watching %v", aud[0].Watchers, watching)
	}

	// Resetting the friends topic leaves sessions alone, and the other way.
	p := int32(schemas.Partition([]byte(schemas.UserKey("chat", "fa")), 4))
	if err := s.Reset(ctx, schemas.FriendsTopic, "id", 4, map[int32]int64{p: 2}); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Friends(ctx, "chat", "fa"); len(f) != 0 || status(t, s, "fa") == nil {
		t.Fatalf("after resetting friends: friends %v, status %+v", f, status(t, s, "fa"))
	}
}

// Marking a state announced after the user changed again keeps what was
// told, not what the hash shows now: the newer state is still news.
func TestMarkAnnouncedAfterAnotherChange(t *testing.T) {
	s := newStore(t, time.Hour)
	told := outcomes(t, s, false, connect("ma", "s1", 1, base))[0]
	web := connect("ma", "s2", 2, base)
	web.Device = "web"
	outcomes(t, s, false, web)
	markAnnounced(t, s, "ma", told)
	got, err := s.Check(context.Background(), []redisstore.User{{App: "chat", User: "ma"}})
	if err != nil || got[0].Announce != redisstore.Now {
		t.Fatalf("check after marking an older state announced: %+v, %v; want announce now", got, err)
	}
	markAnnounced(t, s, "ma", got[0])
	if got, _ := s.Check(context.Background(), []redisstore.User{{App: "chat", User: "ma"}}); got[0].Announce != redisstore.Nothing {
		t.Fatalf("check once the state shown is announced: %+v, want nothing", got)
	}
}

// Routes tells where each online user's sessions are, the same as
// Statuses shows them, and leaves out users with none.
func TestRoutes(t *testing.T) {
	s := newStore(t, time.Hour)
	web := connect("ro", "s2", 2, base)
	web.Gateway = "gw-2"
	apply(t, s, connect("ro", "s1", 1, base), web, connect("gone", "g1", 1, base), disconnect("gone", "g1", 2, base))
	got, err := s.Routes(context.Background(), "chat", []string{"ro", "gone", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	routes := got["ro"]
	slices.SortFunc(routes, func(a, b redisstore.Route) int { return strings.Compare(a.Session, b.Session) })
	want := []redisstore.Route{{Session: "s1", Gateway: "gw-1"}, {Session: "s2", Gateway: "gw-2"}}
	if len(got) != 1 || !slices.Equal(routes, want) {
		t.Fatalf("routes: %v, want only ro's %v", got, want)
	}
	var fromStatus []redisstore.Route
	for _, sess := range status(t, s, "ro").Sessions {
		fromStatus = append(fromStatus, redisstore.Route{Session: sess.Session, Gateway: sess.Gateway})
	}
	slices.SortFunc(fromStatus, func(a, b redisstore.Route) int { return strings.Compare(a.Session, b.Session) })
	if !slices.Equal(fromStatus, want) {
		t.Fatalf("Statuses shows %v, Routes %v", fromStatus, want)
	}
	if other, err := s.Routes(context.Background(), "other", []string{"ro"}); err != nil || len(other) != 0 {
		t.Fatalf("another app: %v, %v", other, err)
	}
}

// Routes reads the same routes whichever protocol the client speaks
// (RESP3 maps, RESP2 arrays, walked raw), skips every field but the
// sessions whatever they hold, and fails on a key that is not a hash with
// Redis's own error rather than reading it as a user with no session.
func TestRoutesOverEitherProtocol(t *testing.T) {
	users := []string{"r1", "r2", "nobody", "r3"}
	overEitherProtocol(t, "r4", func(protocol int, s *redisstore.Store) string {
		if protocol == 3 {
			web := connect("r1", "b", 2, base)
			web.Gateway = "gw-2"
			apply(t, s, connect("r1", "a", 1, base), web, connect("r2", "x", 1, base), disconnect("r2", "x", 2, base),
				connect("r3", "y", 1, base))
			apply(t, s, redisstore.Change{Op: redisstore.SetCustom, App: "chat", User: "r3",
				Custom: redisstore.Custom{Status: 2, Text: "s\r\n$3\r\nb"}, At: base, Version: 2})
		}
		got, err := s.Routes(context.Background(), "chat", users)
		if err != nil {
			t.Fatalf("resp%d: %v", protocol, err)
		}
		for _, routes := range got {
			slices.SortFunc(routes, func(a, b redisstore.Route) int { return strings.Compare(a.Session, b.Session) })
		}
		want := map[string][]redisstore.Route{
			"r1": {{Session: "a", Gateway: "gw-1"}, {Session: "b", Gateway: "gw-2"}},
			"r3": {{Session: "y", Gateway: "gw-1"}},
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("resp%d: routes %v, want %v", protocol, got, want)
		}
		return fmt.Sprint(got)
	}, func(s *redisstore.Store, users []string) error {
		_, err := s.Routes(context.Background(), "chat", append([]string{"r1"}, users...))
		return err
	})
}
