package queryapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
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
