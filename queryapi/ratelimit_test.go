package queryapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
	"github.com/presence-im/presence/service/ratelimit"
)

// TestRateLimits sends a burst of one user's requests, then of the app's:
// the request over a limit is answered 429 rate_limited with Retry-After,
// and the health endpoints are not limited.
func TestRateLimits(t *testing.T) {
	h := newHarness(t, func(c *queryapi.Config) {
		f := ratelimit.Flags{App: ratelimit.Rule{PerSecond: 0.01, Burst: 6}, User: ratelimit.Rule{PerSecond: 0.01, Burst: 3}}
		c.RateLimits = f.Scopes(false)
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

// TestRateLimitsCountTheCaller: with credentials checked, a user token is
// counted as its own user whichever users it reads (rotating the users it
// names gains it nothing), other users keep their requests, and requests
// without valid credentials are refused 401 without spending the app's.
// (The users asked for are unknown: 404 is an answer, 429 a refusal.)
func TestRateLimitsCountTheCaller(t *testing.T) {
	f := authtest.New(t)
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *queryapi.Config) {
		c.Auth = a
		rates := ratelimit.Flags{App: ratelimit.Rule{PerSecond: 0.01, Burst: 5}, User: ratelimit.Rule{PerSecond: 0.01, Burst: 2}}
		c.RateLimits = rates.Scopes(true)
	})
	alice := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	bob := authtest.HS256(t, authtest.UserSecret, "chat", "bob")
	for range 20 {
		if code, _, body := h.doAs("", "GET", "/v1/apps/chat/users/carol/status", ""); code != http.StatusUnauthorized {
			t.Fatalf("without credentials: %d %s, want 401", code, body)
		}
		if code, _, body := h.doAs("wrong-secret-000000", "GET", "/v1/apps/chat/users/carol/status", ""); code != http.StatusUnauthorized {
			t.Fatalf("with a wrong secret: %d %s, want 401", code, body)
		}
	}
	for i, target := range []string{"carol", "dave"} {
		if code, _, body := h.doAs(alice, "GET", "/v1/apps/chat/users/"+target+"/status", ""); code != http.StatusNotFound {
			t.Fatalf("alice's request %d: %d %s", i, code, body)
		}
	}
	code, _, body := h.doAs(alice, "GET", "/v1/apps/chat/users/erin/status", "")
	wantError(t, code, body, http.StatusTooManyRequests, "rate_limited")
	for i := range 2 {
		if code, _, body := h.doAs(bob, "GET", "/v1/apps/chat/users/carol/status", ""); code != http.StatusNotFound {
			t.Fatalf("bob's request %d: %d %s", i, code, body)
		}
	}
	// The app's five: alice's two, bob's two, and one of a read key.
	if code, _, body := h.doAs(authtest.Read, "GET", "/v1/apps/chat/users/carol/status", ""); code != http.StatusNotFound {
		t.Fatalf("the read key's request: %d %s", code, body)
	}
	code, _, body = h.doAs(authtest.Read, "GET", "/v1/apps/chat/users/dave/status", "")
	wantError(t, code, body, http.StatusTooManyRequests, "rate_limited")
}
