package schemas

import (
	"errors"
	"strings"
	"testing"

	"github.com/presence-im/presence/schemas/presencepb"
)

// The vectors of Kafka's own murmur2 test (clients UtilsTest), so that a
// Java producer using Utils.murmur2 partitions exactly as we do.
func TestMurmur2MatchesKafka(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(c.in))); got != c.want {
			t.Errorf("murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// The worked examples of README.md ("A worked partition computation"): a
// producer in another language checks its code against these numbers.
func TestReadmePartitionExamples(t *testing.T) {
	for _, c := range []struct {
		key, partitionKey string
		hash              int32
		partition         int
	}{
		{"chat/alice/s1", "chat/alice", -572491294, 10},
		{"chat/alice", "chat/alice", -572491294, 10},
		{"chat/bob/s3", "chat/bob", -1568141030, 6},
		{"gw-1", "gw-1", -1556871023, 9},
	} {
		if got := string(PartitionKey([]byte(c.key))); got != c.partitionKey {
			t.Errorf("PartitionKey(%q) = %q, want %q", c.key, got, c.partitionKey)
		}
		if got := int32(murmur2([]byte(c.partitionKey))); got != c.hash {
			t.Errorf("murmur2(%q) = %d, want %d", c.partitionKey, got, c.hash)
		}
		if got := Partition([]byte(c.key), 12); got != c.partition {
			t.Errorf("Partition(%q, 12) = %d, want %d", c.key, got, c.partition)
		}
	}
}

func TestKeys(t *testing.T) {
	for _, c := range []struct {
		name                string
		app, user, session  string
		wantKey, wantPrefix string
	}{
		{"plain", "chat", "alice", "s1", "chat/alice/s1", "chat/alice"},
		{"slash in user", "chat", "a/b", "s1", "chat/a%2Fb/s1", "chat/a%2Fb"},
		{"percent in session", "chat", "bob", "50%/x", "chat/bob/50%25%2Fx", "chat/bob"},
		{"unicode", "chat", "zoë", "☎", "chat/zoë/☎", "chat/zoë"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := SessionKey(c.app, c.user, c.session)
			if key != c.wantKey {
				t.Fatalf("SessionKey = %q, want %q", key, c.wantKey)
			}
			if got := string(PartitionKey([]byte(key))); got != c.wantPrefix || got != UserKey(c.app, c.user) {
				t.Fatalf("PartitionKey = %q, want %q", got, c.wantPrefix)
			}
		})
	}
}

// Two users whose names would collide without escaping get different keys.
func TestKeysDoNotCollide(t *testing.T) {
	a := SessionKey("chat", "b/c", "d")
	b := SessionKey("chat", "b", "c/d")
	if a == b {
		t.Fatalf("keys collide: %q", a)
	}
}

func TestPartitionIgnoresSession(t *testing.T) {
	const n = 12
	for _, user := range []string{"alice", "bob", "carol", "a/b", "zoë"} {
		want := Partition([]byte(UserKey("chat", user)), n)
		for _, s := range []string{"s1", "s2", "phone", "x/y"} {
			if got := Partition([]byte(SessionKey("chat", user, s)), n); got != want {
				t.Errorf("user %q session %q: partition %d, want %d", user, s, got, want)
			}
		}
	}
	if got := Partition([]byte("gw-1"), n); got < 0 || got >= n {
		t.Errorf("gateway key partition %d out of range", got)
	}
}

func TestValidateID(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"alice", true},
		{"user/with/slash", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"", false},
		{"bad\nid", false},
		{"bad\x7fid", false},
		{"\xff\xfe", false},
	} {
		err := ValidateID("user", c.id)
		if (err == nil) != c.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", c.id, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateID(%q) error does not wrap ErrInvalid: %v", c.id, err)
		}
	}
}

func TestValidateApp(t *testing.T) {
	for _, c := range []struct {
		app string
		ok  bool
	}{
		{"chat", true},
		{"my-app_2.prod", true},
		{"", false},
		{"a/b", false},
		{"spaced app", false},
		{strings.Repeat("a", 65), false},
	} {
		if err := ValidateApp(c.app); (err == nil) != c.ok {
			t.Errorf("ValidateApp(%q) = %v, want ok=%v", c.app, err, c.ok)
		}
	}
}

