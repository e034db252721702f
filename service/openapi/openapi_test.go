package openapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi-validator/schema_validation"

	"github.com/presence-im/presence/service/httpapi"
	"github.com/presence-im/presence/service/openapi"
)

// documents are the two documents, by the file they are written in.
func documents() map[string][]byte {
	return map[string][]byte{openapi.QueryAPIFile: openapi.QueryAPI(), openapi.GatewayFile: openapi.Gateway()}
}

func decode(t *testing.T, file string, doc []byte) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", file, err)
	}
	return d
}

// TestDocumentsAreOpenAPI31 checks each document against the OpenAPI 3.1
// schema (libopenapi-validator), builds its model (which resolves every
// reference), and checks that every $ref is local and points at
// something: a client gets one self-contained document.
func TestDocumentsAreOpenAPI31(t *testing.T) {
	for file, doc := range documents() {
		t.Run(file, func(t *testing.T) {
			d := decode(t, file, doc)
			if v, _ := d["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
				t.Errorf("openapi is %q, want 3.1.x", v)
			}
			for _, ref := range refs(d) {
				if _, err := resolve(d, ref); err != nil {
					t.Errorf("$ref %q: %v", ref, err)
				}
			}

			parsed, err := libopenapi.NewDocument(doc)
			if err != nil {
				t.Fatalf("libopenapi cannot read it: %v", err)
			}
			if ok, errs := schema_validation.ValidateOpenAPIDocument(parsed); !ok {
				for _, e := range errs {
					t.Errorf("not valid OpenAPI 3.1: %s: %s", e.Message, e.Reason)
					for _, se := range e.SchemaValidationErrors {
						t.Errorf("  at %s (line %d): %s", se.FieldPath, se.Line, se.Reason)
					}
				}
			}
			if _, err := parsed.BuildV3Model(); err != nil {
				t.Errorf("building the model: %v", err)
			}
		})
	}
}

// TestSharedComponentsAgree: a schema, parameter or header both
// documents define (the Status, the error envelope, the app id…) is the
// same in both.
func TestSharedComponentsAgree(t *testing.T) {
	q := decode(t, openapi.QueryAPIFile, openapi.QueryAPI())["components"].(map[string]any)
	g := decode(t, openapi.GatewayFile, openapi.Gateway())["components"].(map[string]any)
	shared := 0
	for _, kind := range []string{"schemas", "parameters", "headers", "securitySchemes"} {
		qs, _ := q[kind].(map[string]any)
		gs, _ := g[kind].(map[string]any)
		for name, qv := range qs {
			gv, ok := gs[name]
			if !ok {
				continue
			}
			shared++
			if !reflect.DeepEqual(qv, gv) {
				t.Errorf("components/%s/%s differs between %s and %s: make them the same", kind, name, openapi.QueryAPIFile, openapi.GatewayFile)
			}
		}
	}
	if shared < 10 {
		t.Errorf("only %d components are in both documents; Status, Session, Error… should be", shared)
	}
}

// TestErrorCodes: every error response of every operation is JSON, and
// one in Presence's envelope names the codes it carries, each answered
// with that response's status (service/httpapi's table); every code of
// the table is documented by some operation (method_not_allowed, which
// any path may answer, by the documents' description). An error response
// in another envelope (an adapter's for a seed's API) lists no codes.
func TestErrorCodes(t *testing.T) {
	documented := map[string]bool{}
	for file, doc := range documents() {
		d := decode(t, file, doc)
		if desc, _ := d["info"].(map[string]any)["description"].(string); strings.Contains(desc, "405 method_not_allowed") {
			documented[httpapi.CodeMethod] = true
		} else {
			t.Errorf("%s: info.description does not say that a wrong method answers 405 method_not_allowed", file)
		}
		for path, v := range d["paths"].(map[string]any) {
			item, err := deref(d, v)
			if err != nil {
				t.Errorf("%s: paths[%q]: %v", file, path, err)
				continue
			}
			for method, op := range item {
				if !slices.Contains([]string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}, method) {
					continue
				}
				responses := op.(map[string]any)["responses"].(map[string]any)
				for status, resp := range responses {
					where := fmt.Sprintf("%s: %s %s: %s", file, strings.ToUpper(method), path, status)
					code, err := strconv.Atoi(status)
					if err != nil {
						t.Errorf("%s: want a status code", where)
						continue
					}
					if code < 400 {
						continue
					}
					codes, err := errorCodes(d, resp)
					if err != nil {
						t.Errorf("%s: %v", where, err)
						continue
					}
					for _, c := range codes {
						documented[c] = true
						if want, ok := httpapi.StatusOf(c); !ok {
							t.Errorf("%s: error code %q is not in service/httpapi's table", where, c)
						} else if want != code {
							t.Errorf("%s: error code %q is answered %d", where, c, want)
						}
					}
				}
			}
		}
	}
	for _, c := range httpapi.Codes() {
		if !documented[c] {
			t.Errorf("error code %q (service/httpapi) is in no response of %s or %s: list it under the responses of the paths that answer it",
				c, openapi.QueryAPIFile, openapi.GatewayFile)
		}
	}
}

// envelopes are the schemas of Presence's error answers.
func envelopes() []string {
	return []string{"#/components/schemas/Error", "#/components/schemas/NotReady"}
}

