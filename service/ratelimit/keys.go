package ratelimit

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/presence-im/presence/service/auth"
)

// The key functions read the app and the user from the path, before any
// router has matched it, so that one Limiter wraps a whole server. Every
// Presence path of an app starts /v1/apps/{app}/, and of a user
// /v1/apps/{app}/users/{user}/; the WebSocket names its user in the query
// (/v1/apps/{app}/ws?user=…). Without authentication, the user a request
// claims is the user it is counted for; a server with authentication
// counts the caller instead (CallerApp, CallerUser), so that nobody spends
// another app's or another user's requests.

// maxAppBytes and maxUserBytes bound the ids the path keys count (those of
// schemas.MaxAppBytes and MaxIDBytes): longer ones are refused 400 by
// every route, and counting them would let made-up ids of a header's
// length fill the buckets' memory.
const (
	maxAppBytes  = 64
	maxUserBytes = 128
)

// PathApp is the {app} of a request's path, or "" when the path is not an
// app's (health, metrics, heartbeats).
func PathApp(r *http.Request) string {
	seg := segments(r)
	if len(seg) < 3 || seg[0] != "v1" || seg[1] != "apps" {
		return ""
	}
	return bounded(unescape(seg[2]), maxAppBytes)
}

// PathUser is the user a request acts as: the {user} of
// /v1/apps/{app}/users/{user}/…, or the user query parameter of
// /v1/apps/{app}/ws. It is qualified by the app (app, NUL, user), and ""
// when the request names no user (a batch status query).
func PathUser(r *http.Request) string {
	seg := segments(r)
	if len(seg) < 4 || seg[0] != "v1" || seg[1] != "apps" {
		return ""
	}
	app := bounded(unescape(seg[2]), maxAppBytes)
	if app == "" {
		return ""
	}
	switch {
	case seg[3] == "users" && len(seg) >= 5:
		if u := bounded(unescape(seg[4]), maxUserBytes); u != "" {
			return app + "\x00" + u
		}
	case seg[3] == "ws" && len(seg) == 4:
		if u := bounded(r.URL.Query().Get("user"), maxUserBytes); u != "" {
			return app + "\x00" + u
		}
	}
	return ""
}

// CallerApp is the app of the caller auth.Identify found, or "" (not
// counted per app: the request is refused 401 without spending anyone's
// requests).
func CallerApp(r *http.Request) string {
	if id, ok := auth.FromContext(r.Context()); ok {
		return id.App
	}
	return ""
}

// CallerUser is the user of a user token (app, NUL, user), the user a
// server key acts for (PathUser: a backend is counted per user it acts
// for, and per app), or "" for a request without valid credentials.
func CallerUser(r *http.Request) string {
	id, ok := auth.FromContext(r.Context())
	switch {
	case !ok:
		return ""
	case id.User != "":
		return id.App + "\x00" + id.User
	default:
		return PathUser(r)
	}
}

// bounded is id, or "" (not counted) when it is longer than most.
func bounded(id string, most int) string {
	if len(id) > most {
		return ""
	}
	return id
}

// segments are the escaped segments of r's path, without the leading "/".
func segments(r *http.Request) []string {
	return strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
}

// unescape is a segment unescaped; a bad escape is kept as it is (the
// router refuses the request later, but it is counted all the same).
func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
