package status_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/schemas/status"
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
	at := status.Time{Time: time.UnixMilli(1_700_000_000_389)}
	seen := status.Time{Time: time.UnixMilli(1_700_000_123_004)}
	var cases []*status.Status
	cases = append(cases,
		nil,
		&status.Status{User: "u", State: status.Offline, Sessions: []status.Session{}, LastSeen: &seen, Version: 7},
		&status.Status{User: "u", State: status.Offline, Version: -1}, // nil sessions: null
		&status.Status{User: "u", State: status.Online, Custom: &status.Custom{Status: -3, Text: ""}, Sessions: []status.Session{
			{Session: "a", Device: "ios", DeviceID: "d", Gateway: "gw", ConnectedAt: at, Epoch: "not served", Activity: status.Idle},
			{Session: "b", Device: "web", ConnectedAt: seen, Activity: status.Background},
		}, Version: 1 << 62, Activity: status.Idle},
	)
	for _, s := range tricky {
		cases = append(cases, &status.Status{
			User: s, State: s,
			Sessions: []status.Session{{Session: s, Device: s, DeviceID: s, Gateway: s, ConnectedAt: at}},
			Custom:   &status.Custom{Status: 42, Text: s},
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
	st := &status.Status{Sessions: []status.Session{}}
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
		got, err := json.Marshal(status.Time{Time: tm})
		if err != nil || string(got) != want {
			t.Fatalf("%v: %s, %v; want %s", tm, got, err, want)
		}
		got = (&status.Status{LastSeen: &status.Time{Time: tm}}).AppendJSON(nil)
		if !strings.Contains(string(got), `"last_seen":`+want+`,`) {
			t.Fatalf("%v: AppendJSON wrote %s, want last_seen %s", tm, got, want)
		}
	}
}

// readJSON reads s with a JSONReader and, when it takes it, checks that
// it reads what encoding/json reads from the part it took; it reports
// whether it took it.
func readJSON(t *testing.T, s string) bool {
	t.Helper()
	var r status.JSONReader
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
	var want *status.Status
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
	at := status.Time{Time: time.UnixMilli(1_700_000_000_389).UTC()}
	seen := status.Time{Time: time.Date(2024, 2, 29, 23, 59, 59, 999_000_000, time.UTC)}
	cases := []*status.Status{
		nil,
		{User: "u", State: status.Offline, Sessions: []status.Session{}, LastSeen: &seen, Version: 7},
		{User: "u", State: status.Offline, Version: -1},
		{User: "ü☃😀", State: status.Online, Custom: &status.Custom{Status: -3, Text: "héllo"}, Sessions: []status.Session{
			{Session: "a", Device: "ios", DeviceID: "d", Gateway: "gw", ConnectedAt: at, Activity: status.Active},
			{Session: "b", Device: "web", ConnectedAt: seen, Activity: status.Background},
		}, Version: 1<<63 - 1, Activity: status.Active},
		{User: "v", State: status.Online, Custom: &status.Custom{}, Sessions: []status.Session{{}}, Version: -1 << 63},
	}
	for _, s := range tricky {
		cases = append(cases, &status.Status{User: s, State: s, Custom: &status.Custom{Text: s},
			Sessions: []status.Session{{Session: s, Device: s, DeviceID: s, Gateway: s, ConnectedAt: at}}})
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
		var r status.JSONReader
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
	at := status.Time{Time: time.UnixMilli(1_700_000_000_389)}
	f.Add(string((&status.Status{User: "u", State: status.Online, Custom: &status.Custom{Status: 2, Text: "t"},
		Sessions: []status.Session{{Session: "a", Device: "ios", ConnectedAt: at}, {Session: "b", ConnectedAt: at}}, Version: 9}).AppendJSON(nil)))
	f.Add(string((&status.Status{User: "u", State: status.Offline, Sessions: []status.Session{}, LastSeen: &at, Version: 1}).AppendJSON(nil)))
	f.Add("null,")
	f.Fuzz(func(t *testing.T, s string) { readJSON(t, s) })
}

// Statuses read one after the other share chunks of memory, and none
// spills into another: each keeps its own sessions whatever a caller
// appends, across the chunks' ends.
func TestJSONReaderSharesNoSessions(t *testing.T) {
	at := status.Time{Time: time.UnixMilli(1_700_000_000_389).UTC()}
	var s []byte
	var want []*status.Status
	for i := range 100 {
		st := &status.Status{User: fmt.Sprint("u", i), State: status.Online, Version: int64(i)}
		for j := range i % 7 {
			st.Sessions = append(st.Sessions, status.Session{Session: fmt.Sprint("s", i, "-", j), ConnectedAt: at})
		}
		if st.Sessions == nil {
			st.State, st.Sessions, st.LastSeen = status.Offline, []status.Session{}, &at
		}
		want = append(want, st)
		s = st.AppendJSON(s)
	}
	var r status.JSONReader
	var got []*status.Status
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
		st.Sessions = append(st.Sessions, status.Session{Session: "appended"})
	}
	for i, st := range got {
		if n := len(want[i].Sessions); len(st.Sessions) != n+1 || !reflect.DeepEqual(st.Sessions[:n], want[i].Sessions) {
			t.Errorf("%s: sessions %v after appending, want %v and one", st.User, sessionIDs(st), sessionIDs(want[i]))
		}
	}
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
	var r status.JSONReader
	for _, tm := range times {
		st := &status.Status{State: status.Offline, LastSeen: &status.Time{Time: tm}}
		b := string(st.AppendJSON(nil))
		got, _, ok := r.Read(b)
		var want *status.Status
		if err := json.Unmarshal([]byte(b), &want); err != nil || !ok || !reflect.DeepEqual(got, want) || !got.LastSeen.Equal(tm) {
			t.Fatalf("%s: read %v (%v), encoding/json reads %v (%v)", b, got.LastSeen, ok, want.LastSeen, err)
		}
	}
}

// For any status, the hand-written encoder writes the bytes encoding/json
// writes, and they decode to what encoding/json's own bytes decode to:
// any text (invalid UTF-8, control characters, HTML, separators, long
// text), any time, any number. `go test` runs the seeds; `make fuzz`
// explores.
func FuzzStatusAppendJSON(f *testing.F) {
	const ms = int64(1_700_000_000_389)
	maxYear := time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
	f.Add("alice", "online", "s1", "ios", "d1", "gw-1", ms, uint8(1), true, int64(2), "at the doctor", false, int64(0), int64(7))
	f.Add("a/b%c", "offline", "", "", "", "", int64(0), uint8(0), false, int64(0), "", true, ms, int64(-1))
	f.Add("bad \xff utf-8 \xe2\x80", "\x00\x1f\x7f", `"\`, "<script>&</script>", "\u2028\u2029", "\t\n\r\b\f", ms, uint8(3), true, int64(math.MinInt32), "\xc0\xaf\xed\xa0\x80", true, ms, int64(math.MaxInt64))
	f.Add(strings.Repeat("ü<", 2000), "online", strings.Repeat("x", 1<<12), "web", "", "gw", maxYear, uint8(2), true, int64(math.MaxInt32), strings.Repeat("☃", 100), false, int64(0), int64(0))
	f.Add("odd times", "online", "s", "d", "", "g", maxYear+1, uint8(1), false, int64(0), "", true, int64(-62135596800001), int64(1)) // years 10000 and 0
	f.Add("extreme times", "online", "s", "d", "", "g", int64(math.MaxInt64), uint8(1), false, int64(0), "", true, int64(math.MinInt64), int64(1))
	f.Fuzz(func(t *testing.T, user, state, session, device, deviceID, gateway string, connectedMs int64, sessions uint8,
		hasCustom bool, customStatus int64, text string, hasLastSeen bool, lastSeenMs, version int64) {
		st := &status.Status{User: user, State: state, Version: version}
		if sessions > 0 {
			st.Sessions = []status.Session{}
		}
		for i := range int(sessions % 4) {
			st.Sessions = append(st.Sessions, status.Session{
				Session: session + strings.Repeat("/", i), Device: device, DeviceID: deviceID, Gateway: gateway,
				// Times in other zones and with nanoseconds: encoded in UTC, to the millisecond.
				ConnectedAt: status.Time{Time: time.UnixMilli(connectedMs).Add(time.Duration(i) * 123456).In(time.FixedZone("odd", -(i * 3601)))},
				Epoch:       "not served",
				// Any string as an activity, as the aggregate below:
				// written as encoding/json writes it.
				Activity: status.Activity(device),
			})
		}
		if sessions%2 == 1 {
			st.Activity = status.Activity(state)
		}
		if hasCustom {
			st.Custom = &status.Custom{Status: int(customStatus), Text: text}
		}
		if hasLastSeen {
			st.LastSeen = &status.Time{Time: time.UnixMilli(lastSeenMs)}
		}
		want, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("encoding/json cannot encode %+v: %v", st, err)
		}
		got := st.AppendJSON([]byte("prefix"))
		if !strings.HasPrefix(string(got), "prefix") {
			t.Fatalf("AppendJSON lost the bytes it appends to: %q", got)
		}
		got = got[len("prefix"):]
		if string(got) != string(want) {
			t.Fatalf("AppendJSON wrote\n%s\nencoding/json writes\n%s", got, want)
		}
		var fromGot, fromWant any
		if err := json.Unmarshal(got, &fromGot); err != nil {
			t.Fatalf("AppendJSON wrote invalid JSON %s: %v", got, err)
		}
		if err := json.Unmarshal(want, &fromWant); err != nil {
			t.Fatalf("encoding/json wrote invalid JSON %s: %v", want, err)
		}
		if !reflect.DeepEqual(fromGot, fromWant) {
			t.Fatalf("AppendJSON's %s decodes to %v, encoding/json's to %v", got, fromGot, fromWant)
		}
	})
}

// sessionIDs returns the ids of st's sessions, in order.
func sessionIDs(st *status.Status) []string {
	var ids []string
	for _, s := range st.Sessions {
		ids = append(ids, s.Session)
	}
	return ids
}
