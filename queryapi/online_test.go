package queryapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestOnlineUsers lists the harness's online users (alice, "a/b%c"; bob
// is offline), sorted, by prefix (escaped ids and glob characters taken
// literally), cut at limit with truncated set, and an app with nobody as
// an empty list.
func TestOnlineUsers(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		query, want string
	}{
		{"", `{"users":[{"user":"a/b%c","sessions":1},{"user":"alice","sessions":1}],"truncated":false}`},
		{"?prefix=al", `{"users":[{"user":"alice","sessions":1}],"truncated":false}`},
		{"?prefix=" + url.QueryEscape("a/b%"), `{"users":[{"user":"a/b%c","sessions":1}],"truncated":false}`},
		{"?prefix=bob", `{"users":[],"truncated":false}`},
		{"?prefix=" + url.QueryEscape("*"), `{"users":[],"truncated":false}`},
		{"?prefix=" + url.QueryEscape("a[l]"), `{"users":[],"truncated":false}`},
		{"?limit=1", `{"users":[{"user":"a/b%c","sessions":1}],"truncated":true}`},
	}
	for _, c := range cases {
		code, body := h.do("GET", "/v1/apps/chat/online"+c.query, "")
		if code != http.StatusOK || strings.TrimSpace(string(body)) != c.want {
			t.Errorf("online%s: %d %s, want 200 %s", c.query, code, body, c.want)
		}
	}
	code, body := h.do("GET", "/v1/apps/games/online", "")
	var page struct{ Users []any }
	if err := json.Unmarshal(body, &page); code != http.StatusOK || err != nil || page.Users == nil || len(page.Users) != 0 {
		t.Errorf("an app with nobody: %d %s, want 200 and an empty list", code, body)
	}
}

// TestOnlineUsersRefused: a limit out of range or not a number, an
// over-long prefix, a bad app are 400 invalid.
func TestOnlineUsersRefused(t *testing.T) {
	h := newHarness(t)
	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=1001", "?limit=abc", "?limit=1e3", "?prefix=" + strings.Repeat("a", 129)} {
		code, body := h.do("GET", "/v1/apps/chat/online"+q, "")
		wantError(t, code, body, http.StatusBadRequest, "invalid")
	}
	code, body := h.do("GET", "/v1/apps/"+strings.Repeat("x", 300)+"/online", "")
	wantError(t, code, body, http.StatusBadRequest, "invalid")
}

// TestOnlineUsersInvisible: an invisible user is offline to everyone but
// itself, so the online list leaves it out, for any key; a visible
// setting changes nothing.
func TestOnlineUsersInvisible(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.rdb.HSet(ctx, h.userKey("alice"), "p", "1:everyone:5000").Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.HSet(ctx, h.userKey("a/b%c"), "p", "0:nobody:0").Err(); err != nil {
		t.Fatal(err)
	}
	code, body := h.do("GET", "/v1/apps/chat/online", "")
	if want := `{"users":[{"user":"a/b%c","sessions":1}],"truncated":false}`; code != http.StatusOK || strings.TrimSpace(string(body)) != want {
		t.Errorf("alice invisible: %d %s, want 200 %s", code, body, want)
	}
}
