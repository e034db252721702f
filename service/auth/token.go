package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Algorithms of user tokens. Each is verified only with keys of its own
// kind (HS256 with the app's hs256_secrets, the others with JWKS keys of
// the matching type), so one kind of key can never pass for another;
// every other algorithm, "none" included, is refused.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// Leeway is the clock difference tolerated when checking a token's exp
// and nbf.
const Leeway = 30 * time.Second

// claims are the claims of a user token: sub (the user), app and exp are
// required.
type claims struct {
	jwt.RegisteredClaims
	App string `json:"app"`
}

// Validate is called by the parser once the signature holds.
func (c *claims) Validate() error {
	switch {
	case c.Subject == "":
		return errors.New(`no "sub": the user id`)
	case c.App == "":
		return errors.New(`no "app": the app id`)
	}
	return nil
}

// publicKey is a key of a JWKS file, with the one algorithm it verifies.
type publicKey struct {
	kid string
	alg string
	key any
}

// readJWKS reads a JSON Web Key Set of public keys.
func readJWKS(path string) ([]publicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading jwks file: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks file %s: %w", path, err)
	}
	keys := make([]publicKey, 0, len(set.Keys))
	for i, k := range set.Keys {
		pk, err := toPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("jwks file %s: keys[%d] (kid %q): %w", path, i, k.KeyID, err)
		}
		keys = append(keys, pk)
	}
	return keys, nil
}

// toPublicKey keeps the public part of k and the algorithm it verifies.
func toPublicKey(k jose.JSONWebKey) (publicKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return publicKey{}, fmt.Errorf("use %q: want sig", k.Use)
	}
	pub := k.Public() // a private key's public half; a symmetric key has none
	if pub.Key != nil && !pub.Valid() {
		return publicKey{}, errors.New("not a valid key")
	}
	pk := publicKey{kid: k.KeyID, key: pub.Key}
	switch key := pub.Key.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < minRSAKeyLength {
			return publicKey{}, fmt.Errorf("RSA key of %d bits, want at least %d", key.N.BitLen(), minRSAKeyLength)
		}
		pk.alg = algRS256
	case *ecdsa.PublicKey:
		if key.Curve != elliptic.P256() {
			return publicKey{}, fmt.Errorf("EC key on %s, want P-256 (ES256)", key.Curve.Params().Name)
		}
		pk.alg = algES256
	case ed25519.PublicKey:
		pk.alg = algEdDSA
	default:
		return publicKey{}, errors.New("not an RSA, P-256 or Ed25519 public key (HS256 secrets go in hs256_secrets)")
	}
	if k.Algorithm != "" && k.Algorithm != pk.alg {
		return publicKey{}, fmt.Errorf("alg %q: this key can only be %s", k.Algorithm, pk.alg)
	}
	return pk, nil
}

// verifyToken checks a user token against the keys of the app it names,
// and returns its claims.
func (kr *keyring) verifyToken(token string, now func() time.Time) (*claims, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{algHS256, algRS256, algES256, algEdDSA}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(now),
	)
	var c claims
	if _, err := p.ParseWithClaims(token, &c, kr.keysFor); err != nil {
		return nil, err
	}
	return &c, nil
}

// errNoKey is the one answer to a token no key could have signed, whether
// its app is unknown or has no key of its algorithm and kid: a caller
// learns nothing of the auth file from it.
var errNoKey = errors.New("no key of the token's app for its algorithm and kid")

// keysFor picks the keys that may have signed t: those of the app its
// claims name, of t's algorithm, and of its kid when it has one.
func (kr *keyring) keysFor(t *jwt.Token) (any, error) {
	c, ok := t.Claims.(*claims)
	if !ok || c.App == "" {
		return nil, errors.New(`no "app" claim`)
	}
	a, ok := kr.apps[c.App]
	if !ok {
		return nil, errNoKey
	}
	alg := t.Method.Alg()
	var set jwt.VerificationKeySet
	if alg == algHS256 {
		for _, s := range a.hs256 {
			set.Keys = append(set.Keys, s)
		}
	} else {
		kid, _ := t.Header["kid"].(string)
		for _, k := range a.jwks {
			if k.alg == alg && (kid == "" || k.kid == kid) {
				set.Keys = append(set.Keys, k.key)
			}
		}
	}
	if len(set.Keys) == 0 {
		return nil, errNoKey
	}
	return set, nil
}

// Mint signs an HS256 token for user of app, valid for ttl from now, with
// the first of the app's hs256_secrets.
func (a *Authenticator) Mint(app, user string, ttl time.Duration) (string, error) {
	ap, ok := a.current().apps[app]
	switch {
	case !ok:
		return "", fmt.Errorf("app %q is not in the auth file", app)
	case len(ap.hs256) == 0:
		return "", fmt.Errorf("app %q has no user_tokens.hs256_secrets", app)
	case user == "":
		return "", errors.New("no user")
	case ttl <= 0:
		return "", fmt.Errorf("ttl %s: want a positive duration", ttl)
	}
	now := a.now()
	c := claims{App: app, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, &c).SignedString(ap.hs256[0])
}
