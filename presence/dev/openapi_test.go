package dev_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/presence-im/presence/service/openapi"
)

// wantOpenAPI checks that each of the pipeline's two listeners serves its
// own server's OpenAPI document, to anyone.
func wantOpenAPI(t *testing.T, p *pipeline) {
	t.Helper()
	for _, c := range []struct {
		name, host string
		doc        []byte
	}{{"query API", p.Query, openapi.QueryAPI()}, {"gateway server", p.Gateway, openapi.Gateway()}} {
		resp, err := http.Get("http://" + c.host + openapi.Path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != string(c.doc) {
			t.Errorf("GET %s on the %s's address, without credentials: %d %.100s; want 200 and the %s's document",
				openapi.Path, c.name, resp.StatusCode, body, c.name)
		}
	}
}
