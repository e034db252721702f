// Package openapitest checks a server's real requests and answers against
// its OpenAPI document (package openapi), for the servers' tests: a
// schema, status or header the document gets wrong fails them. It uses
// libopenapi-validator, and so stays out of the servers' binaries.
package openapitest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
)

// Checker sends requests to a server and checks each exchange against a
// document.
type Checker struct {
	v      validator.Validator
	client *http.Client
}

// New returns a Checker of doc.
func New(t testing.TB, doc []byte) *Checker {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatalf("reading the openapi document: %v", err)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		t.Fatalf("building a validator of the openapi document: %v", errs)
	}
	return &Checker{v: v, client: &http.Client{Timeout: 30 * time.Second}}
}

// Request is one request to send.
type Request struct {
	Method, URL, Body string
	Header            http.Header
	// Invalid marks a request the document forbids, sent to check the
	// error it is answered with: only the answer is checked.
	Invalid bool
}

// Do sends r and checks that the document describes the answer (and,
// unless r is Invalid, the request). It returns the answer's status and
// body.
func (c *Checker) Do(t testing.TB, r Request) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(r.Method, r.URL, strings.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if r.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The validator reads both bodies again.
	req.Body = io.NopCloser(strings.NewReader(r.Body))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	check := c.v.ValidateHttpRequestResponse
	if r.Invalid {
		check = c.v.ValidateHttpResponse
	}
	if ok, errs := check(req, resp); !ok {
		for _, e := range errs {
			t.Errorf("%s %s → %d %.300s: the document disagrees: %s: %s", r.Method, req.URL.Path, resp.StatusCode, body, e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  at %s: %s", se.FieldPath, se.Reason)
			}
		}
	}
	return resp.StatusCode, body
}
