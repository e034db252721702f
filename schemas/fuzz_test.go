package schemas

import (
	"bytes"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz tests of the decoders of untrusted input in this package: record
// keys and ids. `go test` runs their seeds; `make fuzz` explores.

// isCanonicalKey reports whether key is the canonical escaped form of its
// own components: escaping what SplitKey returns and joining it with "/"
// gives key back. Only such a key can be the key of a record Presence
// writes; any other (such as "chat/p%q/r") names the same ids as a
// canonical key it is not equal to. When schemas gets its own canonical
// check, FuzzSplitKey should assert that it agrees with this one.
func isCanonicalKey(key []byte) bool {
	return joinEscaped(SplitKey(key)) == string(key)
}

// joinEscaped is the key of components: each escaped, joined by "/".
func joinEscaped(components []string) string {
	escaped := make([]string, len(components))
	for i, c := range components {
		escaped[i] = escape(c)
	}
	return strings.Join(escaped, "/")
}

// canonicalByScan is isCanonicalKey told another way: every "%" of the key
// starts "%25" or "%2F" (the escapes escape writes, uppercase).
func canonicalByScan(key []byte) bool {
	for i, c := range key {
		if c != '%' {
			continue
		}
		if rest := key[i+1:]; !bytes.HasPrefix(rest, []byte("25")) && !bytes.HasPrefix(rest, []byte("2F")) {
			return false
		}
	}
	return true
}

// Any ids make keys that split back into them, are canonical, and
// partition by their "<app>/<user>" whatever the session.
func FuzzKeys(f *testing.F) {
	f.Add("chat", "alice", "s1")
	f.Add("chat", "a/b", "50%/x")
	f.Add("chat", "%2F", "%25/")
	f.Add("chat", "p%q", "r")
	f.Add("chat", "%2f%", "%%252F")
	f.Add("", "", "")
	f.Add("chat", "bad \xff utf-8", "\x00\x1f")
	f.Add("chat", "zoë", "☎")
	f.Fuzz(func(t *testing.T, app, user, session string) {
		for _, c := range []struct {
			key  string
			want []string
		}{
			{SessionKey(app, user, session), []string{app, user, session}},
			{FriendKey(app, user, session), []string{app, user, session}},
			{SubscriptionKey(app, user, session), []string{app, user, session}},
			{UserKey(app, user), []string{app, user}},
			{CustomStatusKey(app, user), []string{app, user}},
			{NotifyKey(session), []string{session}},
		} {
			if got := SplitKey([]byte(c.key)); !slices.Equal(got, c.want) {
				t.Fatalf("SplitKey(%q) = %q, want %q", c.key, got, c.want)
			}
			if !isCanonicalKey([]byte(c.key)) || !canonicalByScan([]byte(c.key)) {
				t.Fatalf("key %q of %q is not canonical", c.key, c.want)
			}
		}
		userKey := UserKey(app, user)
		if got := string(AppendUserKey([]byte(session), app, user)); got != session+userKey {
			t.Fatalf("AppendUserKey(%q, %q, %q) = %q, want %q", session, app, user, got, session+userKey)
		}
		sessionKey := SessionKey(app, user, session)
		if got := string(PartitionKey([]byte(sessionKey))); got != userKey {
			t.Fatalf("PartitionKey(%q) = %q, want %q", sessionKey, got, userKey)
		}
		if got := string(PartitionKey([]byte(userKey))); got != userKey {
			t.Fatalf("PartitionKey(%q) = %q, want itself", userKey, got)
		}
		for _, n := range []int{1, 3, DefaultPartitions, 1000} {
			p := Partition([]byte(sessionKey), n)
			if p < 0 || p >= n || p != Partition([]byte(userKey), n) {
				t.Fatalf("partition of %q is %d of %d, of %q %d", sessionKey, p, n, userKey, Partition([]byte(userKey), n))
			}
		}
	})
}

// Any bytes split without panicking; the key is canonical exactly when
// its "%"s are all escapes; re-escaping the components gives a canonical
// key with the same components and the same partition key.
func FuzzSplitKey(f *testing.F) {
	f.Add([]byte("chat/alice/s1"))
	f.Add([]byte("chat/p%q/r")) // the tombstone that removed a live friendship
	f.Add([]byte("chat/p%25q/r"))
	f.Add([]byte("chat/a%2fb"))
	f.Add([]byte("chat/a%2Fb%252F/%"))
	f.Add([]byte("//"))
	f.Add([]byte(""))
	f.Add([]byte("chat/\xff\xfe/%2"))
	f.Add(bytes.Repeat([]byte("a/"), 1000))
	f.Fuzz(func(t *testing.T, key []byte) {
		parts := SplitKey(key)
		if len(parts) != bytes.Count(key, []byte("/"))+1 {
			t.Fatalf("SplitKey(%q) = %d components, want one more than its %d slashes", key, len(parts), bytes.Count(key, []byte("/")))
		}
		if got, want := isCanonicalKey(key), canonicalByScan(key); got != want {
			t.Fatalf("key %q: canonical by round trip %v, by its escapes %v", key, got, want)
		}
		switch _, err := ParseKey(key, 1, len(parts)); {
		case err == nil && !isCanonicalKey(key):
			t.Fatalf("ParseKey(%q) accepted a key that is not canonical", key)
		case errors.Is(err, ErrNotCanonical) && isCanonicalKey(key):
			t.Fatalf("ParseKey(%q) called a canonical key not canonical: %v", key, err)
		}
		again := []byte(joinEscaped(parts))
		if !isCanonicalKey(again) || !slices.Equal(SplitKey(again), parts) {
			t.Fatalf("key %q: re-escaped %q splits into %q, want %q", key, again, SplitKey(again), parts)
		}
		if len(parts) >= 2 && isCanonicalKey(key) {
			if got, want := string(PartitionKey(key)), UserKey(parts[0], parts[1]); got != want {
				t.Fatalf("PartitionKey(%q) = %q, want %q", key, got, want)
			}
		}
	})
}

// Ids as path parameters: a valid app is a valid id and needs no escaping
// in a key or a URL path; errors wrap ErrInvalid and never echo more than
// a valid id's worth of the input.
func FuzzValidateIDs(f *testing.F) {
	f.Add("chat", "alice")
	f.Add("a.b_c-D9", "a/b%c")
	f.Add("chat app", "")
	f.Add("", "bad \xff utf-8")
	f.Add("chät", "tab\there")
	f.Add(strings.Repeat("a", 65), strings.Repeat("é", 65))
	f.Add(strings.Repeat("a", 1<<20), strings.Repeat("a", 1<<20)) // a 1 MB id
	f.Add("chat", "\u2028\u202e\ufeff")
	f.Fuzz(func(t *testing.T, app, id string) {
		const maxEcho = 4*MaxIDBytes + 200 // an id quoted, and the words around it
		appErr := ValidateApp(app)
		if appErr == nil {
			if escape(app) != app || url.PathEscape(app) != app {
				t.Fatalf("valid app %q changes when escaped", app)
			}
			if err := ValidateID("app", app); err != nil {
				t.Fatalf("valid app %q is not a valid id: %v", app, err)
			}
		}
		idErr := ValidateID("user", id)
		if idErr == nil {
			if id == "" || len(id) > MaxIDBytes || !utf8.ValidString(id) {
				t.Fatalf("ValidateID accepted %q", id)
			}
			if SplitKey([]byte(UserKey("chat", id)))[1] != id {
				t.Fatalf("valid id %q does not survive a key", id)
			}
		}
		for _, err := range []error{appErr, idErr} {
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if len(err.Error()) > maxEcho {
				t.Fatalf("error of %d bytes for an input of %d/%d bytes", len(err.Error()), len(app), len(id))
			}
		}
	})
}