func TestValidateSessionEvent(t *testing.T) {
	valid := func() *presencepb.SessionEvent {
		return &presencepb.SessionEvent{
			Type: presencepb.EventType_EVENT_TYPE_CONNECT, App: "chat", User: "alice",
			Session: "s1", Device: &presencepb.Device{Type: "ios", Id: "imei-1"},
			Gateway: "gw-1", GatewayEpoch: "boot-1", TimestampMs: 1,
		}
	}
	if err := ValidateSessionEvent(valid()); err != nil {
		t.Fatalf("valid event rejected: %v", err)
	}
	for name, mutate := range map[string]func(*presencepb.SessionEvent){
		"no type":      func(e *presencepb.SessionEvent) { e.Type = 0 },
		"bad app":      func(e *presencepb.SessionEvent) { e.App = "a b" },
		"no user":      func(e *presencepb.SessionEvent) { e.User = "" },
		"no session":   func(e *presencepb.SessionEvent) { e.Session = "" },
		"no gateway":   func(e *presencepb.SessionEvent) { e.Gateway = "" },
		"no epoch":     func(e *presencepb.SessionEvent) { e.GatewayEpoch = "" },
		"no device":    func(e *presencepb.SessionEvent) { e.Device = nil },
		"no timestamp": func(e *presencepb.SessionEvent) { e.TimestampMs = 0 },
	} {
		ev := valid()
		mutate(ev)
		if err := ValidateSessionEvent(ev); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

// A connect without its device is told which field is missing and what it
// holds, not "device id" (the optional device_id).
func TestValidateSessionEventNamesTheMissingDevice(t *testing.T) {
	ev := &presencepb.SessionEvent{Type: presencepb.EventType_EVENT_TYPE_CONNECT, App: "chat", User: "alice",
		Session: "s1", Gateway: "gw-1", GatewayEpoch: "boot-1", TimestampMs: 1}
	err := ValidateSessionEvent(ev)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "the field device, the kind of client") ||
		strings.Contains(err.Error(), "device id") {
		t.Fatalf("got %v, want the field device named as required", err)
	}
	ev.Device = &presencepb.Device{Type: strings.Repeat("x", MaxIDBytes+1)}
	if err := ValidateSessionEvent(ev); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "the field device") {
		t.Fatalf("a device over %d bytes: got %v", MaxIDBytes, err)
	}
	ev.Type = presencepb.EventType_EVENT_TYPE_DISCONNECT
	if err := ValidateSessionEvent(ev); err != nil {
		t.Fatalf("a disconnect without device: %v", err)
	}
}

func TestSplitKeyUndoesEscaping(t *testing.T) {
	for _, ids := range [][]string{
		{"chat", "alice"},
		{"chat", "a/b", "50%/x"},
		{"chat", "%2F", "%25/"},
	} {
		key := UserKey(ids[0], ids[1])
		if len(ids) == 3 {
			key = FriendKey(ids[0], ids[1], ids[2])
		}
		got := SplitKey([]byte(key))
		if strings.Join(got, "|") != strings.Join(ids, "|") {
			t.Errorf("SplitKey(%q) = %q, want %q", key, got, ids)
		}
	}
}

