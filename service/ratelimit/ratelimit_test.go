package ratelimit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimiter(t *testing.T, app, user Rule, c *clock) (*Limiter, http.Handler) {
	t.Helper()
	l, err := New(Config{Server: "test", Now: c.now, Scopes: []Scope{
		{Name: "app", Rule: app, Key: PathApp},
		{Name: "user", Rule: user, Key: PathUser},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return l, l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
}

// do sends a request to path and returns its status and Retry-After.
func do(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	if w.Code == http.StatusTooManyRequests {
		var e struct{ Error struct{ Code string } }
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code != "rate_limited" {
			t.Fatalf("429 with body %q, want the envelope with code rate_limited", w.Body)
		}
	}
	return w.Code, w.Header().Get("Retry-After")
}

func TestBurstThenRetryAfter(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l, h := newLimiter(t, Unlimited, Rule{PerSecond: 0.5, Burst: 3}, c)
	for i := range 3 {
		if code, _ := do(t, h, "/v1/apps/chat/users/alice/status"); code != http.StatusNoContent {
			t.Fatalf("request %d of the burst: %d", i, code)
		}
	}
	code, retry := do(t, h, "/v1/apps/chat/users/alice/status")
	if code != http.StatusTooManyRequests || retry != "2" {
		t.Fatalf("over the burst: %d, Retry-After %q; want 429 and 2 (one token every 2 s)", code, retry)
	}
	// Another user has a bucket of its own; a request naming no user is
	// not limited per user.
	if code, _ := do(t, h, "/v1/apps/chat/users/bob/status"); code != http.StatusNoContent {
		t.Fatalf("bob: %d", code)
	}
	if code, _ := do(t, h, "/v1/apps/chat/status/query"); code != http.StatusNoContent {
		t.Fatalf("status query: %d", code)
	}
	c.add(1500 * time.Millisecond)
	if code, retry := do(t, h, "/v1/apps/chat/users/alice/status"); code != http.StatusTooManyRequests || retry != "1" {
		t.Fatalf("1.5 s later: %d, Retry-After %q; want 429 and 1", code, retry)
	}
	c.add(500 * time.Millisecond)
	if code, _ := do(t, h, "/v1/apps/chat/users/alice/status"); code != http.StatusNoContent {
		t.Fatalf("once a token is back: %d", code)
	}
	if n := testutil.ToFloat64(l.limited.WithLabelValues("user")); n != 2 {
		t.Fatalf("rate_limited_total{scope=user} = %v, want 2", n)
	}
}

// TestAppLimitSpansUsers: many users of one app share its bucket, and a
// request refused per user takes no token from the app.
func TestAppLimitSpansUsers(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l, h := newLimiter(t, Rule{PerSecond: 1, Burst: 5}, Rule{PerSecond: 1, Burst: 1}, c)
	if code, _ := do(t, h, "/v1/apps/chat/users/u0/status"); code != http.StatusNoContent {
		t.Fatalf("u0: %d", code)
	}
	// u0 again: refused per user; the app keeps its 4 tokens.
	if code, _ := do(t, h, "/v1/apps/chat/users/u0/status"); code != http.StatusTooManyRequests {
		t.Fatalf("u0 again: %d, want 429", code)
	}
	for i := 1; i <= 4; i++ {
		if code, _ := do(t, h, fmt.Sprintf("/v1/apps/chat/users/u%d/status", i)); code != http.StatusNoContent {
			t.Fatalf("u%d: %d", i, code)
		}
	}
	if code, _ := do(t, h, "/v1/apps/chat/users/u5/status"); code != http.StatusTooManyRequests {
		t.Fatalf("u5, the app's sixth request: %d, want 429", code)
	}
	// Another app, and paths of no app, are not limited by chat's bucket.
	for _, p := range []string{"/v1/apps/other/users/u0/status", "/healthz", "/v1/gateways/gw/heartbeat"} {
		if code, _ := do(t, h, p); code != http.StatusNoContent {
			t.Fatalf("%s: %d", p, code)
		}
	}
	if n := testutil.ToFloat64(l.limited.WithLabelValues("app")); n != 1 {
		t.Fatalf("rate_limited_total{scope=app} = %v, want 1", n)
	}
}

// TestHostileKeysStayBounded floods the user scope with made-up users:
// the buckets never exceed MaxKeys, and refilled ones are swept.
func TestHostileKeysStayBounded(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l, err := New(Config{Server: "test", Now: c.now, MaxKeys: 100, SweepEvery: time.Second,
		Scopes: []Scope{{Name: "user", Rule: Rule{PerSecond: 1, Burst: 2}, Key: PathUser}}})
	if err != nil {
		t.Fatal(err)
	}
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	sc := l.scopes[0]
	for i := range 10_000 {
		do(t, h, fmt.Sprintf("/v1/apps/chat/users/made-up-%d/status", i))
		if n := sc.size(); n > 100 {
			t.Fatalf("after %d keys: %d buckets, over MaxKeys 100", i+1, n)
		}
	}
	if n := testutil.ToFloat64(l.evicted.WithLabelValues("user")); n < 9_000 {
		t.Fatalf("evicted %v buckets in use, want about 9900", n)
	}
	// Once every bucket has refilled, the next new key sweeps them all.
	c.add(3 * time.Second)
	do(t, h, "/v1/apps/chat/users/late/status")
	if n := sc.size(); n != 1 {
		t.Fatalf("%d buckets after a sweep, want 1", n)
	}
}

func TestNewRefusesBadRules(t *testing.T) {
	for _, r := range []Rule{{PerSecond: 0, Burst: 1}, {PerSecond: 1, Burst: 0}, {PerSecond: -1, Burst: 1}} {
		if _, err := New(Config{Scopes: []Scope{{Name: "app", Rule: r, Key: PathApp}}}); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
}

func TestKeys(t *testing.T) {
	for _, c := range []struct{ path, app, user string }{
		{"/v1/apps/chat/status/query", "chat", ""},
		{"/v1/apps/chat/users/alice/status", "chat", "chat\x00alice"},
		{"/v1/apps/chat/users/a%2Fb/friends/c", "chat", "chat\x00a/b"},
		{"/v1/apps/chat/ws?user=bob&session=s", "chat", "chat\x00bob"},
		{"/v1/apps/chat/ws", "chat", ""},
		{"/v1/apps/chat/events", "chat", ""},
		{"/v1/gateways/gw-1/heartbeat", "", ""},
		{"/healthz", "", ""},
		{"/v1/apps/", "", ""},
		// ids longer than any valid one are not counted (refused 400)
		{"/v1/apps/" + strings.Repeat("a", 65) + "/users/alice/status", "", ""},
		{"/v1/apps/chat/users/" + strings.Repeat("u", 129) + "/status", "chat", ""},
		{"/v1/apps/chat/ws?user=" + strings.Repeat("u", 129), "chat", ""},
		{"/v1/apps/chat/users/" + strings.Repeat("u", 128) + "/status", "chat", "chat\x00" + strings.Repeat("u", 128)},
	} {
		r := httptest.NewRequest("GET", c.path, nil)
		if app, user := PathApp(r), PathUser(r); app != c.app || user != c.user {
			t.Errorf("%s: app %q user %q, want %q %q", c.path, app, user, c.app, c.user)
		}
	}
}
