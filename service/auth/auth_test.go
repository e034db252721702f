package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-im/presence/service/auth/authtest"
	"github.com/presence-im/presence/service/httpapi"
)

func load(t *testing.T, file string) *Authenticator {
	t.Helper()
	a, err := New(Config{File: file})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// codeOf is the httpapi code of err, "" for nil.
func codeOf(err error) string {
	var e *httpapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return "not an httpapi error: " + err.Error()
	}
	return ""
}

func TestLoadRefusesBadFiles(t *testing.T) {
	const secret = "a-secret-long-enough-1234"
	key := func(fields string) string {
		return `{"apps":{"chat":{"keys":[{"id":"k1","secret":"` + secret + `"` + fields + `}]}}}`
	}
	hook := func(fields string) string { return `{"apps":{"chat":{"webhooks":[{` + fields + `}]}}}` }
	dir := t.TempDir()
	symmetric := filepath.Join(dir, "oct.json")
	authtest.WriteJSON(t, symmetric, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte(secret + secret), KeyID: "h"}}})
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	curve := filepath.Join(dir, "p384.json")
	authtest.WriteJSON(t, curve, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: p384.Public(), KeyID: "p"}}})
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	wrongAlg := filepath.Join(dir, "alg.json")
	authtest.WriteJSON(t, wrongAlg, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ed.Public(), KeyID: "e", Algorithm: "RS256"}}})
	for _, tc := range []struct{ name, file, want string }{
		{"not json", `{"apps":`, "unexpected EOF"},
		{"trailing data", `{"apps":{"chat":{}}} {}`, "data after"},
		{"no apps", `{"apps":{}}`, "no apps"},
		{"unknown top field", `{"apps":{"chat":{}},"users":1}`, `unknown field "users"`},
		{"unknown app field", `{"apps":{"chat":{"secret":"x"}}}`, `unknown field "secret"`},
		{"unknown key field", key(`,"scopes":["read"],"role":"admin"`), `unknown field "role"`},
		{"unknown scope", key(`,"scopes":["admin"]`), `app "chat" key "k1": unknown scope "admin"`},
		{"no scopes", key(``), `app "chat" key "k1": no scopes`},
		{"gateway without gateways", key(`,"scopes":["gateway"]`), `app "chat" key "k1": scope "gateway" needs "gateways"`},
		{"gateways without scope", key(`,"scopes":["read"],"gateways":["gw"]`), `app "chat" key "k1": lists "gateways"`},
		{"empty secret", `{"apps":{"chat":{"keys":[{"id":"k1","secret":"","scopes":["read"]}]}}}`, `app "chat" key "k1": empty secret`},
		{"short secret", `{"apps":{"chat":{"keys":[{"id":"k1","secret":"short","scopes":["read"]}]}}}`, `app "chat" key "k1": secret shorter`},
		{"no id", `{"apps":{"chat":{"keys":[{"secret":"` + secret + `","scopes":["read"]}]}}}`, `app "chat": keys[0] has no id`},
		{"same id twice", `{"apps":{"chat":{"keys":[{"id":"k1","secret":"` + secret + `","scopes":["read"]},{"id":"k1","secret":"` + secret + `x","scopes":["read"]}]}}}`, `key id "k1" is listed twice`},
		{"same secret twice", `{"apps":{"chat":{"keys":[{"id":"k1","secret":"` + secret + `","scopes":["read"]}]},"games":{"keys":[{"id":"k2","secret":"` + secret + `","scopes":["read"]}]}}}`, `app "games" key "k2": same secret as app "chat" key "k1"`},
		{"short hs256 secret", `{"apps":{"chat":{"user_tokens":{"hs256_secrets":["` + secret + `"]}}}}`, `app "chat": user_tokens.hs256_secrets[0] is shorter than 32`},
		{"missing jwks", `{"apps":{"chat":{"user_tokens":{"jwks_file":"nope.json"}}}}`, `app "chat": reading jwks file`},
		{"symmetric jwks key", `{"apps":{"chat":{"user_tokens":{"jwks_file":"` + symmetric + `"}}}}`, `kid "h"): not an RSA, P-256 or Ed25519 public key`},
		{"p384 jwks key", `{"apps":{"chat":{"user_tokens":{"jwks_file":"` + curve + `"}}}}`, `want P-256`},
		{"jwks alg of another kind", `{"apps":{"chat":{"user_tokens":{"jwks_file":"` + wrongAlg + `"}}}}`, `alg "RS256": this key can only be EdDSA`},
		{"webhook without secret", hook(`"url":"https://x"`), `app "chat": webhooks[0]: secret missing`},
		{"webhook short secret", hook(`"url":"https://x","secret":"short"`), `app "chat": webhooks[0]: secret missing or shorter than 16`},
		{"webhook without url", hook(`"secret":"` + secret + `"`), `app "chat": webhooks[0]: no url`},
		{"webhook ftp url", hook(`"url":"ftp://x/` + secret + `","secret":"` + secret + `"`), `webhooks[0]: url scheme is not http or https`},
		{"webhook relative url", hook(`"url":"/hook/` + secret + `","secret":"` + secret + `"`), `webhooks[0]: url scheme`},
		{"webhook url without host", hook(`"url":"https:///` + secret + `","secret":"` + secret + `"`), `webhooks[0]: url has no host`},
		{"webhook url with user info", hook(`"url":"https://u:` + secret + `@x/","secret":"` + secret + `"`), `webhooks[0]: url holds user info`},
		{"webhook url too long", hook(`"url":"https://x/` + strings.Repeat("a", 2048) + `","secret":"` + secret + `"`), `webhooks[0]: url longer than 2048`},
		{"webhook url twice", `{"apps":{"chat":{"webhooks":[{"url":"https://x/` + secret + `","secret":"` + secret + `"},{"url":"https://x/` + secret + `","secret":"` + secret + `"}]}}}`, `webhooks[1] has the url of webhooks[0]`},
		{"too many webhooks", `{"apps":{"chat":{"webhooks":[` + strings.Repeat(`{"url":"https://x","secret":"`+secret+`"},`, 8) + `{"url":"https://y","secret":"` + secret + `"}]}}}`, `app "chat": 9 webhooks; at most 8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "auth.json")
			if err := os.WriteFile(file, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{File: file})
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q holds the secret", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	f := authtest.New(t)
	a := load(t, f.File)
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Hour
	for _, tc := range []struct {
		name string
		cred string
		want Identity // zero: 401
	}{
		{"backend key", authtest.Backend, Identity{App: "chat", KeyID: "backend-1", Scopes: []string{"backend", "read"}}},
		{"gateway key", authtest.Gateway, Identity{App: "chat", KeyID: "gw-1", Scopes: []string{"gateway"}, Gateways: []string{"gw-1"}}},
		{"other app's key", authtest.GamesBackend, Identity{App: "games", KeyID: "backend-1", Scopes: []string{"backend", "read"}}},
		{"wrong secret", authtest.Backend + "x", Identity{}},
		{"a prefix of a secret", authtest.Backend[:len(authtest.Backend)-1], Identity{}},
		{"hs256 token", authtest.HS256(t, authtest.UserSecret, "chat", "alice"), Identity{App: "chat", User: "alice"}},
		{"hs256 token, second secret", authtest.HS256(t, authtest.UserSecret2, "chat", "alice"), Identity{App: "chat", User: "alice"}},
		{"other app's token", authtest.HS256(t, authtest.GamesUser, "games", "alice"), Identity{App: "games", User: "alice"}},
		{"token claiming another app than its secret's", authtest.HS256(t, authtest.UserSecret, "games", "alice"), Identity{}},
		{"token of an unknown app", authtest.HS256(t, authtest.UserSecret, "nope", "alice"), Identity{}},
		{"es256 token", authtest.Sign(t, jwt.SigningMethodES256, f.EC, "ec-1", authtest.Claims("chat", "bob", hour)), Identity{App: "chat", User: "bob"}},
		{"es256 token without kid", authtest.Sign(t, jwt.SigningMethodES256, f.EC, "", authtest.Claims("chat", "bob", hour)), Identity{App: "chat", User: "bob"}},
		{"eddsa token", authtest.Sign(t, jwt.SigningMethodEdDSA, f.Ed, "ed-1", authtest.Claims("chat", "bob", hour)), Identity{App: "chat", User: "bob"}},
		{"es256 token, kid of another key", authtest.Sign(t, jwt.SigningMethodES256, f.EC, "ed-1", authtest.Claims("chat", "bob", hour)), Identity{}},
		{"es256 token of a key not in the file", authtest.Sign(t, jwt.SigningMethodES256, stranger, "ec-1", authtest.Claims("chat", "bob", hour)), Identity{}},
		{"rs256 token, app without RSA keys", authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, "", authtest.Claims("chat", "bob", hour)), Identity{}},
		{"es256 token of an app without jwks", authtest.Sign(t, jwt.SigningMethodES256, f.EC, "ec-1", authtest.Claims("games", "bob", hour)), Identity{}},
		{"expired token", authtest.Sign(t, jwt.SigningMethodHS256, []byte(authtest.UserSecret), "", authtest.Claims("chat", "alice", -time.Hour)), Identity{}},
		{"token without exp", authtest.Sign(t, jwt.SigningMethodHS256, []byte(authtest.UserSecret), "", jwt.MapClaims{"sub": "alice", "app": "chat"}), Identity{}},
		{"token without sub", authtest.Sign(t, jwt.SigningMethodHS256, []byte(authtest.UserSecret), "", jwt.MapClaims{"app": "chat", "exp": time.Now().Add(hour).Unix()}), Identity{}},
		{"token without app", authtest.Sign(t, jwt.SigningMethodHS256, []byte(authtest.UserSecret), "", jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(hour).Unix()}), Identity{}},
		{"alg none", authtest.None(t, "chat", "alice"), Identity{}},
		{"hs384 with a valid secret", authtest.Sign(t, jwt.SigningMethodHS384, []byte(authtest.UserSecret), "", authtest.Claims("chat", "alice", hour)), Identity{}},
		// The public key of an ES256 key used as an HMAC secret: the
		// attack on verifiers that let a token pick its key's kind.
		{"hs256 signed with the jwks public key", authtest.Sign(t, jwt.SigningMethodHS256, must(t, (&jose.JSONWebKey{Key: f.EC.Public()}).MarshalJSON), "ec-1", authtest.Claims("chat", "bob", hour)), Identity{}},
		{"empty", "", Identity{}},
		{"garbage with dots", "a.b.c", Identity{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Verify(tc.cred)
			if tc.want.App == "" {
				if code := codeOf(err); code != httpapi.CodeUnauthorized {
					t.Fatalf("verified as %+v (error %v), want 401 unauthorized", id, err)
				}
				if tc.cred != "" && strings.Contains(err.Error(), tc.cred) {
					t.Errorf("error %q holds the credential", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v, want %+v", err, tc.want)
			}
			if id.String() != tc.want.String() || strings.Join(id.Scopes, ",") != strings.Join(tc.want.Scopes, ",") ||
				strings.Join(id.Gateways, ",") != strings.Join(tc.want.Gateways, ",") {
				t.Errorf("identity %+v, want %+v", id, tc.want)
			}
		})
	}
}

func TestAllow(t *testing.T) {
	backend := Identity{App: "chat", KeyID: "b", Scopes: []string{ScopeBackend}}
	read := Identity{App: "chat", KeyID: "r", Scopes: []string{ScopeRead}}
	gw := Identity{App: "chat", KeyID: "g", Scopes: []string{ScopeGateway}, Gateways: []string{"gw-1"}}
	alice := Identity{App: "chat", User: "alice"}
	for _, tc := range []struct {
		name string
		id   Identity
		need Need
		app  string
		user string
		want string // httpapi code, "" for allowed
	}{
		{"read key looks up", read, Lookup, "chat", "", ""},
		{"read key reads any user's friends", read, OwnLookup, "chat", "bob", ""},
		{"read key may not act", read, ActAs, "chat", "bob", httpapi.CodeForbidden},
		{"read key may not befriend", read, Backend, "chat", "bob", httpapi.CodeForbidden},
		{"backend key acts for anyone", backend, ActAs, "chat", "bob", ""},
		{"backend key befriends", backend, Backend, "chat", "bob", ""},
		{"backend key may not look up", backend, Lookup, "chat", "", httpapi.CodeForbidden},
		{"gateway key may not look up", gw, Lookup, "chat", "", httpapi.CodeForbidden},
		{"key of another app", read, Lookup, "games", "", httpapi.CodeForbidden},
		{"key may not open a socket", backend, Connect, "chat", "alice", httpapi.CodeForbidden},
		{"user looks up", alice, Lookup, "chat", "", ""},
		{"user reads own friends", alice, OwnLookup, "chat", "alice", ""},
		{"user may not read another's friends", alice, OwnLookup, "chat", "bob", httpapi.CodeForbidden},
		{"user acts for self", alice, ActAs, "chat", "alice", ""},
		{"user may not act for another", alice, ActAs, "chat", "bob", httpapi.CodeForbidden},
		{"user may not befriend", alice, Backend, "chat", "alice", httpapi.CodeForbidden},
		{"user connects as self", alice, Connect, "chat", "alice", ""},
		{"user may not connect as another", alice, Connect, "chat", "bob", httpapi.CodeForbidden},
		{"user of another app", alice, Lookup, "games", "", httpapi.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := codeOf(tc.id.Allow(tc.need, tc.app, tc.user)); got != tc.want {
				t.Errorf("Allow: %q, want %q", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name    string
		id      Identity
		app, gw string
		want    string
	}{
		{"own gateway", gw, "chat", "gw-1", ""},
		{"own gateway, heartbeat", gw, "", "gw-1", ""},
		{"another gateway", gw, "chat", "gw-2", httpapi.CodeForbidden},
		{"another app", gw, "games", "gw-1", httpapi.CodeForbidden},
		{"no gateway scope", backend, "chat", "gw-1", httpapi.CodeForbidden},
		{"a user", alice, "chat", "gw-1", httpapi.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := codeOf(tc.id.AllowGateway(tc.app, tc.gw)); got != tc.want {
				t.Errorf("AllowGateway: %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRotation rotates a key and a user secret: both old and new work
// while both are listed; once the file drops the old ones and is
// reloaded, they are refused; a bad file keeps the last good one.
func TestRotation(t *testing.T) {
	f := authtest.New(t)
	a := load(t, f.File)
	const newKey = "chat-backend-secret-0002"
	oldToken := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	newToken := authtest.HS256(t, authtest.UserSecret2, "chat", "alice")

	chat := f.Apps["chat"].(map[string]any)
	keys := chat["keys"].([]any)
	chat["keys"] = append(keys, map[string]any{"id": "backend-2", "secret": newKey, "scopes": []string{"backend"}})
	f.Write()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, cred := range []string{authtest.Backend, newKey, oldToken, newToken} {
		if _, err := a.Verify(cred); err != nil {
			t.Fatalf("during the rotation: %v", err)
		}
	}

	chat["keys"] = append(keys[1:], map[string]any{"id": "backend-2", "secret": newKey, "scopes": []string{"backend"}})
	chat["user_tokens"] = map[string]any{"hs256_secrets": []string{authtest.UserSecret2}}
	f.Write()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, cred := range []string{authtest.Backend, oldToken} {
		if _, err := a.Verify(cred); codeOf(err) != httpapi.CodeUnauthorized {
			t.Errorf("a removed credential: error %v, want 401", err)
		}
	}
	for _, cred := range []string{newKey, newToken} {
		if _, err := a.Verify(cred); err != nil {
			t.Errorf("after the rotation: %v", err)
		}
	}

	if err := os.WriteFile(f.File, []byte(`{"apps":{"chat":{"keys":[{"id":"x"}]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil {
		t.Fatal("a bad file reloaded")
	}
	if _, err := a.Verify(newKey); err != nil {
		t.Errorf("after a bad reload, the last good file: %v", err)
	}
}

// TestReloadOnSignal sends SIGHUP to the test process: the file is
// re-read, and a bad file afterwards keeps the good one.
func TestReloadOnSignal(t *testing.T) {
	f := authtest.New(t)
	a := load(t, f.File)
	reloaded := make(chan error, 1)
	a.reloaded = func(err error) { reloaded <- err }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.ReloadOnSignal(ctx, syscall.SIGHUP)

	delete(f.Apps, "games")
	f.Write()
	hup := func() error {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-reloaded:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("no reload 30s after SIGHUP")
			return nil
		}
	}
	if err := hup(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(authtest.GamesBackend); codeOf(err) != httpapi.CodeUnauthorized {
		t.Errorf("key of a removed app after SIGHUP: %v, want 401", err)
	}
	if err := os.WriteFile(f.File, []byte(`{`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := hup(); err == nil {
		t.Fatal("a bad file reloaded")
	}
	if _, err := a.Verify(authtest.Backend); err != nil {
		t.Errorf("after a bad file, the last good one: %v", err)
	}
}

func TestMint(t *testing.T) {
	f := authtest.New(t)
	a := load(t, f.File)
	tok, err := a.Mint("chat", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Verify(tok)
	if err != nil || id.App != "chat" || id.User != "alice" {
		t.Fatalf("minted token verified as %+v, %v", id, err)
	}
	a.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, err := a.Mint("chat", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a.now = time.Now
	if _, err := a.Verify(expired); codeOf(err) != httpapi.CodeUnauthorized {
		t.Errorf("token past its ttl: %v, want 401", err)
	}
	delete(f.Apps["chat"].(map[string]any), "user_tokens")
	f.Write()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Mint("chat", "alice", time.Hour); err == nil || strings.Contains(err.Error(), authtest.UserSecret) {
		t.Errorf("minting without secrets: %v, want an error without secrets", err)
	}
}

// TestUnknownAppsStayUnknown: a token of an app the file does not hold and
// a forged token of one it holds get the same 401: the answer tells
// nothing of which apps exist.
func TestUnknownAppsStayUnknown(t *testing.T) {
	f := authtest.New(t)
	a := load(t, f.File)
	const forger = "a-secret-of-nobody-0123456789abcdef"
	msg := func(app string) string {
		_, err := a.Verify(authtest.HS256(t, forger, app, "alice"))
		if err == nil {
			t.Fatalf("a forged token of app %q verified", app)
		}
		return err.Error()
	}
	if held, unknown := msg("chat"), msg("nosuchapp"); held != unknown {
		t.Errorf("a forged token of a held app: %q; of an unknown app: %q; want one answer", held, unknown)
	}
}
