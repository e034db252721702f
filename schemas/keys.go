package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Keys are "/"-separated components, each escaped so that it holds no "/":
// "%" becomes "%25" and "/" becomes "%2F". Every key starts with the
// components that choose its partition; see PartitionKey.

var unescaper = strings.NewReplacer("%2F", "/", "%25", "%")

func escape(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' || s[i] == '/' {
			return string(appendEscaped(make([]byte, 0, len(s)+8), s))
		}
	}
	return s
}

// appendEscaped appends s escaped to b. It looks at each byte itself:
// strings.IndexAny took most of the time of building a lookup's keys.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			b = append(append(b, s[start:i]...), "%25"...)
			start = i + 1
		case '/':
			b = append(append(b, s[start:i]...), "%2F"...)
			start = i + 1
		}
	}
	return append(b, s[start:]...)
}

// SplitKey returns the unescaped components of a key.
func SplitKey(key []byte) []string {
	parts := strings.Split(string(key), "/")
	for i, p := range parts {
		parts[i] = unescaper.Replace(p)
	}
	return parts
}

// UserKey is "<app>/<user>": the key that partitions every record about a
// user, and the hash tag of the user's Redis keys.
func UserKey(app, user string) string {
	return escape(app) + "/" + escape(user)
}

// AppendUserKey appends UserKey(app, user) to b, for a caller that builds
// many keys into one buffer.
func AppendUserKey(b []byte, app, user string) []byte {
	b = appendEscaped(b, app)
	b = append(b, '/')
	return appendEscaped(b, user)
}

// SessionKey is "<app>/<user>/<session>", the key of a presence.sessions
// record. Compaction keeps the latest record per key, so it keeps one record
// for every session of a user, never only the user's latest.
func SessionKey(app, user, session string) string {
	return UserKey(app, user) + "/" + escape(session)
}

// AppendSessionKey appends SessionKey(app, user, session) to b.
func AppendSessionKey(b []byte, app, user, session string) []byte {
	b = append(AppendUserKey(b, app, user), '/')
	return appendEscaped(b, session)
}

// CustomStatusKey is "<app>/<user>", the key of the record on
// presence.sessions that holds the user's custom status. It never equals a
// SessionKey, which has three components.
func CustomStatusKey(app, user string) string { return UserKey(app, user) }

// PrivacyKey is "<app>/<user>//privacy", the key of the record on
// presence.sessions that holds the user's privacy setting: in the user's
// partition, so that the processor folds it in order with the user's
// sessions. It has four components, the third empty, so it never equals a
// SessionKey (three, none empty) or a CustomStatusKey (two).
func PrivacyKey(app, user string) string { return UserKey(app, user) + privacySuffix }

// AppendPrivacyKey appends PrivacyKey(app, user) to b.
func AppendPrivacyKey(b []byte, app, user string) []byte {
	return append(AppendUserKey(b, app, user), privacySuffix...)
}

const privacySuffix = "//privacy"

// ParsePrivacyKey says whether key is a privacy key (it ends in
// "//privacy"), and if so returns its app and user, checked as ParseKey
// checks "<app>/<user>": an error for a privacy key that names no valid,
// canonical user.
func ParsePrivacyKey(key []byte) (app, user string, ok bool, err error) {
	head, found := bytes.CutSuffix(key, []byte(privacySuffix))
	if !found {
		return "", "", false, nil
	}
	ids, err := ParseKey(head, 2, 2)
	if err != nil {
		return "", "", true, fmt.Errorf("privacy key %q: %w", key, err)
	}
	return ids[0], ids[1], true, nil
}

// FriendKey is "<app>/<user>/<friend>", the key of a presence.friends
// record: user's half of a friendship, in user's partition.
func FriendKey(app, user, friend string) string {
	return UserKey(app, user) + "/" + escape(friend)
}

// SubscriptionKey is "<app>/<user>/<subscriber>", the key of a
// presence.subscriptions record, in the watched user's partition.
func SubscriptionKey(app, user, subscriber string) string {
	return UserKey(app, user) + "/" + escape(subscriber)
}

// NotifyKey is the key of a presence.notify record: the id of the gateway
// that holds its recipients, escaped. Its partition is
// Partition([]byte(NotifyKey(gateway)), n).
func NotifyKey(gateway string) string { return escape(gateway) }

// PartitionKey returns the part of a record key that chooses its partition:
// the key up to its second "/" (the "<app>/<user>" of a user's records), or
// the whole key when it has fewer than two.
func PartitionKey(key []byte) []byte {
	first := bytes.IndexByte(key, '/')
	if first < 0 {
		return key
	}
	second := bytes.IndexByte(key[first+1:], '/')
	if second < 0 {
		return key
	}
	return key[:first+1+second]
}

// ErrNotCanonical is wrapped by the error of ParseKey for a key that is
// not in canonical escaped form.
var ErrNotCanonical = errors.New("key is not in canonical form")

// ParseKey returns the unescaped components of a record key about a user
// ("<app>/<user>", then further ids), checked: it has between minParts and
// maxParts components, the first a valid app id and the others valid ids,
// and it is canonical: escaping its components again gives back the key
// byte for byte. A key that is not canonical ("chat/p%q/r", "chat/a%2fb")
// names the same ids as another key, so a record under it would act on a
// key it is not compacted with; it wraps ErrNotCanonical.
func ParseKey(key []byte, minParts, maxParts int) ([]string, error) {
	parts := SplitKey(key)
	if len(parts) < minParts || len(parts) > maxParts {
		return nil, fmt.Errorf("%w key %q: %d components, want %d to %d", ErrInvalid, key, len(parts), minParts, maxParts)
	}
	errs := []error{ValidateApp(parts[0])}
	for _, id := range parts[1:] {
		errs = append(errs, ValidateID("key", id))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("key %q: %w", key, err)
	}
	canonical := escape(parts[0])
	for _, p := range parts[1:] {
		canonical += "/" + escape(p)
	}
	if canonical != string(key) {
		return nil, fmt.Errorf("%w: %w %q, canonically %q", ErrInvalid, ErrNotCanonical, key, canonical)
	}
	return parts, nil
}
