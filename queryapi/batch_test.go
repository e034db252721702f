package queryapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/service/httpapi"
)

// The answers written by hand are byte for byte what httpapi.WriteJSON
// writes for the response types.
func TestWriteResultsAsWriteJSON(t *testing.T) {
	at := redisstore.Time{Time: time.UnixMilli(1_700_000_000_389)}
	seen := redisstore.Time{Time: time.UnixMilli(1_700_000_000_001)}
	statuses := []*redisstore.Status{
		{User: "alice", State: redisstore.Online, Version: 12, Sessions: []redisstore.Session{
			{Session: "s1", Device: "ios", DeviceID: "d<1>", Gateway: "gw&1", ConnectedAt: at, Epoch: "e"},
			{Session: "s\"2", Device: "web", ConnectedAt: at},
		}, Custom: &redisstore.Custom{Status: 2, Text: "in a meeting \u2028 \"until\" 5 😀\n"}},
		nil,
		{User: "bob", State: redisstore.Offline, Sessions: []redisstore.Session{}, LastSeen: &seen, Version: 3},
		nil,
	}
	s := &Server{}
	for _, c := range []struct {
		name  string
		want  any
		write func(http.ResponseWriter)
	}{
		{"results", queryResponse{Results: statuses}, func(w http.ResponseWriter) { s.writeResults(w, statuses) }},
		{"no results", queryResponse{Results: []*redisstore.Status{}}, func(w http.ResponseWriter) { s.writeResults(w, []*redisstore.Status{}) }},
		{"one status", statuses[0], func(w http.ResponseWriter) {
			s.writeEncoded(w, http.StatusOK, answerSize(1), statuses[0].AppendJSON)
		}},
		{"subscribed", subscribeResponse{Results: statuses, ExpiresAt: seen}, func(w http.ResponseWriter) {
			s.writeEncoded(w, http.StatusOK, 0, func(b []byte) []byte { return appendSubscribed(b, statuses, seen) })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := httptest.NewRecorder()
			httpapi.WriteJSON(want, http.StatusOK, c.want)
			for range 3 { // buffers reused
				got := httptest.NewRecorder()
				c.write(got)
				if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) || got.Code != want.Code ||
					got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
					t.Fatalf("wrote %d %q\n%s\nhttpapi.WriteJSON writes %d %q\n%s", got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
				}
			}
		})
	}
}

// checkResults checks that DecodeResults decodes body as encoding/json
// decodes it into a queryResponse, or fails as it does.
func checkResults(t *testing.T, body []byte) {
	t.Helper()
	got, err := DecodeResults(body)
	var want queryResponse
	wantErr := json.Unmarshal(body, &want)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, encoding/json's %v", body, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want.Results) {
		t.Fatalf("%q: decoded\n%#v\nencoding/json decodes\n%#v", body, got, want.Results)
	}
}

// DecodeResults decodes what the query API writes, and any other JSON,
// as encoding/json does; the answers written by hand take the fast path.
func TestDecodeResults(t *testing.T) {
	at := redisstore.Time{Time: time.UnixMilli(1_700_000_000_389).UTC()}
	statuses := []*redisstore.Status{
		{User: "alice", State: redisstore.Online, Version: 12, Sessions: []redisstore.Session{
			{Session: "s1", Device: "ios", DeviceID: "d1", Gateway: "gw1", ConnectedAt: at},
			{Session: "s2", Device: "web", ConnectedAt: at},
		}, Custom: &redisstore.Custom{Status: 2, Text: "in a meeting 😀"}},
		nil,
		{User: "bob", State: redisstore.Offline, Sessions: []redisstore.Session{}, LastSeen: &at, Version: 3},
	}
	s := &Server{}
	for _, sts := range [][]*redisstore.Status{statuses, {}, {nil}, {statuses[0]}} {
		w := httptest.NewRecorder()
		s.writeResults(w, sts)
		if _, ok := decodeResultsFast(w.Body.String()); !ok {
			t.Errorf("%s: not read by hand", w.Body)
		}
		checkResults(t, w.Body.Bytes())
		got, _ := DecodeResults(w.Body.Bytes())
		again := httptest.NewRecorder()
		s.writeResults(again, got)
		if again.Body.String() != w.Body.String() {
			t.Errorf("%s: decoded, written again as %s", w.Body, again.Body)
		}
	}
	for _, body := range []string{
		`{"results":[{"user":"a\"b","state":"offline","sessions":[],"custom":null,"last_seen":null,"version":1}]}`,
		`{ "results" : [ null ] }`,
		`{"results":null}`,
		`{"results":[null],"more":1}`,
		`{"results":[null]}x`,
		`{"results":[null,]}`,
		`{"error":{"code":"invalid","message":"no"}}`,
		`{"results":[{"user":1}]}`,
		``,
	} {
		if _, ok := decodeResultsFast(body); ok {
			t.Errorf("%s: read by hand", body)
		}
		checkResults(t, []byte(body))
	}
}

// Whatever the body, DecodeResults decodes it as encoding/json does.
func FuzzDecodeResults(f *testing.F) {
	f.Add(`{"results":[null,{"user":"u","state":"offline","sessions":[],"custom":null,"last_seen":"2023-11-14T22:13:20.389Z","version":1}]}` + "\n")
	f.Add(`{"results":[]}`)
	f.Fuzz(func(t *testing.T, body string) { checkResults(t, []byte(body)) })
}

// benchStatuses are 500 statuses as the bench asks them: a third online
// (every fourth with two sessions), a third offline, a third unknown.
func benchStatuses() []*redisstore.Status {
	at := redisstore.Time{Time: time.UnixMilli(1_700_000_000_389).UTC()}
	statuses := make([]*redisstore.Status, MaxBatch)
	for i := range statuses {
		user := fmt.Sprintf("q-%07d", i)
		sess := redisstore.Session{Session: user + "-ios", Device: "ios", DeviceID: "d" + user, Gateway: "gw-1", ConnectedAt: at}
		switch i % 3 {
		case 0:
			st := &redisstore.Status{User: user, State: redisstore.Online, Sessions: []redisstore.Session{sess}, Version: int64(i)}
			if i%4 == 0 {
				st.Sessions = append(st.Sessions, redisstore.Session{Session: user + "-web", Device: "web", Gateway: "gw-1", ConnectedAt: at})
			}
			statuses[i] = st
		case 1:
			statuses[i] = &redisstore.Status{User: user, State: redisstore.Offline, Sessions: []redisstore.Session{}, LastSeen: &at, Version: int64(i)}
		}
	}
	return statuses
}

// BenchmarkDecodeResults decodes an answer of benchStatuses.
func BenchmarkDecodeResults(b *testing.B) {
	statuses := benchStatuses()
	w := httptest.NewRecorder()
	(&Server{}).writeResults(w, statuses)
	body := w.Body.Bytes()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if got, err := DecodeResults(body); err != nil || len(got) != len(statuses) {
			b.Fatalf("decoded %d statuses: %v", len(got), err)
		}
	}
}

// BenchmarkAppendResults encodes an answer of benchStatuses.
func BenchmarkAppendResults(b *testing.B) {
	statuses := benchStatuses()
	buf := appendResults(nil, statuses)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendResults(buf[:0], statuses)
	}
}
