package queryapi

import (
	"net/http"
	"strconv"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/service/httpapi"
)

// The online users of an app, for the console (/console): at most limit
// users (default DefaultOnlineLimit, at most MaxOnlineLimit) whose id
// starts with prefix, sorted by id, each with its number of live sessions.
// Redis has no index of an app's users, so each call scans the app's keys
// (bounded by redisstore.OnlineScanBudget keys per master): a console's
// view, not a lookup for clients. Invisible users are left out. It needs a key of scope read: a user's
// token does not list the others.
const (
	DefaultOnlineLimit = 100
	MaxOnlineLimit     = 1000
)

type onlineResponse struct {
	Users []redisstore.OnlineUser `json:"users"`
	// Truncated says more users may be online than listed.
	Truncated bool `json:"truncated"`
}

// onlineUsers answers GET /v1/apps/{app}/online?prefix=&limit=.
func (s *Server) onlineUsers(w http.ResponseWriter, r *http.Request) error {
	app, err := appParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if len(prefix) > 128 {
		return httpapi.Errorf(httpapi.CodeInvalid, "prefix is longer than 128 bytes")
	}
	limit := DefaultOnlineLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxOnlineLimit {
			return httpapi.Errorf(httpapi.CodeInvalid, "limit must be a number from 1 to "+strconv.Itoa(MaxOnlineLimit))
		}
		limit = n
	}
	page, err := s.store.Online(r.Context(), app, prefix, limit)
	if err != nil {
		return unavailable(err)
	}
	if page.Users == nil {
		page.Users = []redisstore.OnlineUser{}
	}
	httpapi.WriteJSON(w, http.StatusOK, onlineResponse{Users: page.Users, Truncated: page.Truncated})
	return nil
}
