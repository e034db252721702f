package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Scopes a server key may hold.
const (
	// ScopeGateway publishes events and heartbeats, for the gateway ids
	// the key lists only.
	ScopeGateway = "gateway"
	// ScopeRead reads every lookup of the app: status/query, single
	// status, friends/status.
	ScopeRead = "read"
	// ScopeBackend writes friends, custom status, subscriptions and
	// imports for any user of the app.
	ScopeBackend = "backend"
)

// Minimum lengths of secrets: a key is guessed no more easily than a
// random 128-bit value, an HS256 secret is as long as the hash (RFC 7518,
// section 3.2).
const (
	MinKeySecret    = 16
	MinHS256Secret  = 32
	minRSAKeyLength = 2048
)

// fileJSON is the --auth file. Every level refuses unknown fields.
type fileJSON struct {
	Apps map[string]appJSON `json:"apps"`
}

type appJSON struct {
	Keys       []keyJSON       `json:"keys"`
	UserTokens *userTokensJSON `json:"user_tokens"`
	// Webhooks are the app's endpoints told of every visible change
	// (webhook.go).
	Webhooks []webhookJSON `json:"webhooks"`
}

type keyJSON struct {
	ID       string   `json:"id"`
	Secret   string   `json:"secret"`
	Scopes   []string `json:"scopes"`
	Gateways []string `json:"gateways"`
}

type userTokensJSON struct {
	HS256Secrets []string `json:"hs256_secrets"`
	JWKSFile     string   `json:"jwks_file"`
}

// keyring is one loaded file: immutable, swapped whole on reload.
type keyring struct {
	apps map[string]*app
	// keys are the server keys of every app, by the SHA-256 of their
	// secret: a lookup costs the same whatever the secret.
	keys map[[sha256.Size]byte]*serverKey
	// webhooks are the endpoints of every app, by app then as listed.
	webhooks []Webhook
	// replaced is closed when a reload replaces this keyring.
	replaced chan struct{}
}

type app struct {
	hs256 [][]byte
	jwks  []publicKey
}

type serverKey struct {
	app      string
	id       string
	secret   []byte
	scopes   []string
	gateways []string
}

// readFile reads and checks the auth file at path. Its errors name apps
// and key ids, never a secret.
func readFile(path string) (*keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading auth file: %w", err)
	}
	var f fileJSON
	if err := decodeStrict(data, &f); err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	if len(f.Apps) == 0 {
		return nil, fmt.Errorf("auth file %s: no apps: want {\"apps\":{\"<app>\":{\"keys\":[…],\"user_tokens\":{…}}}}", path)
	}
	kr := &keyring{apps: map[string]*app{}, keys: map[[sha256.Size]byte]*serverKey{}, replaced: make(chan struct{})}
	loaded := time.Now()
	names := make([]string, 0, len(f.Apps))
	for name := range f.Apps {
		names = append(names, name)
	}
	slices.Sort(names) // the first error is the same on every load
	for _, name := range names {
		a, err := kr.addApp(name, f.Apps[name], filepath.Dir(path), loaded)
		if err != nil {
			return nil, fmt.Errorf("auth file %s: %w", path, err)
		}
		kr.apps[name] = a
	}
	return kr, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

func (kr *keyring) addApp(name string, aj appJSON, dir string, loaded time.Time) (*app, error) {
	if name == "" {
		return nil, errors.New("an app with an empty id")
	}
	a := &app{}
	ids := map[string]bool{}
	for i, kj := range aj.Keys {
		if kj.ID == "" {
			return nil, fmt.Errorf("app %q: keys[%d] has no id", name, i)
		}
		if ids[kj.ID] {
			return nil, fmt.Errorf("app %q: key id %q is listed twice", name, kj.ID)
		}
		ids[kj.ID] = true
		k, err := newServerKey(name, kj)
		if err != nil {
			return nil, fmt.Errorf("app %q key %q: %w", name, kj.ID, err)
		}
		h := sha256.Sum256(k.secret)
		if other, dup := kr.keys[h]; dup {
			return nil, fmt.Errorf("app %q key %q: same secret as app %q key %q; every key needs its own", name, kj.ID, other.app, other.id)
		}
		kr.keys[h] = k
	}
	if ut := aj.UserTokens; ut != nil {
		for i, s := range ut.HS256Secrets {
			if len(s) < MinHS256Secret {
				return nil, fmt.Errorf("app %q: user_tokens.hs256_secrets[%d] is shorter than %d bytes", name, i, MinHS256Secret)
			}
			a.hs256 = append(a.hs256, []byte(s))
		}
		if ut.JWKSFile != "" {
			path := ut.JWKSFile
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			keys, err := readJWKS(path)
			if err != nil {
				return nil, fmt.Errorf("app %q: %w", name, err)
			}
			a.jwks = keys
		}
	}
	hooks, err := readWebhooks(name, aj.Webhooks, loaded)
	if err != nil {
		return nil, err
	}
	kr.webhooks = append(kr.webhooks, hooks...)
	return a, nil
}

func newServerKey(app string, kj keyJSON) (*serverKey, error) {
	if kj.Secret == "" {
		return nil, errors.New("empty secret")
	}
	if len(kj.Secret) < MinKeySecret {
		return nil, fmt.Errorf("secret shorter than %d bytes", MinKeySecret)
	}
	if len(kj.Scopes) == 0 {
		return nil, errors.New(`no scopes: want some of "gateway", "read", "backend"`)
	}
	for _, s := range kj.Scopes {
		switch s {
		case ScopeGateway, ScopeRead, ScopeBackend:
		default:
			return nil, fmt.Errorf(`unknown scope %q: want "gateway", "read" or "backend"`, s)
		}
	}
	gw := slices.Contains(kj.Scopes, ScopeGateway)
	switch {
	case gw && len(kj.Gateways) == 0:
		return nil, errors.New(`scope "gateway" needs "gateways": the gateway ids the key may publish for`)
	case !gw && len(kj.Gateways) > 0:
		return nil, errors.New(`lists "gateways" but has no scope "gateway"`)
	case slices.Contains(kj.Gateways, ""):
		return nil, errors.New(`an empty id in "gateways"`)
	}
	return &serverKey{app: app, id: kj.ID, secret: []byte(kj.Secret),
		scopes: slices.Clone(kj.Scopes), gateways: slices.Clone(kj.Gateways)}, nil
}
