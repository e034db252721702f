package schemas

import (
	"bytes"
	"strings"
)

// Keys are "/"-separated components, each escaped so that it holds no "/":
// "%" becomes "%25" and "/" becomes "%2F". Every key starts with the
// components that choose its partition; see PartitionKey.

var escaper = strings.NewReplacer("%", "%25", "/", "%2F")

func escape(s string) string { return escaper.Replace(s) }

// UserKey is "<app>/<user>": the key that partitions every record about a
// user, and the hash tag of the user's Redis keys.
func UserKey(app, user string) string {
	return escape(app) + "/" + escape(user)
}

// SessionKey is "<app>/<user>/<session>", the key of a presence.sessions
// record. Compaction keeps the latest record per key, so it keeps one record
// for every session of a user, never only the user's latest.
func SessionKey(app, user, session string) string {
	return UserKey(app, user) + "/" + escape(session)
}

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
