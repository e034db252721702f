// Package authtest writes auth files and signs tokens for the tests of
// the servers that check credentials.
package authtest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Secrets of the fixture's file. App "chat" has every kind of key, app
// "games" a backend key, a gateway key and its own user secret.
const (
	Backend      = "chat-backend-secret-0001"  // chat: backend, read
	Read         = "chat-read-secret-00000001" // chat: read
	Gateway      = "chat-gateway-secret-0001"  // chat: gateway gw-1
	OtherGateway = "chat-gateway-secret-0002"  // chat: gateway gw-2
	GamesBackend = "games-backend-secret-001"  // games: backend, read
	GamesGateway = "games-gateway-secret-001"  // games: gateway gw-1
	UserSecret   = "chat-user-hs256-secret-0123456789abcdef"
	UserSecret2  = "chat-user-hs256-secret-rotated-0123456789"
	GamesUser    = "games-user-hs256-secret-0123456789abcdef"
)

// Fixture is an auth file in a test's temporary folder, with a JWKS file
// holding an ES256 key (kid "ec-1") and an EdDSA key (kid "ed-1") of app
// chat.
type Fixture struct {
	File string
	EC   *ecdsa.PrivateKey
	Ed   ed25519.PrivateKey
	Apps map[string]any // the file's content, for tests that rewrite it
	jwks string
	t    testing.TB
}

// New writes the fixture's files.
func New(t testing.TB) *Fixture {
	t.Helper()
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fixture{File: filepath.Join(dir, "auth.json"), EC: ec, Ed: ed, t: t, jwks: "jwks.json"}
	WriteJSON(t, filepath.Join(dir, f.jwks), jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: ec.Public(), KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
		{Key: ed.Public(), KeyID: "ed-1", Algorithm: "EdDSA", Use: "sig"},
	}})
	f.Apps = map[string]any{
		"chat": map[string]any{
			"keys": []any{
				map[string]any{"id": "backend-1", "secret": Backend, "scopes": []string{"backend", "read"}},
				map[string]any{"id": "read-1", "secret": Read, "scopes": []string{"read"}},
				map[string]any{"id": "gw-1", "secret": Gateway, "scopes": []string{"gateway"}, "gateways": []string{"gw-1"}},
				map[string]any{"id": "gw-2", "secret": OtherGateway, "scopes": []string{"gateway"}, "gateways": []string{"gw-2"}},
			},
			"user_tokens": map[string]any{"hs256_secrets": []string{UserSecret, UserSecret2}, "jwks_file": f.jwks},
		},
		"games": map[string]any{
			"keys": []any{
				map[string]any{"id": "backend-1", "secret": GamesBackend, "scopes": []string{"backend", "read"}},
				map[string]any{"id": "gw-1", "secret": GamesGateway, "scopes": []string{"gateway"}, "gateways": []string{"gw-1"}},
			},
			"user_tokens": map[string]any{"hs256_secrets": []string{GamesUser}},
		},
	}
	f.Write()
	return f
}

// Write writes f.Apps to the auth file.
func (f *Fixture) Write() {
	f.t.Helper()
	WriteJSON(f.t, f.File, map[string]any{"apps": f.Apps})
}

// WriteJSON writes v as JSON to path.
func WriteJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Claims are the claims of a user token of app for user expiring in ttl
// (a negative ttl: expired that long ago).
func Claims(app, user string, ttl time.Duration) jwt.MapClaims {
	return jwt.MapClaims{"sub": user, "app": app, "exp": time.Now().Add(ttl).Unix()}
}

// HS256 is a user token of app for user, valid for an hour, signed with
// secret.
func HS256(t testing.TB, secret, app, user string) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodHS256, []byte(secret), "", Claims(app, user, time.Hour))
}

// Sign signs claims with key by method, with header kid when not empty.
func Sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// None is an unsigned token (alg "none") of app for user.
func None(t testing.TB, app, user string) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", Claims(app, user, time.Hour))
}
