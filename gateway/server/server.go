// Package server is the route table of the reference gateway server, which
// cmd/gateway and presence dev both serve: HTTP ingestion (package
// ingest), WebSocket clients (package socket), /healthz, /readyz,
// /metrics, and /openapi.json, the server's OpenAPI document
// (service/openapi). A route added here, or to ingest or socket, must be
// added to that document: the test of this package fails until it is,
// saying what to add where.
package server

import (
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-im/presence/gateway/ingest"
	"github.com/presence-im/presence/gateway/socket"
	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/openapi"
)

// Routes are the parts the gateway server's routes lead to.
type Routes struct {
	// Ingest serves the events and heartbeats of external gateways.
	// Required.
	Ingest *ingest.Handler
	// Socket serves WebSocket clients; /readyz waits until it reads
	// notifications. Required.
	Socket *socket.Server
	// Probes are checked by /readyz, before the socket server.
	Probes []httpapi.Probe
	// Metrics, when set, are served on /metrics; nil when they have an
	// address of their own (httpapi.ServeMetrics).
	Metrics prometheus.Gatherer
}

// Mux returns a new ServeMux serving the routes.
func (rt Routes) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	rt.Register(mux)
	return mux
}

// Register adds the routes to mux, an *http.ServeMux (or one that passes
// its patterns on to one: the handlers read their path values from it).
func (rt Routes) Register(mux httpapi.Router) {
	rt.Ingest.Register(mux)
	rt.Socket.Register(mux)
	httpapi.Health(mux, slices.Concat(rt.Probes, []httpapi.Probe{rt.Socket.Ready})...)
	if rt.Metrics != nil {
		httpapi.Metrics(mux, rt.Metrics)
	}
	openapi.Register(mux, openapi.Gateway())
}
