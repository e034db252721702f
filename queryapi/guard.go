package queryapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/presence-im/presence/service/auth"
)

// guard checks the caller of h before it runs, when the server checks
// credentials: missing or invalid ones answer 401, valid ones that do not
// give need on the path's app and user answer 403. The identity is in the
// request's context for h (auth.FromContext).
func (s *Server) guard(need auth.Need, h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	if s.auth == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := s.auth.Authenticate(r)
		if err != nil {
			return err
		}
		app, err := appParam(r)
		if err != nil {
			return err
		}
		var user string
		if chi.URLParam(r, "user") != "" {
			if user, err = idParam(r, "user"); err != nil {
				return err
			}
		}
		if err := id.Allow(need, app, user); err != nil {
			return err
		}
		return h(w, r.WithContext(auth.NewContext(r.Context(), id)))
	}
}
