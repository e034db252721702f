package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/ingest"
)

// recorder is a publisher that keeps what it is given, or fails.
type recorder struct {
	events     []gateway.Event
	heartbeats []string
	fail       error
}

func (r *recorder) Publish(_ context.Context, events ...gateway.Event) error {
	if r.fail != nil {
		return r.fail
	}
	r.events = append(r.events, events...)
	return nil
}

func (r *recorder) HeartbeatFor(_ context.Context, gw, epoch string) error {
	if r.fail != nil {
		return r.fail
	}
	r.heartbeats = append(r.heartbeats, gw+"@"+epoch)
	return nil
}

func serve(t *testing.T, pub ingest.Publisher) *httptest.Server {
	t.Helper()
	h, err := ingest.New(pub, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEvents(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, rec)
	code, body := post(t, srv.URL+"/v1/apps/chat/events", `{"gateway":"gw-1","epoch":"boot-1","events":[
		{"type":"connect","user":"alice","session":"s1","device":"ios","device_id":"imei-1"},
		{"type":"disconnect","user":"bob","session":"s2","reason":"timeout","at":"2026-11-22T10:00:00.123Z"}]}`)
	if code != http.StatusAccepted || !strings.Contains(body, `"accepted":2`) {
		t.Fatalf("status %d: %s", code, body)
	}
	want := []gateway.Event{
		{Type: gateway.Connect, App: "chat", User: "alice", Session: "s1", Device: "ios", DeviceID: "imei-1", Gateway: "gw-1", Epoch: "boot-1"},
		{Type: gateway.Disconnect, App: "chat", User: "bob", Session: "s2", Reason: gateway.Timeout, Gateway: "gw-1", Epoch: "boot-1",
			At: time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)},
	}
	if len(rec.events) != 2 || rec.events[0] != want[0] || rec.events[1].At.Compare(want[1].At) != 0 {
		t.Fatalf("published %+v, want %+v", rec.events, want)
	}
}

func TestMalformedBatchWritesNothing(t *testing.T) {
	valid := `{"type":"connect","user":"alice","session":"s1","device":"ios"}`
	for _, c := range []struct{ name, path, body string }{
		{"bad app", "/v1/apps/bad%20app/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `]}`},
		{"no gateway", "/v1/apps/chat/events", `{"epoch":"e","events":[` + valid + `]}`},
		{"no epoch", "/v1/apps/chat/events", `{"gateway":"gw","events":[` + valid + `]}`},
		{"unknown type", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `,{"type":"away","user":"a","session":"s"}]}`},
		{"empty user", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `,{"type":"connect","user":"","session":"s","device":"ios"}]}`},
		{"connect without device", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[` + valid + `,{"type":"connect","user":"a","session":"s"}]}`},
		{"bad reason", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"disconnect","user":"a","session":"s","reason":"bored"}]}`},
		{"control character", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"connect","user":"a\u0000","session":"s","device":"ios"}]}`},
		{"unknown field", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[],"extra":true}`},
		{"not json", "/v1/apps/chat/events", `connect alice`},
		{"no events field", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e"}`},
		{"time before 1970", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"disconnect","user":"a","session":"s","at":"1960-01-01T00:00:00Z"}]}`},
		{"bad time", "/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"disconnect","user":"a","session":"s","at":"yesterday"}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			code, body := post(t, serve(t, rec).URL+c.path, c.body)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", code, body)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "invalid" || e.Error.Message == "" {
				t.Fatalf("error body %s", body)
			}
			if len(rec.events) != 0 {
				t.Fatalf("published %d events of a malformed batch", len(rec.events))
			}
		})
	}
}

func TestKafkaFailureIs503(t *testing.T) {
	srv := serve(t, &recorder{fail: errors.New("broker down")})
	code, body := post(t, srv.URL+"/v1/apps/chat/events", `{"gateway":"gw","epoch":"e","events":[{"type":"disconnect","user":"a","session":"s"}]}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"unavailable"`) || strings.Contains(body, "broker down") {
		t.Fatalf("status %d: %s", code, body)
	}
}

func TestHeartbeatEndpoint(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, rec)
	if code, body := post(t, srv.URL+"/v1/gateways/gw-9/heartbeat", `{"epoch":"boot-3"}`); code != http.StatusAccepted {
		t.Fatalf("status %d: %s", code, body)
	}
	if code, _ := post(t, srv.URL+"/v1/gateways/gw-9/heartbeat", `{}`); code != http.StatusBadRequest {
		t.Fatalf("heartbeat without epoch: status %d", code)
	}
	if len(rec.heartbeats) != 1 || rec.heartbeats[0] != "gw-9@boot-3" {
		t.Fatalf("heartbeats %v", rec.heartbeats)
	}
}
