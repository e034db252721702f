// Package console is the live console of Presence in the browser: a page
// and its scripts, embedded, that the query API serves at /console. The
// page itself needs no credentials; its data calls go to the query API's
// own routes (online, status, friends/status, status/watch, ops) and carry the
// key or token the user pastes, as Authorization: Bearer, so they answer
// as the API answers that key. Plain HTML, CSS and JavaScript modules: no
// build step, nothing loaded from elsewhere.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Has says whether the console has a file of that name (console.js,
// ops.js, console.css, index.html).
func Has(name string) bool {
	info, err := fs.Stat(assets, "assets/"+name)
	return err == nil && !info.IsDir()
}

// Handler serves the console's files under prefix (e.g. "/console"):
// prefix and prefix/ answer the page, prefix/<file> its assets.
func Handler(prefix string) http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has assets/
	}
	files := http.StripPrefix(prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == prefix {
			http.Redirect(w, r, prefix+"/", http.StatusMovedPermanently)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
