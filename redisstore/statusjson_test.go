package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
)

// tricky are strings that encoding/json escapes, or that look as if it
// might: quotes, backslashes, every control character, HTML, the line and
// paragraph separators, DEL, multi-byte UTF-8, and (although ids and
// texts are valid UTF-8) invalid bytes.
var tricky = []string{
	"",
	"plain",
	`say "hi" \o/`,
	"tab\there\nnew line\r\b\f\v\x00\x01\x1f end",
	"<script>alert('x & y')</script>",
	"line\u2028sep\u2029para",
	"del\x7f",
	"héllo wörld — ☃ 日本語 😀",
	"\u2027\u202a", // next to the separators
	"bad \xff utf-8 \xe2\x80",
	strings.Repeat("ü<", 50),
	func() string { // every ASCII character
		var b strings.Builder
		for c := range 0x80 {
			b.WriteByte(byte(c))
		}
		return b.String()
	}(),
}

func TestStatusAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := redisstore.Time{Time: time.UnixMilli(1_700_000_000_389)}
	seen := redisstore.Time{Time: time.UnixMilli(1_700_000_123_004)}
	var cases []*redisstore.Status
	cases = append(cases,
		nil,
		&redisstore.Status{User: "u", State: redisstore.Offline, Sessions: []redisstore.Session{}, LastSeen: &seen, Version: 7},
		&redisstore.Status{User: "u", State: redisstore.Offline, Version: -1}, // nil sessions: null
		&redisstore.Status{User: "u", State: redisstore.Online, Custom: &redisstore.Custom{Status: -3, Text: ""}, Sessions: []redisstore.Session{
			{Session: "a", Device: "ios", DeviceID: "d", Gateway: "gw", ConnectedAt: at, Epoch: "not served"},
			{Session: "b", Device: "web", ConnectedAt: seen},
		}, Version: 1 << 62},
	)
	for _, s := range tricky {
		cases = append(cases, &redisstore.Status{
			User: s, State: s,
			Sessions: []redisstore.Session{{Session: s, Device: s, DeviceID: s, Gateway: s, ConnectedAt: at}},
			Custom:   &redisstore.Custom{Status: 42, Text: s},
			Version:  3,
		})
	}
	for i, st := range cases {
		want, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.AppendJSON([]byte("prefix")); string(got) != "prefix"+string(want) {
			t.Errorf("case %d: AppendJSON wrote\n%s\nencoding/json writes\n%s", i, got[len("prefix"):], want)
		}
	}
}

// Every character of the Basic Multilingual Plane and a few beyond, one
// at a time, escapes as encoding/json escapes it.
func TestStatusAppendJSONEveryRune(t *testing.T) {
	st := &redisstore.Status{Sessions: []redisstore.Session{}}
	for r := rune(0); r < 0x10000+512; r++ {
		st.User = "a" + string(r) + "b"
		want, _ := json.Marshal(st)
		if got := st.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("U+%04X: AppendJSON wrote %s, encoding/json writes %s", r, got, want)
		}
	}
}

// Time's JSON is the millisecond RFC 3339 layout in UTC, for any time:
// the fast path for four-digit years and the fallback for the others.
func TestTimeJSONMatchesLayout(t *testing.T) {
	const layout = "2006-01-02T15:04:05.000Z07:00"
	times := []time.Time{
		time.UnixMilli(0),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 1_500_000, time.FixedZone("x", -7*3600)),
		{},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.UnixMilli(rng.Int64N(400_000_000_000_000)-100_000_000_000_000).Add(time.Duration(rng.IntN(1e6))))
	}
	for _, tm := range times {
		want := `"` + tm.UTC().Format(layout) + `"`
		got, err := json.Marshal(redisstore.Time{Time: tm})
		if err != nil || string(got) != want {
			t.Fatalf("%v: %s, %v; want %s", tm, got, err, want)
		}
		got = (&redisstore.Status{LastSeen: &redisstore.Time{Time: tm}}).AppendJSON(nil)
		if !strings.Contains(string(got), `"last_seen":`+want+`,`) {
			t.Fatalf("%v: AppendJSON wrote %s, want last_seen %s", tm, got, want)
		}
	}
}

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

