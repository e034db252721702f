package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-im/presence/service/auth/authtest"
	"github.com/presence-im/presence/service/httpapi"
)

// TestRS256 verifies tokens of an RSA key from a JWKS file, refuses the
// same key's public half used as an HS256 secret (the classic algorithm
// confusion), and refuses RSA keys shorter than 2048 bits at load.
func TestRS256(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	authtest.WriteJSON(t, filepath.Join(dir, "jwks.json"), jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "rsa-1", Use: "sig"}}})
	file := filepath.Join(dir, "auth.json")
	authtest.WriteJSON(t, file, map[string]any{"apps": map[string]any{"chat": map[string]any{
		"user_tokens": map[string]any{"jwks_file": "jwks.json"}}}})
	a := load(t, file)

	tok := authtest.Sign(t, jwt.SigningMethodRS256, key, "rsa-1", authtest.Claims("chat", "carol", time.Hour))
	if id, err := a.Verify(tok); err != nil || id.User != "carol" || id.App != "chat" {
		t.Fatalf("RS256 token: %+v, %v", id, err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string][]byte{
		"pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"der": der,
		"jwk": must(t, (&jose.JSONWebKey{Key: key.Public()}).MarshalJSON),
	} {
		forged := authtest.Sign(t, jwt.SigningMethodHS256, pub, "rsa-1", authtest.Claims("chat", "carol", time.Hour))
		if _, err := a.Verify(forged); codeOf(err) != httpapi.CodeUnauthorized {
			t.Errorf("HS256 with the RSA public key (%s) as secret: %v, want 401", name, err)
		}
	}
	ps256 := authtest.Sign(t, jwt.SigningMethodPS256, key, "rsa-1", authtest.Claims("chat", "carol", time.Hour))
	if _, err := a.Verify(ps256); codeOf(err) != httpapi.CodeUnauthorized {
		t.Errorf("PS256 (not an accepted algorithm): %v, want 401", err)
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	authtest.WriteJSON(t, filepath.Join(dir, "jwks.json"), jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: small.Public(), KeyID: "rsa-small"}}})
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "RSA key of 1024 bits") {
		t.Errorf("a 1024-bit key: %v, want it refused", err)
	}
}

func must(t *testing.T, f func() ([]byte, error)) []byte {
	t.Helper()
	b, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
