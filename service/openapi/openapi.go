// Package openapi holds the OpenAPI 3.1 documents of Presence's two HTTP
// servers, written by hand as JSON and served as they are on
// GET /openapi.json: queryapi.json for the query API, gateway.json for the
// gateway server (HTTP ingestion and WebSocket clients). Each lists every
// path its server routes, /healthz, /readyz, /metrics and /openapi.json
// included, with its request and response schemas and the error codes
// each status carries.
//
// A document is kept equal to its server's routes by a test of that
// server (queryapi, gateway/server) that walks the real route table and
// calls Compare: a route without a documented operation, or an operation
// no route serves, fails it, naming the method, the path and the file to
// change. The same tests send a request of each operation to a real
// server and check the exchange against the document (openapitest). The
// tests of this package check that both documents are valid OpenAPI 3.1,
// that every $ref resolves, that a schema both define is the same in
// both, and that every error code answers with the status it is
// documented under (service/httpapi's table).
//
// To document a new route: add its path under paths, its operation with
// its parameters, request body and responses (an error status refers to
// a response of components/responses whose error.code enum lists the
// codes it carries), and a request of it to the server's exchange test.
//
// The schema of a route being added (privacy) is under components/schemas
// already, so that adding the route is adding its path.
package openapi

import (
	_ "embed"
	"net/http"

	"github.com/presence-im/presence/service/httpapi"
)

// Path is where each server serves its document.
const Path = "/openapi.json"

//go:embed queryapi.json
var queryAPI []byte

//go:embed gateway.json
var gatewayServer []byte

// Files name the documents in messages: where to change them.
const (
	QueryAPIFile = "service/openapi/queryapi.json"
	GatewayFile  = "service/openapi/gateway.json"
)

// QueryAPI is the query API's document. The caller must not change it.
func QueryAPI() []byte { return queryAPI }

// Gateway is the gateway server's document. The caller must not change
// it.
func Gateway() []byte { return gatewayServer }

// Register adds GET /openapi.json, serving doc as it is, to r. It needs
// no credentials, like /healthz.
func Register(r httpapi.Router, doc []byte) {
	r.Handle(http.MethodGet+" "+Path, Handler(doc))
}

// Handler serves doc as it is, as application/json.
func Handler(doc []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		httpapi.WriteEncoded(w, http.StatusOK, doc)
	})
}