// readJSON reads s with a JSONReader and, when it takes it, checks that
// it reads what encoding/json reads from the part it took; it reports
// whether it took it.
func readJSON(t *testing.T, s string) bool {
	t.Helper()
	var r redisstore.JSONReader
	got, rest, ok := r.Read(s)
	if !ok {
		if got != nil || rest != s {
			t.Fatalf("%q: refused, but read %+v, leaving %q", s, got, rest)
		}
		return false
	}
	if !strings.HasSuffix(s, rest) {
		t.Fatalf("%q: left %q, not an end of it", s, rest)
	}
	var want *redisstore.Status
	if err := json.Unmarshal([]byte(s[:len(s)-len(rest)]), &want); err != nil {
		t.Fatalf("%q: read %+v, encoding/json refuses it: %v", s, got, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: read\n%#v\nencoding/json reads\n%#v", s, got, want)
	}
	return true
}

// What AppendJSON writes, JSONReader reads as encoding/json does (and
// gives back what was written but the unserved epoch), or leaves it to
// encoding/json: a string with an escape; anything in another form it
// leaves too.
func TestJSONReaderReadsAppendJSON(t *testing.T) {
	at := redisstore.Time{Time: time.UnixMilli(1_700_000_000_389).UTC()}
	seen := redisstore.Time{Time: time.Date(2024, 2, 29, 23, 59, 59, 999_000_000, time.UTC)}
	cases := []*redisstore.Status{
		nil,
		{User: "u", State: redisstore.Offline, Sessions: []redisstore.Session{}, LastSeen: &seen, Version: 7},
		{User: "u", State: redisstore.Offline, Version: -1},
		{User: "ü☃😀", State: redisstore.Online, Custom: &redisstore.Custom{Status: -3, Text: "héllo"}, Sessions: []redisstore.Session{
			{Session: "a", Device: "ios", DeviceID: "d", Gateway: "gw", ConnectedAt: at},
			{Session: "b", Device: "web", ConnectedAt: seen},
		}, Version: 1<<63 - 1},
		{User: "v", State: redisstore.Online, Custom: &redisstore.Custom{}, Sessions: []redisstore.Session{{}}, Version: -1 << 63},
	}
	for _, s := range tricky {
		cases = append(cases, &redisstore.Status{User: s, State: s, Custom: &redisstore.Custom{Text: s},
			Sessions: []redisstore.Session{{Session: s, Device: s, DeviceID: s, Gateway: s, ConnectedAt: at}}})
	}
	for _, st := range cases {
		b := st.AppendJSON(nil)
		escaped := strings.Contains(string(b), `\`)
		if took := readJSON(t, string(b)+",next"); took == escaped {
			t.Errorf("%s: read %v, want %v", b, took, !escaped)
		}
		if escaped {
			continue
		}
		var r redisstore.JSONReader
		got, rest, _ := r.Read(string(b) + ",next")
		if rest != ",next" {
			t.Errorf("%s: left %q", b, rest)
		}
		if st != nil && (got.User != st.User || len(got.Sessions) != len(st.Sessions) ||
			string(got.AppendJSON(nil)) != string(b)) {
			t.Errorf("read %s back as %s", b, got.AppendJSON(nil))
		}
	}

	// Other forms, which encoding/json reads (or refuses) itself.
	for _, s := range []string{
		` {"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":null,"version":1}`,
		`{"state":"offline","user":"u","sessions":null,"custom":null,"last_seen":null,"version":1}`,
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":null,"version":1,"x":1}`,
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":null,"version":1.5}`,
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":null,"version":01}`,
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":null,"version":9223372036854775808}`,
		`{"user":"u","state":"offline","sessions":null,"custom":{"status":1e2,"text":""},"last_seen":null,"version":1}`,
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":"2023-02-29T00:00:00.000Z","version":1}`,
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":"2023-02-28T24:00:00.000Z","version":1}`,
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":"2023-02-28T00:00:00.000+00:00","version":1}`,
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":"2023-02-28T00:00:00.00Z","version":1}`,
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":"2023-02-28t00:00:00.000Z","version":1}`,
		`{"user":"u","state":"online","sessions":[{"session":"s","device":"d","device_id":"","gateway":"g","connected_at":"2023-02-28T00:00:00.000Z"},],"custom":null,"last_seen":null,"version":1}`,
		`{"user":"u","state":"online","sessions":[ ],"custom":null,"last_seen":null,"version":1}`,
		"{\"user\":\"\xff\",\"state\":\"offline\",\"sessions\":null,\"custom\":null,\"last_seen\":null,\"version\":1}",
		`{"user":"u","state":"offline","sessions":null,"custom":null,"last_seen":null,"version":1`,
		`nul`,
	} {
		if readJSON(t, s) {
			t.Errorf("%s: read, want it left to encoding/json", s)
		}
	}
}

// Whatever JSONReader reads, it reads as encoding/json does.
func FuzzJSONReader(f *testing.F) {
	at := redisstore.Time{Time: time.UnixMilli(1_700_000_000_389)}
	f.Add(string((&redisstore.Status{User: "u", State: redisstore.Online, Custom: &redisstore.Custom{Status: 2, Text: "t"},
		Sessions: []redisstore.Session{{Session: "a", Device: "ios", ConnectedAt: at}, {Session: "b", ConnectedAt: at}}, Version: 9}).AppendJSON(nil)))
	f.Add(string((&redisstore.Status{User: "u", State: redisstore.Offline, Sessions: []redisstore.Session{}, LastSeen: &at, Version: 1}).AppendJSON(nil)))
	f.Add("null,")
	f.Fuzz(func(t *testing.T, s string) { readJSON(t, s) })
}

// Statuses read one after the other share chunks of memory, and none
// spills into another: each keeps its own sessions whatever a caller
// appends, across the chunks' ends.
func TestJSONReaderSharesNoSessions(t *testing.T) {
	at := redisstore.Time{Time: time.UnixMilli(1_700_000_000_389).UTC()}
	var s []byte
	var want []*redisstore.Status
	for i := range 100 {
		st := &redisstore.Status{User: fmt.Sprint("u", i), State: redisstore.Online, Version: int64(i)}
		for j := range i % 7 {
			st.Sessions = append(st.Sessions, redisstore.Session{Session: fmt.Sprint("s", i, "-", j), ConnectedAt: at})
		}
		if st.Sessions == nil {
			st.State, st.Sessions, st.LastSeen = redisstore.Offline, []redisstore.Session{}, &at
		}
		want = append(want, st)
		s = st.AppendJSON(s)
	}
	var r redisstore.JSONReader
	var got []*redisstore.Status
	for rest := string(s); rest != ""; {
		st, more, ok := r.Read(rest)
		if !ok {
			t.Fatalf("refused %.100q", rest)
		}
		got, rest = append(got, st), more
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %d statuses, not as written", len(got))
	}
	for _, st := range got {
		st.Sessions = append(st.Sessions, redisstore.Session{Session: "appended"})
	}
	for i, st := range got {
		if n := len(want[i].Sessions); len(st.Sessions) != n+1 || !reflect.DeepEqual(st.Sessions[:n], want[i].Sessions) {
			t.Errorf("%s: sessions %v after appending, want %v and one", st.User, sessionIDs(st), sessionIDs(want[i]))
		}
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

// JSONReader reads back every time AppendJSON writes in four-digit years
// as encoding/json does: every day of years around the leap rules, and
// times spread over the years 0 to 9999.
func TestJSONReaderTimes(t *testing.T) {
	var times []time.Time
	for _, year := range []int{0, 1, 4, 100, 400, 1600, 1700, 1900, 1969, 1970, 2000, 2024, 2100, 9999} {
		for d := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() == year; d = d.AddDate(0, 0, 1) {
			times = append(times, d, d.Add(24*time.Hour-time.Millisecond))
		}
	}
	for d := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 10000; d = d.Add(997*time.Hour + 7*time.Minute + 3*time.Second + 123*time.Millisecond) {
		times = append(times, d)
	}
	var r redisstore.JSONReader
	for _, tm := range times {
		st := &redisstore.Status{State: redisstore.Offline, LastSeen: &redisstore.Time{Time: tm}}
		b := string(st.AppendJSON(nil))
		got, _, ok := r.Read(b)
		var want *redisstore.Status
		if err := json.Unmarshal([]byte(b), &want); err != nil || !ok || !reflect.DeepEqual(got, want) || !got.LastSeen.Equal(tm) {
			t.Fatalf("%s: read %v (%v), encoding/json reads %v (%v)", b, got.LastSeen, ok, want.LastSeen, err)
		}
	}
}
