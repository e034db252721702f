package queryapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
)

// authHarness is a harness whose server checks credentials against an
// authtest fixture.
func authHarness(t *testing.T) (*harness, *authtest.Fixture, *auth.Authenticator) {
	t.Helper()
	f := authtest.New(t)
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *queryapi.Config) { c.Auth = a })
	return h, f, a
}

// doAs sends a request with "Authorization: Bearer cred" (none when cred
// is empty) and the headers given as name, value pairs.
func (h *harness) doAs(cred, method, path, body string, header ...string) (int, http.Header, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// credentials of the table test: valid ones by name, and the invalid
// ones every endpoint answers 401.
func credentials(t *testing.T, f *authtest.Fixture) (valid, invalid map[string]string) {
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid = map[string]string{
		"backend key":         authtest.Backend,
		"read key":            authtest.Read,
		"gateway key":         authtest.Gateway,
		"other app's key":     authtest.GamesBackend,
		"alice hs256":         authtest.HS256(t, authtest.UserSecret, "chat", "alice"),
		"alice hs256 rotated": authtest.HS256(t, authtest.UserSecret2, "chat", "alice"),
		"alice es256 jwks":    authtest.Sign(t, jwt.SigningMethodES256, f.EC, "ec-1", authtest.Claims("chat", "alice", time.Hour)),
		"alice eddsa jwks":    authtest.Sign(t, jwt.SigningMethodEdDSA, f.Ed, "ed-1", authtest.Claims("chat", "alice", time.Hour)),
		"bob hs256":           authtest.HS256(t, authtest.UserSecret, "chat", "bob"),
		"other app's token":   authtest.HS256(t, authtest.GamesUser, "games", "alice"),
	}
	invalid = map[string]string{
		"no credential":            "",
		"wrong secret":             authtest.Backend + "-wrong",
		"expired token":            authtest.Sign(t, jwt.SigningMethodHS256, []byte(authtest.UserSecret), "", authtest.Claims("chat", "alice", -time.Hour)),
		"token of an unknown key":  authtest.Sign(t, jwt.SigningMethodES256, stranger, "ec-1", authtest.Claims("chat", "alice", time.Hour)),
		"alg none":                 authtest.None(t, "chat", "alice"),
		"path app in a bad secret": authtest.HS256(t, authtest.GamesUser, "chat", "alice"),
	}
	return valid, invalid
}

// TestAuthTable sends every credential to every route. Everything not
// listed for a route answers 403; invalid credentials 401. A refused
// write writes nothing to Kafka.
func TestAuthTable(t *testing.T) {
	h, f, _ := authHarness(t)
	valid, invalid := credentials(t, f)
	alice := []string{"alice hs256", "alice hs256 rotated", "alice es256 jwks", "alice eddsa jwks"}
	users := append([]string{"bob hs256"}, alice...)
	allow := func(status int, names ...string) map[string]int {
		m := map[string]int{}
		for _, n := range names {
			m[n] = status
		}
		return m
	}
	plus := func(m map[string]int, status int, names ...string) map[string]int {
		for _, n := range names {
			m[n] = status
		}
		return m
	}
	routes := []struct {
		method, path, body string
		allowed            map[string]int // by credential; the others: 403
	}{
		{"POST", "/v1/apps/chat/status/query", `{"users":["alice","bob"]}`, plus(allow(200, users...), 200, "read key", "backend key")},
		{"GET", "/v1/apps/chat/users/bob/status", "", plus(allow(200, users...), 200, "read key", "backend key")},
		{"GET", "/v1/apps/chat/users/alice/friends/status", "", plus(allow(200, alice...), 200, "read key", "backend key")},
		{"GET", "/v1/apps/chat/users/bob/friends/status", "", allow(200, "bob hs256", "read key", "backend key")},
		{"GET", "/v1/apps/chat/online", "", allow(200, "read key", "backend key")},
		{"GET", "/v1/ops", "", allow(200, "read key", "backend key", "other app's key")},
		{"PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":1,"text":"busy"}`, plus(allow(202, alice...), 202, "backend key")},
		{"PUT", "/v1/apps/chat/users/bob/custom-status", `{"status":1,"text":"hacked"}`, allow(202, "bob hs256", "backend key")},
		{"DELETE", "/v1/apps/chat/users/bob/custom-status", "", allow(202, "bob hs256", "backend key")},
		{"POST", "/v1/apps/chat/users/alice/subscriptions", `{"users":["bob"],"ttl_seconds":60}`, plus(allow(200, alice...), 200, "backend key")},
		{"POST", "/v1/apps/chat/users/bob/subscriptions", `{"users":["alice"],"ttl_seconds":60}`, allow(200, "bob hs256", "backend key")},
		{"DELETE", "/v1/apps/chat/users/bob/subscriptions", `{"users":["alice"]}`, allow(202, "bob hs256", "backend key")},
		{"PUT", "/v1/apps/chat/users/alice/friends/bob", "", allow(202, "backend key")},
		{"DELETE", "/v1/apps/chat/users/alice/friends/bob", "", allow(202, "backend key")},
		{"POST", "/v1/apps/games/status/query", `{"users":["alice"]}`, allow(200, "other app's key", "other app's token")},
		{"PUT", "/v1/apps/games/users/alice/friends/bob", "", allow(202, "other app's key")},
	}
	// Refusals first: once they all ran, Kafka must hold nothing.
	for _, rt := range routes {
		for name, cred := range invalid {
			t.Run("401/"+rt.method+" "+rt.path+"/"+name, func(t *testing.T) {
				code, header, body := h.doAs(cred, rt.method, rt.path, rt.body)
				wantError(t, code, body, http.StatusUnauthorized, "unauthorized")
				if header.Get("WWW-Authenticate") == "" {
					t.Error("a 401 without WWW-Authenticate")
				}
			})
		}
		for name, cred := range valid {
			if _, ok := rt.allowed[name]; ok {
				continue
			}
			t.Run("403/"+rt.method+" "+rt.path+"/"+name, func(t *testing.T) {
				code, _, body := h.doAs(cred, rt.method, rt.path, rt.body)
				wantError(t, code, body, http.StatusForbidden, "forbidden")
			})
		}
	}
	h.empty()
	for _, rt := range routes {
		for name, want := range rt.allowed {
			t.Run("allowed/"+rt.method+" "+rt.path+"/"+name, func(t *testing.T) {
				if code, _, body := h.doAs(valid[name], rt.method, rt.path, rt.body); code != want {
					t.Errorf("status %d, want %d: %s", code, want, body)
				}
			})
		}
	}
}

// TestAuthOpenRoutes checks /healthz, /readyz and /metrics need no
// credentials when the API does.
func TestAuthOpenRoutes(t *testing.T) {
	h, _, _ := authHarness(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, body := h.doAs("", "GET", path, ""); code != http.StatusOK {
			t.Errorf("%s without credentials: %d %s", path, code, body)
		}
	}
}

// TestAuthRotation rotates the backend key and the users' secret while
// serving: after the file drops the old ones and is reloaded, they
// answer 401 and the new ones keep working.
func TestAuthRotation(t *testing.T) {
	h, f, a := authHarness(t)
	const newKey = "chat-backend-secret-0002"
	path := "/v1/apps/chat/users/bob/status"
	oldToken := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	newToken := authtest.HS256(t, authtest.UserSecret2, "chat", "alice")
	chat := f.Apps["chat"].(map[string]any)
	chat["keys"] = []any{map[string]any{"id": "backend-2", "secret": newKey, "scopes": []string{"read"}}}
	chat["user_tokens"] = map[string]any{"hs256_secrets": []string{authtest.UserSecret2}}
	if code, _, _ := h.doAs(oldToken, "GET", path, ""); code != http.StatusOK {
		t.Fatalf("old token before the reload: %d", code)
	}
	f.Write()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	for cred, want := range map[string]int{authtest.Read: 401, oldToken: 401, newKey: 200, newToken: 200} {
		if code, _, body := h.doAs(cred, "GET", path, ""); code != want {
			t.Errorf("after the rotation: %d, want %d: %s", code, want, body)
		}
	}
}
