package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/gateway/ingest"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/httpapi"
)

// Fuzz tests of the ingestion endpoint, through the handler as the gateway
// server wires it: any path id and body is answered, never with a 5xx (the
// publisher here never fails), a refusal in the error envelope, and an
// accepted batch publishes exactly its events, each valid. `go test` runs
// the seeds; `make fuzz` explores.

// fuzzHandler is the endpoint over rec, wrapped as the gateway serves it.
func fuzzHandler(f *testing.F, rec *recorder) http.Handler {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := ingest.New(rec, log, prometheus.NewRegistry(), nil)
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return httpapi.Envelope(mux, log)
}

// fuzzPost posts body to path (its one id already escaped) and returns
// the answer; a 4xx or 5xx fails t unless it is a 4xx in the envelope.
func fuzzPost(t *testing.T, h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("a request to %q: %v", path, err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code >= 500 {
		t.Fatalf("POST %s %q answered %d: %s", path, body, w.Code, w.Body)
	}
	if w.Code >= 400 {
		var env struct {
			Error *httpapi.Error `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error == nil || env.Error.Code == "" || env.Error.Message == "" {
			t.Fatalf("POST %s %q answered %d outside the envelope: %s", path, body, w.Code, w.Body)
		}
	}
	return w
}

func FuzzEvents(f *testing.F) {
	for _, s := range []struct{ app, body string }{
		{"chat", `{"gateway":"gw-1","epoch":"boot-1","events":[
			{"type":"connect","user":"alice","session":"s1","device":"ios","device_id":"imei-1"},
			{"type":"disconnect","user":"bob","session":"s2","reason":"timeout","at":"2026-12-06T19:00:00.123Z"}]}`},
		{"chat", `{"gateway":"gw-1","epoch":"boot-1","events":[{"type":"connect","user":"a/b%c","session":"s","device":"web","at":"9999-12-31T23:59:59Z"}]}`},
		{"chat", `{"gateway":"gw-1","epoch":"boot-1","events":[{"type":"connect","user":"u","session":"s","device":"web","at":"0001-01-01T00:00:00Z"}]}`},
		{"chat", `{"gateway":"gw-1","epoch":"boot-1","events":[{"type":"connect","user":"u","session":"s","device":"web","at":"1970-01-01T00:00:00.0005Z"}]}`},
		{"chat", `{"gateway":"gw-1","epoch":"boot-1","events":[{"type":"disconnect","user":"u","session":"s","reason":"gateway_lost"}]}`},
		{"chat", `{"gateway":"gw-1","epoch":"boot-1","events":[{"type":"connect","user":"\ud800","session":"s","device":"web"}]}`},
		{"chat", "{\"gateway\":\"gw-1\",\"epoch\":\"boot-1\",\"events\":[{\"type\":\"connect\",\"user\":\"\xff\",\"session\":\"s\",\"device\":\"web\"}]}"},
		{"chat", `{"gateway":"gw-1","epoch":"boot-1","events":[]}`},
		{"chat", `{"gateway":"gw-1","epoch":"boot-1"}`},
		{"chat", `{"gateway":"","epoch":"boot-1","events":[]}`},
		{"chat", `{"gateway":"gw-1","epoch":"boot-1","events":[{"type":"connect","user":"` + strings.Repeat("x", 1<<20) + `"}]}`},
		{"chat", `{"gateway":"gw-1","epoch":"boot-1","events":[]}}`},
		{"bad app", `{"gateway":"gw-1","epoch":"boot-1","events":[]}`},
		{"", `{}`},
		{"a/b", `{}`},
	} {
		f.Add(s.app, []byte(s.body))
	}
	rec := &recorder{}
	h := fuzzHandler(f, rec)
	f.Fuzz(func(t *testing.T, app string, body []byte) {
		rec.events = nil
		w := fuzzPost(t, h, "/v1/apps/"+url.PathEscape(app)+"/events", body)
		if w.Code != http.StatusAccepted {
			if len(rec.events) != 0 {
				t.Fatalf("a batch answered %d published %d events", w.Code, len(rec.events))
			}
			return
		}
		var req struct {
			Events []json.RawMessage `json:"events"`
		}
		var answer struct {
			Accepted int `json:"accepted"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("accepted a batch encoding/json cannot read: %v", err)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil || answer.Accepted != len(req.Events) || len(rec.events) != len(req.Events) {
			t.Fatalf("a batch of %d events answered %s and published %d", len(req.Events), w.Body, len(rec.events))
		}
		for _, ev := range rec.events {
			if err := ev.Validate(); err != nil {
				t.Fatalf("published an invalid event %+v: %v", ev, err)
			}
			if err := errors.Join(schemas.ValidateID("gateway", ev.Gateway), schemas.ValidateID("epoch", ev.Epoch)); err != nil || ev.App != app {
				t.Fatalf("published event %+v of app %q: %v", ev, app, err)
			}
		}
	})
}

func FuzzHeartbeat(f *testing.F) {
	for _, s := range []struct{ gateway, body string }{
		{"gw-1", `{"epoch":"boot-1"}`},
		{"dev", `{"epoch":"attacker"}`},
		{"gw-1", `{"epoch":""}`},
		{"gw-1", `{"epoch":"boot-1","lease_ms":9223372036854775807}`},
		{"gw/1%", `{"epoch":"boot-1"}`},
		{"", `{"epoch":"boot-1"}`},
		{"gw-1", "{\"epoch\":\"\xff\"}"},
		{"gw-1", `{"epoch":"\udfff"}`},
		{"gw-1", `{"epoch":"boot-1"}]`},
		{"gw-1", `{"epoch":"` + strings.Repeat("e", 1<<20) + `"}`},
	} {
		f.Add(s.gateway, []byte(s.body))
	}
	rec := &recorder{}
	h := fuzzHandler(f, rec)
	f.Fuzz(func(t *testing.T, gw string, body []byte) {
		rec.heartbeats = nil
		w := fuzzPost(t, h, "/v1/gateways/"+url.PathEscape(gw)+"/heartbeat", body)
		if w.Code != http.StatusAccepted {
			if len(rec.heartbeats) != 0 {
				t.Fatalf("a heartbeat answered %d was published", w.Code)
			}
			return
		}
		var req struct {
			Epoch string `json:"epoch"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("accepted a heartbeat encoding/json cannot read: %v", err)
		}
		if len(rec.heartbeats) != 1 || rec.heartbeats[0] != gw+"@"+req.Epoch {
			t.Fatalf("heartbeat of %q epoch %q published %q", gw, req.Epoch, rec.heartbeats)
		}
		if err := errors.Join(schemas.ValidateID("gateway", gw), schemas.ValidateID("epoch", req.Epoch)); err != nil {
			t.Fatalf("published a heartbeat of invalid ids: %v", err)
		}
	})
}
