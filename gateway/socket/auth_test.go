package socket_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/socket"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
)

// authStart starts a harness whose server checks user tokens against an
// authtest fixture.
func authStart(t *testing.T, origins ...string) (*harness, *authtest.Fixture) {
	t.Helper()
	f := authtest.New(t)
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	return start(t, setup{cfg: socket.Config{Auth: a, AllowedOrigins: origins}}), f
}

// TestAuthSockets opens sockets with every kind of credential: only a
// user token of the app opens one, as its own user; a refused socket
// publishes nothing.
func TestAuthSockets(t *testing.T) {
	h, f := authStart(t)
	alice := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	expired := authtest.Sign(t, jwt.SigningMethodHS256, []byte(authtest.UserSecret), "", authtest.Claims("chat", "alice", -time.Hour))
	eddsa := authtest.Sign(t, jwt.SigningMethodEdDSA, f.Ed, "ed-1", authtest.Claims("chat", "alice", time.Hour))
	q := func(user, token string) url.Values {
		v := url.Values{"session": {"s-" + user}, "device": {"web"}}
		if user != "" {
			v.Set("user", user)
		}
		if token != "" {
			v.Set("token", token)
		}
		return v
	}
	bearer := func(cred string) *websocket.DialOptions {
		return &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + cred}}}
	}
	for _, tc := range []struct {
		name  string
		query url.Values
		opts  *websocket.DialOptions
		want  int
	}{
		{"no credential", q("alice", ""), nil, 401},
		{"wrong token", q("alice", "x.y.z"), nil, 401},
		{"expired token", q("alice", expired), nil, 401},
		{"alg none", q("alice", authtest.None(t, "chat", "alice")), nil, 401},
		{"a key's secret as token", q("alice", authtest.Backend), nil, 403},
		{"a backend key in the header", q("alice", ""), bearer(authtest.Backend), 403},
		{"another user's id", q("bob", alice), nil, 403},
		{"another user's id, header", q("bob", ""), bearer(alice), 403},
		{"other app's token", q("alice", authtest.HS256(t, authtest.GamesUser, "games", "alice")), nil, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, resp, err := h.dial(tc.query, tc.opts)
			if err == nil {
				ws.CloseNow()
				t.Fatalf("opened, want %d", tc.want)
			}
			status, code := errorOf(t, resp)
			want := map[int]string{401: "unauthorized", 403: "forbidden"}[tc.want]
			if status != tc.want || code != want {
				t.Errorf("%d %s, want %d %s", status, code, tc.want, want)
			}
		})
	}
	if n := h.published(); n != 0 {
		t.Fatalf("refused sockets published %d records", n)
	}

	for _, tc := range []struct {
		name  string
		query url.Values
		opts  *websocket.DialOptions
		user  string
	}{
		{"token in the query", q("alice", alice), nil, "alice"},
		{"token in the header, no user: the token's", q("", ""), bearer(eddsa), "alice"},
		{"bob's own token", q("bob", ""), bearer(authtest.HS256(t, authtest.UserSecret2, "chat", "bob")), "bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, resp, err := h.dial(tc.query, tc.opts)
			if err != nil {
				status, code := 0, ""
				if resp != nil {
					status, code = errorOf(t, resp)
				}
				t.Fatalf("refused: %v (%d %s)", err, status, code)
			}
			got := h.next()
			if !strings.HasPrefix(got.Key, "chat/"+tc.user+"/") || got.Type != "EVENT_TYPE_CONNECT" {
				t.Errorf("published %+v, want a connect of %s", got, tc.user)
			}
			ws.Close(websocket.StatusNormalClosure, "")
			h.next() // its disconnect
		})
	}
}

// TestOrigins opens sockets from pages of other hosts: refused unless
// allowed; the gateway's own host and clients without Origin are let in.
func TestOrigins(t *testing.T) {
	h, _ := authStart(t, "https://app.example.com", "*.trusted.test")
	token := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	self := "http" + strings.TrimPrefix(h.base, "ws")
	for i, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://evil.example", false},
		{"http://app.example.com", false}, // scheme matters in an origin pattern
		{"https://app.example.com.evil.example", false},
		{"null", false},
		{"https://app.example.com", true},
		{"https://chat.trusted.test", true},
		{self, true},
		{"", true},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			opts := &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}}
			if tc.origin != "" {
				opts.HTTPHeader.Set("Origin", tc.origin)
			}
			before := h.published()
			ws, resp, err := h.dial(url.Values{"session": {"o" + string(rune('a'+i))}, "device": {"web"}}, opts)
			if !tc.ok {
				if err == nil {
					ws.CloseNow()
					t.Fatal("opened from a foreign origin")
				}
				if status, code := errorOf(t, resp); status != 403 || code != "forbidden" {
					t.Errorf("%d %s, want 403 forbidden", status, code)
				}
				if n := h.published(); n != before {
					t.Errorf("a refused origin published %d records", n-before)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			h.next()
			ws.Close(websocket.StatusNormalClosure, "")
			h.next()
		})
	}
}

func TestBadOriginPattern(t *testing.T) {
	pub, err := gateway.New(gateway.Brokers("127.0.0.1:1"), gateway.ID("gw"))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	_, err = socket.New(socket.Config{Publisher: pub, AllowedOrigins: []string{"https://ok.example", "["}})
	if err == nil || !strings.Contains(err.Error(), `"["`) {
		t.Errorf("error %v, want one naming the bad pattern", err)
	}
}

// TestTokenExpiryEndsTheSocket: a socket lives no longer than its token.
// A token that expired less than auth.Leeway ago still opens a socket,
// which closes (policy violation) when the leeway runs out, with its
// disconnect published first.
func TestTokenExpiryEndsTheSocket(t *testing.T) {
	h, _ := authStart(t)
	// exp is in whole seconds: the token ends 3 to 4 seconds from now,
	// time enough to dial on a busy machine.
	token := authtest.Sign(t, jwt.SigningMethodHS256, []byte(authtest.UserSecret), "",
		authtest.Claims("chat", "alice", 4*time.Second-auth.Leeway))
	ws, _, err := h.dial(url.Values{"user": {"alice"}, "session": {"s1"}, "device": {"web"}, "token": {token}}, nil)
	if err != nil {
		t.Fatalf("a token within its leeway: %v", err)
	}
	defer ws.CloseNow()
	if got := h.next(); got.Type != "EVENT_TYPE_CONNECT" {
		t.Fatalf("published %+v, want alice's connect", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, _, err = ws.Read(ctx)
	if status := websocket.CloseStatus(err); status != websocket.StatusPolicyViolation {
		t.Fatalf("read %v (status %d), want the close of an expired token (%d)", err, status, websocket.StatusPolicyViolation)
	}
	if got := h.next(); got.Type != "EVENT_TYPE_DISCONNECT" || got.Key != "chat/alice/s1" {
		t.Fatalf("published %+v, want alice's disconnect", got)
	}
	if n := metric(t, h.reg, "presence_gateway_socket_disconnects_total", "cause", "token_expired"); n != 1 {
		t.Fatalf("token_expired disconnects: %v, want 1", n)
	}
}
