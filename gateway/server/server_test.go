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
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/openapi"
)

// routes are the gateway server's routes over a publisher to an
// in-process Kafka.
func routes(t *testing.T) server.Routes {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
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
	ing, err := ingest.New(pub, log, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sock, err := socket.New(socket.Config{Publisher: pub, Logger: log, Registerer: reg})
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
	routes(t).Register(rec)
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
	mux := routes(t).Mux()
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