// errorCodes are the codes an error response lists: the enum of
// error.code in its schema, when that is Presence's envelope.
func errorCodes(d map[string]any, resp any) ([]string, error) {
	r, err := deref(d, resp)
	if err != nil {
		return nil, err
	}
	var schema any = r
	for _, key := range []string{"content", "application/json", "schema"} {
		m, ok := schema.(map[string]any)
		if !ok || m[key] == nil {
			return nil, fmt.Errorf("no %s in the response: want a JSON schema", key)
		}
		schema = m[key]
	}
	if ref, _ := schema.(map[string]any)["$ref"].(string); !slices.Contains(envelopes(), ref) {
		return nil, nil
	}
	for _, key := range []string{"properties", "error", "properties", "code", "enum"} {
		m, ok := schema.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("no %s in the response: want content.application/json.schema.properties.error.properties.code.enum listing its error codes", key)
		}
		schema = m[key]
	}
	list, ok := schema.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("error.code has no enum of the codes it carries")
	}
	codes := make([]string, len(list))
	for i, c := range list {
		codes[i], _ = c.(string)
	}
	return codes, nil
}

// deref is v, or what its $ref points at.
func deref(d map[string]any, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object")
	}
	if ref, ok := m["$ref"].(string); ok {
		target, err := resolve(d, ref)
		if err != nil {
			return nil, err
		}
		return deref(d, target)
	}
	return m, nil
}

// refs are every $ref in v.
func refs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			out = append(out, ref)
		}
		for _, e := range v {
			out = append(out, refs(e)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, refs(e)...)
		}
	}
	return out
}

// resolve follows a local JSON pointer ("#/components/schemas/Status").
func resolve(d map[string]any, ref string) (any, error) {
	pointer, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("not a local reference: the document must stand alone")
	}
	var v any = d
	for _, token := range strings.Split(pointer, "/") {
		token = strings.NewReplacer("~1", "/", "~0", "~").Replace(token)
		m, ok := v.(map[string]any)
		if !ok || m[token] == nil {
			return nil, fmt.Errorf("nothing at %q", token)
		}
		v = m[token]
	}
	return v, nil
}

func TestCompare(t *testing.T) {
	doc := []byte(`{"openapi":"3.1.0","paths":{
		"/healthz":{"get":{}},
		"/v1/apps/{app}/ws":{"parameters":[],"get":{}},
		"/v1/apps/{app}/events":{"post":{},"delete":{}}}}`)
	tests := []struct {
		name   string
		routes []openapi.Route
		want   []string // lines of the error, in order; none: nil
	}{
		{name: "equal", routes: []openapi.Route{{Path: "/healthz"}, {Method: "GET", Path: "/v1/apps/{app}/ws"},
			{Method: "POST", Path: "/v1/apps/{app}/events"}, {Method: "DELETE", Path: "/v1/apps/{app}/events"}}},
		{name: "a route the document misses, an operation no route serves",
			routes: []openapi.Route{{Path: "/healthz"}, {Method: "GET", Path: "/v1/apps/{app}/ws"},
				{Method: "POST", Path: "/v1/apps/{app}/events"}, {Method: "POST", Path: "/v1/apps/{app}/status/watch"}},
			want: []string{
				`POST /v1/apps/{app}/status/watch is routed by the server but not documented in doc.json: add "post" under paths["/v1/apps/{app}/status/watch"], with its parameters, request body, responses and error codes`,
				`DELETE /v1/apps/{app}/events is documented in doc.json but no route of the server serves it: route it, or take "delete" out of paths["/v1/apps/{app}/events"]`,
			}},
		{name: "a path of every method is documented as GET",
			routes: []openapi.Route{{Path: "/healthz"}, {Path: "/metrics"}, {Method: "GET", Path: "/v1/apps/{app}/ws"},
				{Method: "POST", Path: "/v1/apps/{app}/events"}, {Method: "DELETE", Path: "/v1/apps/{app}/events"}},
			want: []string{`(any method) /metrics is routed by the server but not documented in doc.json: add "get" under paths["/metrics"], with its parameters, request body, responses and error codes`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := openapi.Compare(doc, "doc.json", tt.routes)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Compare:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestFoldAnyMethod(t *testing.T) {
	var routes []openapi.Route
	for _, m := range []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"} {
		routes = append(routes, openapi.Route{Method: m, Path: "/healthz"})
	}
	routes = append(routes, openapi.Route{Method: "PUT", Path: "/a"}, openapi.Route{Method: "GET", Path: "/a"})
	got := openapi.FoldAnyMethod(routes)
	want := []openapi.Route{{Method: "GET", Path: "/a"}, {Method: "PUT", Path: "/a"}, {Path: "/healthz"}}
	if !slices.Equal(got, want) {
		t.Errorf("FoldAnyMethod = %v, want %v", got, want)
	}
}

func TestParsePattern(t *testing.T) {
	for pattern, want := range map[string]openapi.Route{
		"GET /v1/apps/{app}/ws": {Method: "GET", Path: "/v1/apps/{app}/ws"},
		"/healthz":              {Path: "/healthz"},
	} {
		if got, err := openapi.ParsePattern(pattern); err != nil || got != want {
			t.Errorf("ParsePattern(%q) = %v, %v; want %v", pattern, got, err, want)
		}
	}
	if _, err := openapi.ParsePattern("example.com/healthz"); err == nil {
		t.Error("ParsePattern took a pattern with a host")
	}
}

// TestServed: GET /openapi.json answers the document as it is, with no
// credentials; another method is not routed.
func TestServed(t *testing.T) {
	mux := http.NewServeMux()
	openapi.Register(mux, openapi.Gateway())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + openapi.Path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || string(body) != string(openapi.Gateway()) {
		t.Errorf("GET %s: %d %q, %d bytes; want 200 application/json and the document", openapi.Path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	resp, err = http.Post(srv.URL+openapi.Path, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", openapi.Path, resp.StatusCode)
	}
}
