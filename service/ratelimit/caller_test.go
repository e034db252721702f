package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
)

// TestCallerKeys: behind auth.Identify, a user is counted as the caller
// whichever way the token comes (header, or the query parameter token of a
// WebSocket), whichever user the request names; requests without valid
// credentials spend nobody's requests.
func TestCallerKeys(t *testing.T) {
	f := authtest.New(t)
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	flags := Flags{App: Rule{PerSecond: 0.001, Burst: 4}, User: Rule{PerSecond: 0.001, Burst: 2}}
	l, err := New(Config{Server: "test", Scopes: flags.Scopes(true)})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Identify(l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })))
	do := func(path, bearer string) int {
		r := httptest.NewRequest("GET", path, nil)
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	alice := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	socket := "/v1/apps/chat/ws?" + url.Values{"user": {"alice"}, "session": {"s"}, "token": {alice}}.Encode()
	for range 10 {
		if got := do("/v1/apps/chat/users/bob/status", ""); got != http.StatusNoContent {
			t.Fatalf("no credentials: %d, want them let through to be refused 401 by the route", got)
		}
		if got := do("/v1/apps/chat/ws?token=x.y.z&user=alice", ""); got != http.StatusNoContent {
			t.Fatalf("a bad token: %d, want it let through to be refused 401 by the route", got)
		}
	}
	for i, c := range []struct{ path, bearer string }{
		{socket, ""}, // alice's socket, token in the query
		{"/v1/apps/chat/users/carol/status", alice}, // alice reading carol
	} {
		if got := do(c.path, c.bearer); got != http.StatusNoContent {
			t.Fatalf("alice's request %d: %d", i, got)
		}
	}
	for _, c := range []struct{ path, bearer string }{{socket, ""}, {"/v1/apps/chat/users/dave/status", alice}} {
		if got := do(c.path, c.bearer); got != http.StatusTooManyRequests {
			t.Fatalf("alice's third request (%s): %d, want 429", c.path, got)
		}
	}
	bob := authtest.HS256(t, authtest.UserSecret, "chat", "bob")
	for range 2 {
		if got := do("/v1/apps/chat/users/alice/status", bob); got != http.StatusNoContent {
			t.Fatalf("bob's request: %d", got)
		}
	}
	// The app's four are spent: alice's two and bob's two.
	if got := do("/v1/apps/chat/users/alice/status", authtest.Read); got != http.StatusTooManyRequests {
		t.Fatalf("a read key after the app's burst: %d, want 429", got)
	}
}
