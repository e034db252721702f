package queryapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/presence-im/presence/queryapi/watch"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/schemas/status"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/httpapi"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Privacy: a user's setting is one record on presence.sessions keyed by
// schemas.PrivacyKey, in the user's partition, so that the processor
// folds it in order with the user's sessions; the default (visible, last
// seen to everyone) is that key's tombstone. Redis keeps the truth and
// the setting (Status.Privacy); every read masks each status for the
// viewer it answers (mask).
//
// Whom a read answers for (viewerOf):
//   - a user token: its user ("sub"); a ?viewer= naming another user is
//     refused (403);
//   - a server key with scope backend, or a server without --auth: the
//     truth, or what ?viewer= sees when given;
//   - a server key with scope read only: what ?viewer= sees, and without
//     it what anyone sees (not the user, not a friend).
//
// The friends' pull and a subscription's statuses answer for the path's
// user, whoever asks: they are that user's view.

// viewer is whom a read answers for.
type viewer struct {
	// user is the viewer's user id; "" is anyone.
	user string
	// truth: no masking (a backend).
	truth bool
	// friend: the viewer is a friend of every user read (the friends'
	// pull), so no friendship is read.
	friend bool
}

// viewerOf returns whom a lookup answers for (see the comment above).
func viewerOf(r *http.Request) (viewer, error) {
	var asked []string
	given := false
	if r.URL.RawQuery != "" { // most lookups have none: no map parsed
		asked, given = r.URL.Query()["viewer"]
	}
	name := ""
	if given {
		if len(asked) != 1 {
			return viewer{}, httpapi.Errorf(httpapi.CodeInvalid, `"viewer" is given more than once`)
		}
		name = asked[0]
		if err := schemas.ValidateID("viewer", name); err != nil {
			return viewer{}, httpapi.Errorf(httpapi.CodeInvalid, err.Error())
		}
	}
	id, authed := auth.FromContext(r.Context())
	switch {
	case authed && id.KeyID == "":
		if given && name != id.User {
			return viewer{}, httpapi.Errorf(httpapi.CodeForbidden, fmt.Sprintf("%s may not read as user %q", id, name))
		}
		return viewer{user: id.User}, nil
	case given:
		return viewer{user: name}, nil
	case authed && !id.Has(auth.ScopeBackend):
		return viewer{}, nil // anyone
	}
	return viewer{truth: true}, nil
}

// mask replaces each status of results, in place, by what v may see of
// it (status.Privacy.Mask). A status without privacy costs one test;
// whether v is a friend is read from Redis, in one round trip, only for
// the statuses whose rule shows a friend more than anyone.
func (s *Server) mask(ctx context.Context, app string, v viewer, results []*redisstore.Status) error {
	if v.truth {
		return nil
	}
	var need []int
	for i, st := range results {
		switch {
		case st == nil || st.Privacy == nil || st.User == v.user && v.user != "":
		case v.friend:
			results[i] = st.Masked(status.Friend)
		case v.user != "" && st.Privacy.NeedsFriendship(st):
			need = append(need, i)
		default:
			results[i] = st.Masked(status.Anyone)
		}
	}
	if len(need) == 0 {
		return nil
	}
	users := make([]string, len(need))
	for j, i := range need {
		users[j] = results[i].User
	}
	friends, err := s.store.AreFriends(ctx, app, v.user, users)
	if err != nil {
		return unavailable(err)
	}
	for j, i := range need {
		who := status.Anyone
		if friends[j] {
			who = status.Friend
		}
		results[i] = results[i].Masked(who)
	}
	return nil
}

// maskChanges returns, for each change of a watch, the status v may see
// of it when that is not its JSON as kept (nil: the JSON): only the
// changes of users with a privacy setting are masked. A change an
// invisible user's audience is not told (its own devices coming and
// going) reads, masked, as the offline status they were told with its
// new version: never its sessions.
func (s *Server) maskChanges(ctx context.Context, app string, v viewer, changes []watch.Change) ([]*redisstore.Status, error) {
	var out []*redisstore.Status
	for i, c := range changes {
		if c.Private == nil || v.truth {
			continue
		}
		if out == nil {
			out = make([]*redisstore.Status, len(changes))
		}
		out[i] = c.Private
	}
	if out == nil {
		return nil, nil
	}
	if err := s.mask(ctx, app, v, out); err != nil {
		return nil, err
	}
	return out, nil
}

// privacyBody is the body of a privacy write, and the answer of a read.
type privacyBody struct {
	User      string `json:"user,omitempty"`
	Invisible bool   `json:"invisible"`
	// LastSeen is "everyone", "friends" or "nobody"; "" in a request
	// means everyone.
	LastSeen string `json:"last_seen"`
}

// setPrivacy answers PUT /v1/apps/{app}/users/{user}/privacy
// {"invisible":bool,"last_seen":"everyone"|"friends"|"nobody"} with 202
// and the setting once its record is in Kafka.
func (s *Server) setPrivacy(w http.ResponseWriter, r *http.Request) error {
	app, user, err := appUser(r)
	if err != nil {
		return err
	}
	var req privacyBody
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.User != "" && req.User != user {
		return httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf(`"user" %q is not the path's user`, req.User))
	}
	p := status.Privacy{Invisible: req.Invisible, LastSeen: status.Everyone}
	if req.LastSeen != "" {
		if p.LastSeen = status.ParseLastSeenRule(req.LastSeen); p.LastSeen == "" {
			return httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf(`"last_seen" %q: want "everyone", "friends" or "nobody"`, req.LastSeen))
		}
	}
	rec, err := privacyRecord(app, user, p, s.now())
	if err != nil {
		return badRequest(err)
	}
	if err := s.write(r.Context(), kindPrivacy, []*kgo.Record{rec}); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusAccepted, privacyBody{User: user, Invisible: p.Invisible, LastSeen: p.LastSeen})
	return nil
}

// getPrivacy answers GET /v1/apps/{app}/users/{user}/privacy with the
// user's setting as the processor applied it: the default for a user
// with none, or not known.
func (s *Server) getPrivacy(w http.ResponseWriter, r *http.Request) error {
	app, user, err := appUser(r)
	if err != nil {
		return err
	}
	sts, err := s.statuses(w, r, app, []string{user}, nil, viewer{truth: true})
	if err != nil {
		return err
	}
	out := privacyBody{User: user, LastSeen: status.Everyone}
	if st := sts[0]; st != nil && st.Privacy != nil {
		out.Invisible, out.LastSeen = st.Privacy.Invisible, st.Privacy.LastSeen
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// privacyRecord is the record on presence.sessions that sets user's
// privacy: the key's tombstone for the default.
func privacyRecord(app, user string, p status.Privacy, at time.Time) (*kgo.Record, error) {
	key := schemas.PrivacyKey(app, user)
	if p.IsDefault() {
		if err := schemas.ValidateID("user", user); err != nil {
			return nil, err
		}
		return records.Tombstone(schemas.SessionsTopic, key, at), nil
	}
	ev := &pb.SessionEvent{
		Type: pb.EventType_EVENT_TYPE_PRIVACY, App: app, User: user,
		Privacy: p.Proto(), TimestampMs: at.UnixMilli(),
	}
	if err := schemas.ValidateSessionEvent(ev); err != nil {
		return nil, err
	}
	return records.Encode(schemas.SessionsTopic, key, ev, at)
}
