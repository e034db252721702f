package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/ingest"
	"github.com/presence-im/presence/gateway/server"
	"github.com/presence-im/presence/gateway/socket"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/openapi"
	"github.com/presence-im/presence/service/openapi/openapitest"
)

// routes are the gateway server's routes over a publisher to an
// in-process Kafka, checking credentials with a when it is not nil.
func routes(t *testing.T, a *auth.Authenticator) server.Routes {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, schemas.SessionsTopic, schemas.GatewaysTopic, schemas.NotifyTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pub, err := gateway.New(gateway.Brokers(c.ListenAddrs()...), gateway.ID("gw-1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	ing, err := ingest.New(pub, log, reg, a)
	if err != nil {
		t.Fatal(err)
	}
	sock, err := socket.New(socket.Config{Publisher: pub, Logger: log, Registerer: reg, Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	return server.Routes{Ingest: ing, Socket: sock, Probes: []httpapi.Probe{pub.Ping}, Metrics: reg}
}

// recorder is a ServeMux that remembers the patterns it was given.
type recorder struct {
	*http.ServeMux
	patterns []string
}

func (r *recorder) Handle(pattern string, h http.Handler) {
	r.patterns = append(r.patterns, pattern)
	r.ServeMux.Handle(pattern, h)
}

// TestOpenAPIMatchesRoutes: every method and path the gateway server
// routes is an operation of its OpenAPI document, and every operation of
// the document a route. A route added without its operation fails here,
// saying what to add where.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	rec := &recorder{ServeMux: http.NewServeMux()}
	routes(t, nil).Register(rec)
	if len(rec.patterns) < 7 {
		t.Fatalf("registered %d patterns: %v", len(rec.patterns), rec.patterns)
	}
	var routed []openapi.Route
	for _, p := range rec.patterns {
		r, err := openapi.ParsePattern(p)
		if err != nil {
			t.Fatal(err)
		}
		routed = append(routed, r)
	}
	if err := openapi.Compare(openapi.Gateway(), openapi.GatewayFile, routed); err != nil {
		t.Error(err)
	}
}

// TestRoutesServed: the mux answers each documented operation with its
// handler (not the mux's own 404 or 405), and GET /openapi.json with the
// document.
func TestRoutesServed(t *testing.T) {
	mux := routes(t, nil).Mux()
	ops, err := openapi.Operations(openapi.Gateway())
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		req := httptest.NewRequest(op.Method, op.Path, nil)
		if _, pattern := mux.Handler(req); pattern == "" {
			t.Errorf("%s is documented but the mux routes it nowhere", op)
		}
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + openapi.Path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != string(openapi.Gateway()) {
		t.Errorf("GET %s: %d, %d bytes; want 200 and the gateway server's document", openapi.Path, resp.StatusCode, len(body))
	}
}

// TestOpenAPIDescribesAnswers sends a request of each operation, and
// refused ones, to a gateway server that checks credentials, and checks
// every exchange against the document: the request it accepts, the
// status, headers and body it answers. (A WebSocket that opens is not
// checked here: the document's 101 has no body to check.)
func TestOpenAPIDescribesAnswers(t *testing.T) {
	f := authtest.New(t)
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(routes(t, a).Mux())
	defer srv.Close()
	c := openapitest.New(t, openapi.Gateway())
	gw := http.Header{"Authorization": {"Bearer " + authtest.Gateway}}
	other := http.Header{"Authorization": {"Bearer " + authtest.OtherGateway}}
	user := http.Header{"Authorization": {"Bearer " + authtest.HS256(t, authtest.UserSecret, "chat", "alice")}}
	batch := `{"gateway":"gw-1","epoch":"e1","events":[{"type":"connect","user":"alice","session":"s1","device":"ios","device_id":"d1"},` +
		`{"type":"disconnect","user":"alice","session":"s1","reason":"timeout","at":"2026-01-02T03:04:05Z"}]}`
	for _, r := range []struct {
		method, path, body string
		header             http.Header
		invalid            bool
		want               int
	}{
		{"POST", "/v1/apps/chat/events", batch, gw, false, 202},
		{"POST", "/v1/apps/chat/events", batch, nil, true, 401},
		{"POST", "/v1/apps/chat/events", batch, other, false, 403},
		{"POST", "/v1/apps/chat/events", `{"gateway":"gw-1","epoch":"e1","events":[{"type":"wave","user":"alice","session":"s1"}]}`, gw, true, 400},
		{"POST", "/v1/gateways/gw-1/heartbeat", `{"epoch":"e1"}`, gw, false, 202},
		{"POST", "/v1/gateways/gw-1/heartbeat", `{"epoch":"e1"}`, other, false, 403},
		{"GET", "/v1/apps/chat/ws?session=s1&device=web", "", nil, true, 401},
		{"GET", "/v1/apps/chat/ws?session=s1&device=web", "", user, true, 400}, // not a handshake
		{"GET", "/healthz", "", nil, false, 200},
		{"GET", "/readyz", "", nil, false, 503}, // the socket server does not read notifications: not run here
		{"GET", "/metrics", "", nil, false, 200},
		{"GET", "/openapi.json", "", nil, false, 200},
	} {
		code, body := c.Do(t, openapitest.Request{Method: r.method, URL: srv.URL + r.path, Body: r.body, Header: r.header, Invalid: r.invalid})
		if code != r.want {
			t.Errorf("%s %s: %d %.200s, want %d", r.method, r.path, code, body, r.want)
		}
	}
}
