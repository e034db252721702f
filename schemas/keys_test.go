package schemas

import (
	"errors"
	"strings"
	"testing"
)

// ParseKey accepts the keys the schemas write and refuses every other
// spelling of them: a key that names the same ids in another form would be
// compacted apart from the real one.
func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		key       string
		want      []string // nil: refused
		canonical bool     // refused for its form (ErrNotCanonical)
	}{
		{key: UserKey("chat", "alice"), want: []string{"chat", "alice"}},
		{key: FriendKey("chat", "a/b", "50%/x"), want: []string{"chat", "a/b", "50%/x"}},
		{key: FriendKey("chat", "p%q", "r"), want: []string{"chat", "p%q", "r"}},
		{key: SessionKey("chat", "%2F", "%25/"), want: []string{"chat", "%2F", "%25/"}},
		{key: "chat/p%q/r", canonical: true},   // "%" not escaped
		{key: "chat/a%2fb/r", canonical: true}, // lower-case escape
		{key: "chat/a%2Fb%/r", canonical: true},
		{key: "chat/a%41/r", canonical: true}, // an escape the schemas never write
		{key: "chat"},                         // too few components
		{key: "chat/a/b/c"},                   // too many
		{key: "chat//r"},                      // an empty id
		{key: "chat/alice/"},                  // an empty id at the end
		{key: "ch at/alice/r"},                // not an app id
		{key: "chat/al\x00ice/r"},             // a control character
		{key: "chat/" + strings.Repeat("a", MaxIDBytes+1) + "/r"},
	} {
		got, err := ParseKey([]byte(tc.key), 2, 3)
		switch {
		case tc.want != nil && err != nil:
			t.Errorf("ParseKey(%q): %v, want %q", tc.key, err, tc.want)
		case tc.want != nil && strings.Join(got, "|") != strings.Join(tc.want, "|"):
			t.Errorf("ParseKey(%q) = %q, want %q", tc.key, got, tc.want)
		case tc.want == nil && !errors.Is(err, ErrInvalid):
			t.Errorf("ParseKey(%q) = %q, %v; want an error wrapping ErrInvalid", tc.key, got, err)
		case tc.want == nil && errors.Is(err, ErrNotCanonical) != tc.canonical:
			t.Errorf("ParseKey(%q): %v; wraps ErrNotCanonical: %v, want %v", tc.key, err, !tc.canonical, tc.canonical)
		}
	}
}

// ParsePrivacyKey takes back the keys PrivacyKey writes, refuses a
// privacy suffix on anything but a canonical user, and leaves every other
// key (a session's, a custom status's) to ParseKey.
func TestParsePrivacyKey(t *testing.T) {
	for _, tc := range []struct {
		key        string
		app, user  string
		ok, wantOK bool
	}{
		{key: PrivacyKey("chat", "alice"), app: "chat", user: "alice", ok: true, wantOK: true},
		{key: PrivacyKey("chat", "a/b%"), app: "chat", user: "a/b%", ok: true, wantOK: true},
		{key: SessionKey("chat", "alice", "privacy")},
		{key: CustomStatusKey("chat", "alice")},
		{key: "chat//privacy", ok: true},        // no user
		{key: "chat/p%q//privacy", ok: true},    // not canonical
		{key: "chat/a/b//privacy", ok: true},    // a session's key with the suffix
		{key: "ch at/alice//privacy", ok: true}, // not an app id
	} {
		app, user, ok, err := ParsePrivacyKey([]byte(tc.key))
		switch {
		case ok != tc.ok:
			t.Errorf("ParsePrivacyKey(%q): ok %v, want %v", tc.key, ok, tc.ok)
		case tc.wantOK && (err != nil || app != tc.app || user != tc.user):
			t.Errorf("ParsePrivacyKey(%q) = %q, %q, %v; want %q, %q", tc.key, app, user, err, tc.app, tc.user)
		case ok && !tc.wantOK && !errors.Is(err, ErrInvalid):
			t.Errorf("ParsePrivacyKey(%q) = %q, %q, %v; want an error wrapping ErrInvalid", tc.key, app, user, err)
		}
	}
	if PartitionKey([]byte(PrivacyKey("chat", "alice"))) == nil ||
		string(PartitionKey([]byte(PrivacyKey("chat", "alice")))) != UserKey("chat", "alice") {
		t.Errorf("a privacy key is not in its user's partition")
	}
	if got := string(AppendPrivacyKey([]byte("x"), "chat", "a/b")); got != "x"+PrivacyKey("chat", "a/b") {
		t.Errorf("AppendPrivacyKey = %q", got)
	}
}
