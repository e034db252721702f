package queryapi

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/service/httpapi"
)

// A friendship is symmetric and written as two records on
// presence.friends, one in each user's partition (see FriendRecords); both
// go in one produce. Should one of them fail, the request answers 503 and
// writing both again is harmless, since they are keyed.

type friendResponse struct {
	User   string `json:"user"`
	Friend string `json:"friend"`
}

// addFriend answers PUT /v1/apps/{app}/users/{user}/friends/{friend} with
// 202 once both halves of the friendship are in Kafka.
func (s *Server) addFriend(w http.ResponseWriter, r *http.Request) error {
	app, user, friend, err := friendParams(r)
	if err != nil {
		return err
	}
	recs, err := FriendRecords(app, user, friend, s.now())
	if err != nil {
		return badRequest(err)
	}
	if err := s.write(r.Context(), kindFriend, recs); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusAccepted, friendResponse{User: user, Friend: friend})
	return nil
}

// removeFriend answers DELETE /v1/apps/{app}/users/{user}/friends/{friend}
// with 202 once both tombstones are in Kafka. Ending a friendship that does
// not exist is not an error.
func (s *Server) removeFriend(w http.ResponseWriter, r *http.Request) error {
	app, user, friend, err := friendParams(r)
	if err != nil {
		return err
	}
	if err := s.write(r.Context(), kindFriend, friendTombstones(app, user, friend, s.now())); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusAccepted, friendResponse{User: user, Friend: friend})
	return nil
}

// friendParams returns the app, user and friend of the path, checked: two
// valid ids that differ.
func friendParams(r *http.Request) (app, user, friend string, err error) {
	if app, user, err = appUser(r); err != nil {
		return "", "", "", err
	}
	if friend, err = idParam(r, "friend"); err != nil {
		return "", "", "", err
	}
	if user == friend {
		return "", "", "", httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("user %q cannot be their own friend", user))
	}
	return app, user, friend, nil
}

// friendsStatus answers GET /v1/apps/{app}/users/{user}/friends/status with
// the status of each friend Presence knows, sorted by user id, in a
// queryResponse. Friends never seen, or offline for longer than the
// offline TTL, are left out.
func (s *Server) friendsStatus(w http.ResponseWriter, r *http.Request) error {
	app, user, err := appUser(r)
	if err != nil {
		return err
	}
	friends, err := s.store.Friends(r.Context(), app, user)
	if err != nil {
		return unavailable(err)
	}
	// The pull answers as the user sees its friends (privacy.go).
	statuses, err := s.statuses(w, r, app, friends, nil, viewer{user: user, friend: true})
	if err != nil {
		return err
	}
	s.metrics.count(statuses)
	known := make([]*redisstore.Status, 0, len(statuses))
	for _, st := range statuses {
		if st != nil {
			known = append(known, st)
		}
	}
	slices.SortFunc(known, func(a, b *redisstore.Status) int { return cmp.Compare(a.User, b.User) })
	s.writeResults(w, known)
	return nil
}
