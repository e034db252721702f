package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/presence-im/presence/service/httpapi"
)

// Every compat route is one call of a native route of the query API, in
// process: the request goes to the native router with the caller's
// headers (its credentials) and context (what auth.Identify found of
// them), so that it is checked, limited, served and counted exactly as
// the same call sent to the native path.

// failure is a native answer of 4xx or 5xx: its status and its error.
type failure struct {
	status int
	err    *httpapi.Error
}

func (f *failure) Error() string { return fmt.Sprintf("%d %s", f.status, f.err) }

// call sends method and body (encoded as JSON; nil: none) to the native
// route at the path of segments (each escaped, so ids may hold '/' or
// '%'), as the caller of r, and decodes a 2xx answer into out (nil: not
// read). The headers of the answer but those of its body
// (Presence-Rebuilding, Retry-After, WWW-Authenticate, …) are set on w.
// A 4xx or 5xx answer is returned as a *failure.
func (c *Compat) call(w http.ResponseWriter, r *http.Request, method string, body, out any, segments ...string) error {
	return c.callAs(w, r, "", method, body, out, segments...)
}

// callAs is call with the native route's ?viewer= (none when empty): the
// user whose view of others' privacy the answer is.
func (c *Compat) callAs(w http.ResponseWriter, r *http.Request, viewer, method string, body, out any, segments ...string) error {
	req, err := nativeRequest(r, method, body, segments)
	if viewer != "" {
		req.URL.RawQuery = url.Values{"viewer": {viewer}}.Encode()
		req.RequestURI = req.URL.RequestURI()
	}
	if err != nil {
		return err
	}
	var ans answer
	c.api.ServeHTTP(&ans, req)
	for name, values := range ans.header {
		if name != "Content-Type" && name != "Content-Length" {
			w.Header()[name] = values
		}
	}
	if ans.status >= 400 {
		if f := ans.failure(); f != nil {
			return f
		}
		return fmt.Errorf("native %s %s answered %d without the error envelope: %q", method, req.URL.Path, ans.status, ans.body.Bytes())
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(ans.body.Bytes(), out); err != nil {
		return fmt.Errorf("decoding the answer of native %s %s: %w", method, req.URL.Path, err)
	}
	return nil
}

// naming returns err, when it is a *failure, with the names of the native
// request's fields in its message replaced by those of the seed's request
// they came from, given as native, seed pairs: "users[3]: invalid user
// id: empty" reads "userList[3]: …" to a client of the Java IM.
func naming(err error, pairs ...string) error {
	var f *failure
	if !errors.As(err, &f) {
		return err
	}
	var old []string
	for i := 0; i+1 < len(pairs); i += 2 {
		n, s := pairs[i], pairs[i+1]
		old = append(old, `"`+n+`"`, `"`+s+`"`, n+"[", s+"[")
	}
	e := *f.err
	e.Message = strings.NewReplacer(old...).Replace(e.Message)
	return &failure{status: f.status, err: &e}
}

// nativeRequest is the request of the native route, made from r.
func nativeRequest(r *http.Request, method string, body any, segments []string) (*http.Request, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("encoding a native request: %w", err)
		}
	}
	// The context keeps what auth.Identify found of the credentials, and
	// drops the routing state of the compat route: a chi router takes a
	// route context it finds for a parent router's, and would route the
	// remains of the compat path.
	ctx := context.WithValue(r.Context(), chi.RouteCtxKey, (*chi.Context)(nil))
	req := r.Clone(ctx)
	req.Method = method
	req.URL = nativeURL(segments)
	req.RequestURI = req.URL.RequestURI()
	req.Body = http.NoBody
	req.ContentLength = 0
	req.TransferEncoding = nil
	req.Header.Del("Content-Length")
	if b != nil {
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// nativeURL is the URL of a path of segments, each escaped in RawPath,
// as a client that escapes ids sends it.
func nativeURL(segments []string) *url.URL {
	var path, raw strings.Builder
	for _, s := range segments {
		path.WriteString("/" + s)
		raw.WriteString("/" + url.PathEscape(s))
	}
	return &url.URL{Path: path.String(), RawPath: raw.String()}
}

// answer records the answer of a native route.
type answer struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (a *answer) Header() http.Header {
	if a.header == nil {
		a.header = http.Header{}
	}
	return a.header
}

func (a *answer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *answer) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.body.Write(b)
}

// failure is the error in the envelope the answer holds, or nil.
func (a *answer) failure() *failure {
	var env struct {
		Error *httpapi.Error `json:"error"`
	}
	if json.Unmarshal(a.body.Bytes(), &env) != nil || env.Error == nil {
		return nil
	}
	return &failure{status: a.status, err: env.Error}
}
