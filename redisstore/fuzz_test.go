package redisstore_test

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
)

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
		st := &redisstore.Status{User: user, State: state, Version: version}
		if sessions > 0 {
			st.Sessions = []redisstore.Session{}
		}
		for i := range int(sessions % 4) {
			st.Sessions = append(st.Sessions, redisstore.Session{
				Session: session + strings.Repeat("/", i), Device: device, DeviceID: deviceID, Gateway: gateway,
				// Times in other zones and with nanoseconds: encoded in UTC, to the millisecond.
				ConnectedAt: redisstore.Time{Time: time.UnixMilli(connectedMs).Add(time.Duration(i) * 123456).In(time.FixedZone("odd", -(i * 3601)))},
				Epoch:       "not served",
			})
		}
		if hasCustom {
			st.Custom = &redisstore.Custom{Status: int(customStatus), Text: text}
		}
		if hasLastSeen {
			st.LastSeen = &redisstore.Time{Time: time.UnixMilli(lastSeenMs)}
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
