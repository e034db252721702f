package ratelimit

import (
	"flag"
)

// Flags are the rate limit flags every server command takes: --rate-app,
// --rate-app-burst, --rate-user and --rate-user-burst. A rate of 0 turns
// that limit off.
type Flags struct {
	App, User Rule
}

// Register adds the flags to fs, with the defaults DefaultApp and
// DefaultUser.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.Float64Var(&f.App.PerSecond, "rate-app", DefaultApp.PerSecond, "requests a second one app may send to this server (0: no limit); over it, 429 rate_limited")
	fs.IntVar(&f.App.Burst, "rate-app-burst", DefaultApp.Burst, "requests one app may send at once")
	fs.Float64Var(&f.User.PerSecond, "rate-user", DefaultUser.PerSecond, "requests a second one user may send to this server (0: no limit); over it, 429 rate_limited")
	fs.IntVar(&f.User.Burst, "rate-user-burst", DefaultUser.Burst, "requests one user may send at once")
}

// Scopes are the limits the flags set: per app and per user, keyed by
// the path (PathApp, PathUser), or by the authenticated caller
// (CallerApp, CallerUser) when the server checks credentials.
func (f *Flags) Scopes(authenticated bool) []Scope {
	app, user := PathApp, PathUser
	if authenticated {
		app, user = CallerApp, CallerUser
	}
	return []Scope{
		{Name: "app", Rule: f.App.orUnlimited(), Key: app},
		{Name: "user", Rule: f.User.orUnlimited(), Key: user},
	}
}

// orUnlimited is r, or Unlimited when its rate is 0.
func (r Rule) orUnlimited() Rule {
	if r.PerSecond == 0 {
		return Unlimited
	}
	return r
}

// DefaultScopes are DefaultApp per app and DefaultUser per user (see
// Scopes).
func DefaultScopes(authenticated bool) []Scope {
	f := Flags{App: DefaultApp, User: DefaultUser}
	return f.Scopes(authenticated)
}
