package redisstore

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// respHash is the reply of an HGETALL of h as Redis writes it: a RESP3
// map, or with resp2 an array, of bulk strings.
func respHash(h map[string]string, resp2 bool) []byte {
	b := []byte("%" + strconv.Itoa(len(h)) + "\r\n")
	if resp2 {
		b = []byte("*" + strconv.Itoa(2*len(h)) + "\r\n")
	}
	for _, f := range slices.Sorted(maps.Keys(h)) {
		for _, s := range []string{f, h[f]} {
			b = append(b, "$"+strconv.Itoa(len(s))+"\r\n"+s+"\r\n"...)
		}
	}
	return b
}

// decodedJSON is a status as the query API writes it, and the epochs of
// its sessions, which it does not write.
func decodedJSON(st *Status) string {
	if st == nil {
		return "null"
	}
	s := string(st.AppendJSON(nil))
	for _, sess := range st.Sessions {
		s += " epoch=" + sess.Epoch
	}
	return s
}

// A raw HGETALL reply, over RESP3 or RESP2, decodes to the status the
// map go-redis would have made of it decodes to; one that is not a hash
// is left to the ordinary read; neither panics.
func TestDecodeReplyMatchesMap(t *testing.T) {
	hashes := map[string]map[string]string{
		"online": {"v": "12", "a": "=", "ss1": "ios\x1fd1\x1fgw-1\x1f1700000000123\x1fep",
			"ss0": "web\x1f\x1fgw-2\x1f1700000000000\x1fep2", "c": "3\x1fin a\r\nmeeting $5\r\n"},
		"offline":  {"v": "7", "l": "1700000001000", "a": "x"},
		"unknown":  {},
		"odd text": {"v": "1", "s\r\n": "a\r\n$3\r\nb\x1f\x1fg\x1f5\x1f", "": "empty field", "z": ""},
	}
	for name, h := range hashes {
		want, err := decodeStatus("u", h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, resp2 := range []bool{false, true} {
			var b statusBatch
			got, ok, err := b.decodeReply("u", string(respHash(h, resp2)))
			if err != nil || !ok {
				t.Fatalf("%s (resp2 %v): ok %v, %v", name, resp2, ok, err)
			}
			if decodedJSON(got) != decodedJSON(want) {
				t.Errorf("%s (resp2 %v): %s, want %s", name, resp2, decodedJSON(got), decodedJSON(want))
			}
		}
	}

	for _, raw := range []string{
		"-MOVED 3999 127.0.0.1:6381\r\n",
		"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
		"!21\r\nSYNTAX invalid syntax\r\n",
		"_\r\n", "$-1\r\n", "*-1\r\n", "%-1\r\n", "", "%", "%1", "*3\r\n",
		"%1\r\n+",                                        // a simple string without its end
		"%1\r\n$1\r\nv\r\n",                              // a field without its value
		"%1\r\n$1\r\nv\r\n$2\r\n1\r\n",                   // a value shorter than said
		"%1\r\n$1\r\nv\r\n$1\r\n1\r\nX",                  // bytes after the reply
		"%1\r\n$1\r\nv\r\n$9223372036854775807\r\n1\r\n", // a length that overflows
		"%1\r\n$1\r\nv\r\n:1\r\n",                        // an integer
		"|1\r\n+a\r\n+b\r\n%0\r\n",                       // an attribute first
		"%2\r\n$1\r\nv\r\n$1\r\n1\r\n",                   // fewer fields than said
	} {
		var b statusBatch
		st, ok, err := b.decodeReply("u", raw)
		if ok || err != nil || st != nil {
			t.Errorf("%q: %v, ok %v, %v; want it left to the ordinary read", raw, st, ok, err)
		}
		if len(b.sessions) != 0 || len(b.statuses) != 0 {
			t.Errorf("%q: left %d sessions and %d statuses in the batch", raw, len(b.sessions), len(b.statuses))
		}
	}

	var b statusBatch
	if _, _, err := b.decodeReply("u", string(respHash(map[string]string{"v": "x"}, false))); err == nil || !strings.Contains(err.Error(), `version of "u"`) {
		t.Errorf("a version that is not a number: %v, want an error naming the user", err)
	}
}

// Any reply decodes without panicking, and any hash decodes from its raw
// reply to what it decodes to from go-redis's map. `go test` runs the
// seeds; `make fuzz` explores.
func FuzzDecodeReply(f *testing.F) {
	f.Add("v\x0012\x00ss1\x00ios\x1fd1\x1fgw\x1f1700000000123\x1fep\x00c\x003\x1fbusy", []byte("%1\r\n$1\r\nv\r\n$1\r\n1\r\n"))
	f.Add("v\x001\x00l\x001700000001000\x00a\x00=", []byte("*2\r\n+v\r\n$2\r\n12\r\n"))
	f.Add("s\r\n\x00\r\n$1\r\n\x00\x00", []byte("%1\r\n$-5\r\n"))
	f.Fuzz(func(t *testing.T, fields string, raw []byte) {
		var b statusBatch
		if st, ok, err := b.decodeReply("u", string(raw)); ok && err == nil && st != nil {
			_ = st.AppendJSON(nil)
		}
		parts := strings.Split(fields, "\x00")
		h := make(map[string]string)
		for i := 0; i+1 < len(parts); i += 2 {
			h[parts[i]] = parts[i+1]
		}
		want, wantErr := decodeStatus("u", h)
		for _, resp2 := range []bool{false, true} {
			var b statusBatch
			got, ok, err := b.decodeReply("u", string(respHash(h, resp2)))
			if !ok && err == nil {
				t.Fatalf("%q (resp2 %v): not read as a hash", respHash(h, resp2), resp2)
			}
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("%q (resp2 %v): error %v, from the map %v", respHash(h, resp2), resp2, err, wantErr)
			}
			if err == nil && decodedJSON(got) != decodedJSON(want) {
				t.Fatalf("%q (resp2 %v): %s, from the map %s", respHash(h, resp2), resp2, decodedJSON(got), decodedJSON(want))
			}
		}
	})
}

