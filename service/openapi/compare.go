package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Route is one method and path a server routes, the path in OpenAPI's
// template form (/v1/apps/{app}/ws). Method "" is a path routed for every
// method (registered without one, as /healthz is); its document describes
// it as GET.
type Route struct {
	Method string
	Path   string
}

func (r Route) String() string {
	if r.Method == "" {
		return "(any method) " + r.Path
	}
	return r.Method + " " + r.Path
}

// allMethods are the methods a router answers for a path registered
// without a method: those of net/http and chi.
func allMethods() []string {
	return []string{http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
		http.MethodPatch, http.MethodPost, http.MethodPut, http.MethodTrace}
}

// ParsePattern reads a net/http ServeMux pattern: "GET /v1/apps/{app}/ws",
// or "/healthz" for every method. Patterns with a host are refused.
func ParsePattern(pattern string) (Route, error) {
	method, path, found := strings.Cut(pattern, " ")
	if !found {
		method, path = "", pattern
	}
	path = strings.TrimLeft(path, " \t")
	if !strings.HasPrefix(path, "/") {
		return Route{}, fmt.Errorf("pattern %q: want [METHOD ]/path", pattern)
	}
	return Route{Method: method, Path: path}, nil
}

// FoldAnyMethod returns routes with the routes of a path that is routed
// for every method (as chi.Walk lists a path registered without one)
// folded into one Route with Method "".
func FoldAnyMethod(routes []Route) []Route {
	byPath := map[string]map[string]bool{}
	for _, r := range routes {
		if byPath[r.Path] == nil {
			byPath[r.Path] = map[string]bool{}
		}
		byPath[r.Path][r.Method] = true
	}
	var out []Route
	for _, path := range slices.Sorted(maps.Keys(byPath)) {
		methods := byPath[path]
		if !slices.ContainsFunc(allMethods(), func(m string) bool { return !methods[m] }) {
			out = append(out, Route{Path: path})
			continue
		}
		for _, m := range slices.Sorted(maps.Keys(methods)) {
			out = append(out, Route{Method: m, Path: path})
		}
	}
	return out
}

// operationKeys are the keys of a path item that are operations.
func operationKeys() []string {
	return []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
}

// Operations lists the operations doc describes, sorted. A path item may
// be a reference to one under components/pathItems, as when two paths
// serve the same operations.
func Operations(doc []byte) ([]Route, error) {
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("reading the openapi document: %w", err)
	}
	paths, _ := d["paths"].(map[string]any)
	var ops []Route
	for path, v := range paths {
		item, _ := v.(map[string]any)
		if ref, ok := item["$ref"].(string); ok {
			target, err := pointer(d, ref)
			if err != nil {
				return nil, fmt.Errorf("paths[%q]: %w", path, err)
			}
			item, _ = target.(map[string]any)
		}
		for key := range item {
			if slices.Contains(operationKeys(), key) {
				ops = append(ops, Route{Method: strings.ToUpper(key), Path: path})
			}
		}
	}
	slices.SortFunc(ops, func(a, b Route) int { return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method) })
	return ops, nil
}

// pointer is what ref, a local JSON pointer ("#/components/pathItems/x"),
// points at in d.
func pointer(d map[string]any, ref string) (any, error) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("$ref %q: not a local reference", ref)
	}
	var v any = d
	for _, token := range strings.Split(p, "/") {
		token = strings.NewReplacer("~1", "/", "~0", "~").Replace(token)
		m, ok := v.(map[string]any)
		if !ok || m[token] == nil {
			return nil, fmt.Errorf("$ref %q: nothing at %q", ref, token)
		}
		v = m[token]
	}
	return v, nil
}

// Compare returns an error naming each route that doc, the document in
// file, does not describe and each operation of doc that no route
// serves; nil when they agree. A route of every method (Method "") is
// described by a GET operation, and serves any operation of its path.
func Compare(doc []byte, file string, routes []Route) error {
	ops, err := Operations(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	documented := map[Route]bool{}
	for _, op := range ops {
		documented[op] = true
	}
	routed := map[Route]bool{}
	for _, r := range routes {
		routed[r] = true
	}
	var errs []error
	for _, r := range routes {
		want := r
		if r.Method == "" {
			want.Method = http.MethodGet
		}
		if !documented[want] {
			errs = append(errs, fmt.Errorf("%s is routed by the server but not documented in %s: add %q under paths[%q], with its parameters, request body, responses and error codes",
				r, file, strings.ToLower(want.Method), r.Path))
		}
	}
	for _, op := range ops {
		if !routed[op] && !routed[Route{Path: op.Path}] {
			errs = append(errs, fmt.Errorf("%s is documented in %s but no route of the server serves it: route it, or take %q out of paths[%q]",
				op, file, strings.ToLower(op.Method), op.Path))
		}
	}
	return errors.Join(errs...)
}
