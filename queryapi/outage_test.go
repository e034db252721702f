package queryapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/redisstore/redistest"
)

// With Redis down, lookups answer 503 unavailable and /readyz is not
// ready, while /healthz still answers; once Redis is back, so are the
// lookups and readiness.
func TestRedisDown(t *testing.T) {
	rs := redistest.NewServer(t, redistest.Options{AppendOnly: true})
	opts, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	// Fail fast rather than retry: what is answered does not depend on
	// it, and the test stays short.
	opts.MaxRetries, opts.DialerRetries = -1, 1
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	h := newHarnessOn(t, rdb)

	rs.Kill()
	for _, l := range lookups {
		code, header, body := h.doHeader(l.method, l.path, l.body)
		msg := wantError(t, code, body, http.StatusServiceUnavailable, "unavailable")
		if !strings.Contains(msg, "redis") || !strings.Contains(msg, "retry") {
			t.Errorf("%s %s: message %q does not say redis is unavailable and to retry", l.method, l.path, msg)
		}
		if got := header.Get("Presence-Rebuilding"); got != "" {
			t.Errorf("%s %s: Presence-Rebuilding %q while the rebuild state cannot be read", l.method, l.path, got)
		}
	}
	if code, body := h.do("GET", "/readyz", ""); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "redis") {
		t.Errorf("/readyz with Redis down: %d %s, want 503 naming redis", code, body)
	}
	if code, body := h.do("GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz with Redis down: %d %s, want 200", code, body)
	}

	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	// The Redis client redials on its own, within about a second.
	eventually(t, "/readyz answers 200 once Redis is back", func() bool {
		code, _ := h.do("GET", "/readyz", "")
		return code == http.StatusOK
	})
	for _, l := range lookups {
		if code, body := h.do(l.method, l.path, l.body); code != http.StatusOK {
			t.Errorf("%s %s once Redis is back: %d %s", l.method, l.path, code, body)
		}
	}
	if _, body := h.do("GET", "/v1/apps/chat/users/alice/status", ""); !strings.Contains(string(body), `"state":"online"`) {
		t.Errorf("alice once Redis is back: %s, want her online as before", body)
	}
}

// eventually waits until ok holds, for at most 10s: for what a server
// reaches on its own, such as reconnecting to a Redis that came back.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
