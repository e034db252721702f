package queryapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestConsoleServedOpen: a server that checks credentials serves the
// console's page and files to anyone (they hold no data), with a content
// security policy that keeps it to its own origin; a file it does not
// have is 404, a write 405, and its data routes still need credentials.
func TestConsoleServedOpen(t *testing.T) {
	h, _, _ := authHarness(t)
	client := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(h.srv.URL + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d to %q, want 301 to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for path, want := range map[string]string{"/console/": "text/html", "/console/console.js": "text/javascript", "/console/ops.js": "text/javascript", "/console/console.css": "text/css"} {
		code, header, body := h.doHeader("GET", path, "")
		if code != http.StatusOK || !strings.HasPrefix(header.Get("Content-Type"), want) || len(body) == 0 {
			t.Errorf("GET %s without credentials: %d %q, want 200 %s", path, code, header.Get("Content-Type"), want)
		}
		if csp := header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	for _, path := range []string{"/console/nope.js", "/console/..%2Fconsole.go", "/console/assets", "/console/a/b"} {
		code, body := h.do("GET", path, "")
		wantError(t, code, body, http.StatusNotFound, "not_found")
	}
	if code, _ := h.do("POST", "/console/", "{}"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/: %d, want 405", code)
	}
	code, body := h.do("GET", "/v1/apps/chat/online", "")
	wantError(t, code, body, http.StatusUnauthorized, "unauthorized")
	code, body = h.do("GET", "/v1/ops", "")
	wantError(t, code, body, http.StatusUnauthorized, "unauthorized")
}
