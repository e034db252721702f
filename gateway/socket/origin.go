package socket

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// checkOrigins refuses patterns path.Match cannot read.
func checkOrigins(patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("allowed origin %q: %w", p, err)
		}
	}
	return nil
}

// originAllowed reports whether a socket may be opened from the page r
// comes from: a request without Origin (not from a browser), one from
// the same host as r, or one that matches a pattern. A pattern holding
// "://" is matched against scheme://host of the origin, any other against
// its host, as coder/websocket's AcceptOptions.OriginPatterns are; the
// same patterns go to websocket.Accept, which checks again.
func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}