func TestValidateCustomStatus(t *testing.T) {
	valid := func() *presencepb.SessionEvent {
		return &presencepb.SessionEvent{
			Type: presencepb.EventType_EVENT_TYPE_CUSTOM_STATUS, App: "chat", User: "alice",
			Custom: &presencepb.CustomStatus{Status: 2, Text: "in a meeting ☕"}, TimestampMs: 1,
		}
	}
	if err := ValidateSessionEvent(valid()); err != nil {
		t.Fatalf("valid custom status rejected: %v", err)
	}
	for name, mutate := range map[string]func(*presencepb.SessionEvent){
		"no custom":      func(e *presencepb.SessionEvent) { e.Custom = nil },
		"101 characters": func(e *presencepb.SessionEvent) { e.Custom.Text = strings.Repeat("é", 101) },
		"control":        func(e *presencepb.SessionEvent) { e.Custom.Text = "a\nb" },
		"bad utf-8":      func(e *presencepb.SessionEvent) { e.Custom.Text = "\xff" },
		"has session":    func(e *presencepb.SessionEvent) { e.Session = "s1" },
		"no user":        func(e *presencepb.SessionEvent) { e.User = "" },
	} {
		ev := valid()
		mutate(ev)
		if err := ValidateSessionEvent(ev); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	if err := ValidateCustomText(strings.Repeat("é", 100)); err != nil {
		t.Errorf("100 characters rejected: %v", err)
	}
}

func TestValidatePrivacy(t *testing.T) {
	valid := func() *presencepb.SessionEvent {
		return &presencepb.SessionEvent{
			Type: presencepb.EventType_EVENT_TYPE_PRIVACY, App: "chat", User: "alice",
			Privacy:     &presencepb.Privacy{Invisible: true, LastSeen: presencepb.LastSeenRule_LAST_SEEN_RULE_NOBODY},
			TimestampMs: 1,
		}
	}
	if err := ValidateSessionEvent(valid()); err != nil {
		t.Fatalf("valid privacy rejected: %v", err)
	}
	for name, mutate := range map[string]func(*presencepb.SessionEvent){
		"no setting":   func(e *presencepb.SessionEvent) { e.Privacy = nil },
		"unknown rule": func(e *presencepb.SessionEvent) { e.Privacy.LastSeen = 4 },
		"rule below":   func(e *presencepb.SessionEvent) { e.Privacy.LastSeen = -1 },
		"has session":  func(e *presencepb.SessionEvent) { e.Session = "s1" },
		"has gateway":  func(e *presencepb.SessionEvent) { e.Gateway = "gw-1" },
		"no user":      func(e *presencepb.SessionEvent) { e.User = "" },
		"no timestamp": func(e *presencepb.SessionEvent) { e.TimestampMs = 0 },
	} {
		ev := valid()
		mutate(ev)
		if err := ValidateSessionEvent(ev); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

// An activity record is a whole session (as a connect) with a known
// activity; a connect's activity, optional, must be known too.
func TestValidateActivity(t *testing.T) {
	valid := func() *presencepb.SessionEvent {
		return &presencepb.SessionEvent{
			Type: presencepb.EventType_EVENT_TYPE_ACTIVITY, App: "chat", User: "alice", Session: "s1",
			Device: &presencepb.Device{Type: "ios"}, Gateway: "gw-1", GatewayEpoch: "e1",
			Activity: presencepb.Activity_ACTIVITY_IDLE, TimestampMs: 1,
		}
	}
	if err := ValidateSessionEvent(valid()); err != nil {
		t.Fatalf("valid activity rejected: %v", err)
	}
	connect := valid()
	connect.Type = presencepb.EventType_EVENT_TYPE_CONNECT
	if err := ValidateSessionEvent(connect); err != nil {
		t.Fatalf("a connect that says idle rejected: %v", err)
	}
	for name, mutate := range map[string]func(*presencepb.SessionEvent){
		"unset":               func(e *presencepb.SessionEvent) { e.Activity = 0 },
		"unknown":             func(e *presencepb.SessionEvent) { e.Activity = 4 },
		"below":               func(e *presencepb.SessionEvent) { e.Activity = -1 },
		"no device":           func(e *presencepb.SessionEvent) { e.Device = nil },
		"no session":          func(e *presencepb.SessionEvent) { e.Session = "" },
		"no gateway":          func(e *presencepb.SessionEvent) { e.Gateway = "" },
		"a connect's unknown": func(e *presencepb.SessionEvent) { e.Type, e.Activity = presencepb.EventType_EVENT_TYPE_CONNECT, 9 },
	} {
		ev := valid()
		mutate(ev)
		if err := ValidateSessionEvent(ev); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

func TestValidateFriendsAndSubscriptions(t *testing.T) {
	if err := ValidateFriendEdge(&presencepb.FriendEdge{App: "chat", User: "a", Friend: "b", TimestampMs: 1}); err != nil {
		t.Errorf("valid friendship rejected: %v", err)
	}
	if err := ValidateFriendEdge(&presencepb.FriendEdge{App: "chat", User: "a", Friend: "a", TimestampMs: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("friend of oneself: got %v, want ErrInvalid", err)
	}
	sub := &presencepb.Subscription{App: "chat", User: "a", Subscriber: "b", ExpiresAtMs: 2, TimestampMs: 1}
	if err := ValidateSubscription(sub); err != nil {
		t.Errorf("valid subscription rejected: %v", err)
	}
	sub.ExpiresAtMs = 0
	if err := ValidateSubscription(sub); !errors.Is(err, ErrInvalid) {
		t.Errorf("subscription without expiry: got %v, want ErrInvalid", err)
	}
}