// distinctUsers finds every repeat, whether its table or its map looks
// (more than maxProbed users), and keeps the order of first sight.
func TestDistinctUsers(t *testing.T) {
	many := func(n int, repeat bool) []string {
		users := make([]string, n)
		for i := range users {
			users[i] = "u" + strconv.Itoa(i)
		}
		if repeat {
			users[n-1] = users[n/2]
		}
		return users
	}
	for _, users := range [][]string{
		{}, {"a"}, {"a", "b"}, {"a", "a"}, {"a", "b", "a", "c", "b"}, {"", "x", ""},
		many(500, false), many(500, true), many(maxProbed, false), many(maxProbed, true),
		many(maxProbed+1, false), many(maxProbed+1, true),
	} {
		distinct, at := distinctUsers(users)
		var want []string
		for _, u := range users {
			if !slices.Contains(want, u) {
				want = append(want, u)
			}
		}
		if !slices.Equal(distinct, want) && !(len(want) == 0 && len(distinct) == 0) {
			t.Fatalf("%d users: distinct %.40q, want %.40q", len(users), distinct, want)
		}
		if (at == nil) != (len(want) == len(users)) {
			t.Fatalf("%d users, %d distinct: at %v", len(users), len(want), at != nil)
		}
		for i, j := range at {
			if distinct[j] != users[i] {
				t.Fatalf("at[%d] = %d: %q, want %q", i, j, distinct[j], users[i])
			}
		}
	}
}

func BenchmarkDistinctUsers(b *testing.B) {
	users := make([]string, 500)
	for i := range users {
		users[i] = "q-" + strconv.Itoa(1_000_000+i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, at := distinctUsers(users); at != nil {
			b.Fatal("repeats found")
		}
	}
}
