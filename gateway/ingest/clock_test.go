package ingest_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/gateway/ingest"
)

// TestEventTimesAgainstTheClock posts events whose "at" is ahead of the
// server's clock: within the skew it is published as the server's now,
// beyond it the batch is refused 400 and nothing is published; an "at" in
// the past is kept.
func TestEventTimesAgainstTheClock(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, at string
		status   int
		want     time.Time // the published At
	}{
		{"past", "2026-12-06T11:00:00Z", http.StatusAccepted, now.Add(-time.Hour)},
		{"now", "2026-12-06T12:00:00Z", http.StatusAccepted, now},
		{"ahead within the skew", "2026-12-06T12:00:04.999Z", http.StatusAccepted, now},
		{"ahead by the skew", "2026-12-06T12:00:05Z", http.StatusAccepted, now},
		{"beyond the skew", "2026-12-06T12:00:05.001Z", http.StatusBadRequest, time.Time{}},
		{"the end of time", "9999-12-31T23:59:59Z", http.StatusBadRequest, time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			h, err := ingest.New(rec, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil,
				ingest.MaxClockSkew(5*time.Second), ingest.Clock(func() time.Time { return now }))
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			h.Register(mux)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			code, body := post(t, srv.URL+"/v1/apps/chat/events", `{"gateway":"gw-1","epoch":"boot-1","events":[
				{"type":"disconnect","user":"bob","session":"s1"},
				{"type":"connect","user":"alice","session":"s1","device":"ios","at":"`+c.at+`"}]}`)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, body)
			}
			if c.status != http.StatusAccepted {
				if len(rec.events) != 0 || !strings.Contains(body, `"code":"invalid"`) || !strings.Contains(body, "events[1]") {
					t.Fatalf("published %d events, answer %s; want none and the invalid envelope naming events[1]", len(rec.events), body)
				}
				return
			}
			if len(rec.events) != 2 || !rec.events[1].At.Equal(c.want) {
				t.Fatalf("published %+v, want alice's connect at %s", rec.events, c.want)
			}
		})
	}
	if _, err := ingest.New(&recorder{}, slog.Default(), prometheus.NewRegistry(), nil, ingest.MaxClockSkew(0)); err == nil {
		t.Fatal("a zero skew was accepted")
	}
}
