package auth

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/presence-im/presence/service/httpapi"
)

// Identity is an authenticated caller: a server key (KeyID set) or an end
// user (User set), of one app.
type Identity struct {
	App string
	// KeyID is the id of the server key, "" for a user.
	KeyID string
	// User is the user a token was issued to (its "sub"), "" for a key.
	User string
	// Scopes are the key's scopes; a user has none. Shared with the
	// loaded file: read them, never change them.
	Scopes []string
	// Gateways are the gateway ids a key of scope gateway publishes for
	// (shared likewise).
	Gateways []string
	// Expires is when a user token stops being accepted (its exp, plus
	// Leeway); zero for a key.
	Expires time.Time
}

// Has reports whether the identity is a key holding scope.
func (id Identity) Has(scope string) bool { return slices.Contains(id.Scopes, scope) }

// String names the identity in messages and logs.
func (id Identity) String() string {
	if id.KeyID != "" {
		return fmt.Sprintf("key %q of app %q", id.KeyID, id.App)
	}
	return fmt.Sprintf("user %q of app %q", id.User, id.App)
}

type contextKey struct{}

// checked is what a context carries: the outcome of checking a request's
// credentials, so that they are checked once.
type checked struct {
	id  Identity
	err error
}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, contextKey{}, checked{id: id})
}

// FromContext is the identity of the caller a request's context carries,
// when the server checked its credentials and they hold.
func FromContext(ctx context.Context) (Identity, bool) {
	c, ok := ctx.Value(contextKey{}).(checked)
	return c.id, ok && c.err == nil
}

// Need is what an endpoint asks of its caller, besides being of the app
// of its path.
type Need int

const (
	// Lookup: a key of scope read, or any user of the app (status/query,
	// a single user's status).
	Lookup Need = iota
	// OwnLookup: a key of scope read, or the path's user (friends/status).
	OwnLookup
	// ActAs: a key of scope backend, or the path's user (custom status,
	// subscriptions).
	ActAs
	// Backend: a key of scope backend (friendships, imports).
	Backend
	// Connect: the path's user (opening a WebSocket as that user).
	Connect
)

// Allow says whether id may do what need describes for user of app: nil,
// or a 403 forbidden saying what is missing.
func (id Identity) Allow(need Need, app, user string) error {
	if id.App != app {
		return forbidden(fmt.Sprintf("%s may not act on app %q", id, app))
	}
	self := id.KeyID == "" && id.User == user
	var ok bool
	var scope string
	switch need {
	case Lookup:
		ok, scope = id.KeyID == "" || id.Has(ScopeRead), ScopeRead
	case OwnLookup:
		ok, scope = self || id.Has(ScopeRead), ScopeRead
	case ActAs:
		ok, scope = self || id.Has(ScopeBackend), ScopeBackend
	case Backend:
		ok, scope = id.Has(ScopeBackend), ScopeBackend
	case Connect:
		ok = self
	}
	switch {
	case ok:
		return nil
	case id.KeyID == "" && need == Backend:
		return forbidden(fmt.Sprintf("a user token may not do this: it needs a key of scope %q", scope))
	case id.KeyID == "":
		return forbidden(fmt.Sprintf("%s may not act for user %q", id, user))
	case need == Connect:
		return forbidden("a WebSocket opens with a user token, not a server key")
	}
	return forbidden(fmt.Sprintf("%s lacks scope %q", id, scope))
}

// AllowGateway says whether id may publish events (of app) or heartbeats
// (app "": any app) for gateway: a key of scope gateway that lists it.
func (id Identity) AllowGateway(app, gateway string) error {
	switch {
	case app != "" && id.App != app:
		return forbidden(fmt.Sprintf("%s may not act on app %q", id, app))
	case !id.Has(ScopeGateway):
		return forbidden(fmt.Sprintf("%s lacks scope %q", id, ScopeGateway))
	case !slices.Contains(id.Gateways, gateway):
		return forbidden(fmt.Sprintf("%s may not publish for gateway %q", id, gateway))
	}
	return nil
}

func forbidden(msg string) error { return httpapi.Errorf(httpapi.CodeForbidden, msg) }
