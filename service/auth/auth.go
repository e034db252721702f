// Package auth authenticates the callers of Presence's servers and says
// what each may do.
//
// Credentials come from the --auth file, JSON of this shape:
//
//	{"apps": {"chat": {
//	   "keys": [
//	     {"id": "backend-1", "secret": "…", "scopes": ["backend", "read"]},
//	     {"id": "gw-eu-1", "secret": "…", "scopes": ["gateway"], "gateways": ["gw-eu-1"]}],
//	   "user_tokens": {"hs256_secrets": ["…"], "jwks_file": "optional path"}}}}
//
// A server sends one of its app's key secrets, an end user a JWT, both as
// "Authorization: Bearer …". A user token is signed with one of its app's
// hs256_secrets (HS256) or a key of its JWKS file (RS256, ES256 on P-256,
// EdDSA on Ed25519; a relative jwks_file is read from the auth file's
// folder), and carries "sub" (the user), "app" and "exp". Any number of
// keys and secrets per app may be valid at once, so that they rotate
// without downtime: add the new one, reload, move the clients, remove the
// old one, reload.
//
// The file is read strictly: an unknown field or scope, a short secret, a
// gateway key without gateways, a secret shared by two keys, fail the
// load with an error naming the app and key id (never the secret).
// Reload re-reads it and keeps the previous credentials when the new file
// is bad.
//
// An app may also list webhooks, {"url": "https://…", "secret": "…"}, at
// most MaxWebhooks: the query API tells each of every visible change of
// the app's users (package queryapi/webhook; Webhooks hands them over and
// says when a reload replaced them).
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-im/presence/service/httpapi"
)

// Config configures an Authenticator. Zero values mean the defaults.
type Config struct {
	// File is the path of the auth file. Required.
	File string
	// Now is the clock tokens are checked against (time.Now).
	Now func() time.Time
	// Logger receives reloads and their failures (slog.Default()).
	Logger *slog.Logger
}

// Authenticator verifies credentials against the auth file it loaded
// last. It is safe for concurrent use.
type Authenticator struct {
	file string
	now  func() time.Time
	log  *slog.Logger
	kr   atomic.Pointer[keyring]
	// reloaded, when set, is called after each reload a signal asked for
	// (tests wait on it).
	reloaded func(error)
}

// New loads the auth file.
func New(cfg Config) (*Authenticator, error) {
	if cfg.File == "" {
		return nil, errors.New("auth: no file")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Authenticator{file: cfg.File, now: cfg.Now, log: cfg.Logger.With("component", "auth")}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload re-reads the auth file. When it is bad, the credentials loaded
// before stay in force and the error says why.
func (a *Authenticator) Reload() error {
	kr, err := readFile(a.file)
	if err != nil {
		return err
	}
	if old := a.kr.Swap(kr); old != nil {
		close(old.replaced)
	}
	return nil
}

// ReloadOnSignal re-reads the auth file whenever one of sigs (SIGHUP, by
// convention) arrives, until ctx ends, logging each outcome. The signals
// are caught from the moment it returns.
func (a *Authenticator) ReloadOnSignal(ctx context.Context, sigs ...os.Signal) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			err := a.Reload()
			if err != nil {
				a.log.Error("reloading the auth file; the previous credentials stay in force", "file", a.file, "err", err)
			} else {
				a.log.Info("reloaded the auth file", "file", a.file, "apps", len(a.current().apps))
			}
			if a.reloaded != nil {
				a.reloaded(err)
			}
		}
	}()
}

func (a *Authenticator) current() *keyring { return a.kr.Load() }

// Authenticate identifies the caller of r by its credential (see
// Credential), or takes what Identify found of it. Its errors are 401
// unauthorized.
func (a *Authenticator) Authenticate(r *http.Request) (Identity, error) {
	if c, ok := r.Context().Value(contextKey{}).(checked); ok {
		return c.id, c.err
	}
	cred, ok := Credential(r)
	if !ok {
		return Identity{}, httpapi.Errorf(httpapi.CodeUnauthorized,
			`no credentials: send "Authorization: Bearer <key or user token>" (or the query parameter token on a WebSocket)`)
	}
	return a.Verify(cred)
}

// Credential is r's credential: that of its "Authorization: Bearer …"
// header or, on a WebSocket path (/v1/apps/{app}/ws), where browsers cannot
// send headers, its query parameter token.
func Credential(r *http.Request) (string, bool) {
	if cred, ok := Bearer(r); ok {
		return cred, true
	}
	if !isSocketPath(r.URL.Path) {
		return "", false
	}
	cred := r.URL.Query().Get("token")
	return cred, cred != ""
}

// isSocketPath reports whether path is /v1/apps/{app}/ws.
func isSocketPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/v1/apps/")
	app, tail, _ := strings.Cut(rest, "/")
	return ok && app != "" && tail == "ws"
}

// Bearer is the credential of r's "Authorization: Bearer …" header.
func Bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}

// Verify identifies the holder of cred: a server key's secret, or a user
// token. Its errors are 401 unauthorized and never hold cred.
func (a *Authenticator) Verify(cred string) (Identity, error) {
	kr := a.current()
	if k, ok := kr.keys[sha256.Sum256([]byte(cred))]; ok && subtle.ConstantTimeCompare(k.secret, []byte(cred)) == 1 {
		return Identity{App: k.app, KeyID: k.id, Scopes: k.scopes, Gateways: k.gateways}, nil
	}
	if strings.Count(cred, ".") != 2 {
		return Identity{}, httpapi.Errorf(httpapi.CodeUnauthorized, "unknown key")
	}
	c, err := kr.verifyToken(cred, a.now)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed), errors.Is(err, jwt.ErrTokenExpired),
		errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return Identity{}, httpapi.Errorf(httpapi.CodeUnauthorized, "invalid user token: "+err.Error())
	default:
		// One answer whether the app it names exists or no key of it
		// verifies the signature: a 401 tells nothing of the file.
		return Identity{}, httpapi.Errorf(httpapi.CodeUnauthorized, "invalid user token: no key of its app verifies it")
	}
	return Identity{App: c.App, User: c.Subject, Expires: c.ExpiresAt.Add(Leeway)}, nil
}

// Identify checks the credential of every request that has one (see
// Credential) and puts the outcome into its context, before h, so that
// what runs before the routes' checks (the rate limits) knows who calls,
// and each credential is checked once: Authenticate takes the outcome. A
// nil Authenticator returns h.
func (a *Authenticator) Identify(h http.Handler) http.Handler {
	if a == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cred, ok := Credential(r); ok {
			id, err := a.Verify(cred)
			r = r.WithContext(context.WithValue(r.Context(), contextKey{}, checked{id: id, err: err}))
		}
		h.ServeHTTP(w, r)
	})
}
