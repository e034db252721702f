package queryapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/service/ratelimit"
)

// TestRateLimits sends a burst of one user's requests, then of the app's:
// the request over a limit is answered 429 rate_limited with Retry-After,
// and the health endpoints are not limited.
func TestRateLimits(t *testing.T) {
	h := newHarness(t, func(c *queryapi.Config) {
		f := ratelimit.Flags{App: ratelimit.Rule{PerSecond: 0.01, Burst: 6}, User: ratelimit.Rule{PerSecond: 0.01, Burst: 3}}
		c.RateLimits = f.Scopes(nil)
	})
	for i := range 3 {
		if code, body := h.do("GET", "/v1/apps/chat/users/alice/status", ""); code != http.StatusOK {
			t.Fatalf("request %d of alice's burst: %d %s", i, code, body)
		}
	}
	code, header, body := h.doHeader("GET", "/v1/apps/chat/users/alice/status", "")
	wantError(t, code, body, http.StatusTooManyRequests, "rate_limited")
	if s, err := strconv.Atoi(header.Get("Retry-After")); err != nil || s < 1 || s > 100 {
		t.Fatalf("Retry-After %q, want the seconds until a token (at most 100)", header.Get("Retry-After"))
	}
	// bob has his own bucket; a status query names no user. Together they
	// take the app's last three tokens.
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/apps/chat/users/bob/status", ""},
		{"GET", "/v1/apps/chat/users/bob/status", ""},
		{"POST", "/v1/apps/chat/status/query", `{"users":["alice"]}`},
	} {
		if code, body := h.do(r.method, r.path, r.body); code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", r.method, r.path, code, body)
		}
	}
	code, body = h.do("POST", "/v1/apps/chat/status/query", `{"users":["alice"]}`)
	wantError(t, code, body, http.StatusTooManyRequests, "rate_limited")
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, body := h.do("GET", p, ""); code != http.StatusOK {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	_, metrics := h.do("GET", "/metrics", "")
	for _, want := range []string{
		`presence_http_rate_limited_total{scope="app",server="queryapi"} 1`,
		`presence_http_rate_limited_total{scope="user",server="queryapi"} 1`,
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
