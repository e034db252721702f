package redisstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ParseURL parses a Redis URL as go-redis does
// (redis://[user:password@]host:port/db, rediss:// for TLS, options as
// query parameters), with errors that never hold the password: go-redis
// quotes a URL it cannot parse whole.
func ParseURL(raw string) (*redis.Options, error) {
	opts, err := redis.ParseURL(raw)
	if err == nil {
		return opts, nil
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		if hasUserinfo(raw) {
			// Even the detail may quote a piece of the password.
			return nil, fmt.Errorf("parsing redis url %s: not a valid URL (percent-encode the user name and password: %%25 for %%, %%40 for @, %%2F for /, ...)", RedactURL(raw))
		}
		return nil, fmt.Errorf("parsing redis url %s: %w", RedactURL(raw), ue.Err)
	}
	return nil, fmt.Errorf("parsing redis url %s: %w", RedactURL(raw), err)
}

// RedactURL returns the Redis URL raw with its password replaced by
// "xxxxx", for logs and errors. A URL that cannot be parsed loses its whole
// user information.
func RedactURL(raw string) string {
	scheme, rest, _ := strings.Cut(raw, "://")
	// A password holding '#', '?' or '/' unencoded parses as part of
	// the fragment, query or path of a URL with no user information.
	if u, err := url.Parse(raw); err == nil && (u.User != nil || !strings.Contains(rest, "@")) {
		return u.Redacted()
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	return raw
}

// hasUserinfo says whether raw, a URL perhaps invalid, may have a user
// name or password: an '@' after its "scheme://". A password may hold
// '/', '?' and '#' when not percent-encoded, so an '@' anywhere counts.
func hasUserinfo(raw string) bool {
	_, rest, _ := strings.Cut(raw, "://")
	return strings.Contains(rest, "@")
}
