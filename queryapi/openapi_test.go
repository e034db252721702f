package queryapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/service/openapi"
)

// TestOpenAPIMatchesRoutes walks the server's real route table: every
// method and path it routes must be an operation of its OpenAPI document,
// and every operation of the document a route. A route added to New
// without its operation fails here, saying what to add where.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s, err := queryapi.New(queryapi.Config{
		Store:   redisstore.New(redistest.Client(t), redisstore.Options{Prefix: redistest.Prefix(t)}),
		Brokers: c.ListenAddrs(),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	var routes []openapi.Route
	err = chi.Walk(s.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, openapi.Route{Method: method, Path: route})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 10 {
		t.Fatalf("walked %d routes: %v", len(routes), routes)
	}
	if err := openapi.Compare(openapi.QueryAPI(), openapi.QueryAPIFile, openapi.FoldAnyMethod(routes)); err != nil {
		t.Error(err)
	}
}

// TestOpenAPIServedOpen: a server that checks credentials serves its
// document to anyone, as it is.
func TestOpenAPIServedOpen(t *testing.T) {
	h, _, _ := authHarness(t)
	code, header, body := h.doHeader("GET", openapi.Path, "")
	if code != http.StatusOK || header.Get("Content-Type") != "application/json" || string(body) != string(openapi.QueryAPI()) {
		t.Errorf("GET %s without credentials: %d %q, %d bytes; want 200 and the query API's document", openapi.Path, code, header.Get("Content-Type"), len(body))
	}
	if code, _ := h.do("GET", "/v1/apps/chat/users/alice/status", ""); code != http.StatusUnauthorized {
		t.Errorf("a lookup without credentials: %d, want 401 (the server does check credentials)", code)
	}
}
