package queryapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/httpapi"
)

// A subscription is a record on presence.subscriptions keyed by
// schemas.SubscriptionKey(app, watched, subscriber), in the watched user's
// partition, holding its expiry. Subscribing again renews it; ending it is
// a tombstone on the same key.

type subscribeRequest struct {
	Users []string `json:"users"`
	// TTLSeconds is required; a pointer tells a missing one from 0.
	TTLSeconds *int64 `json:"ttl_seconds"`
}

// subscribeResponse is the answer of subscribe, written by
// appendSubscribed.
type subscribeResponse struct {
	Results   []*redisstore.Status `json:"results"`
	ExpiresAt redisstore.Time      `json:"expires_at"`
}

// subscribe answers POST /v1/apps/{app}/users/{user}/subscriptions
// {"users":[…],"ttl_seconds":int}: user watches each of users for
// ttl_seconds, and the answer holds their current statuses, ordered like
// a status query's.
//
// The cap on live subscriptions holds under any concurrency, on any number
// of query APIs: the request's new subscriptions are reserved in Redis, in
// one script with the count of the subscriber's live ones (those reserved
// and those the processor has applied), before anything is written to
// Kafka (redisstore.Store.ReserveSubscriptions). A request that would go
// past the cap is refused whole, 400 too_many_subscriptions, with nothing
// written. A reservation lasts until the subscription's expiry, or until
// it is ended; when the write to Kafka fails it stays (the records may be
// in Kafka after all), so a retry renews it rather than counting twice.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) error {
	app, subscriber, err := appUser(r)
	if err != nil {
		return err
	}
	var req subscribeRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	watched, err := checkWatched(subscriber, req.Users)
	if err != nil {
		return err
	}
	ttl, err := checkTTL(req.TTLSeconds)
	if err != nil {
		return err
	}
	now := s.now()
	expires := time.UnixMilli(now.Add(ttl).UnixMilli())
	if err := s.reserve(r, app, subscriber, watched, expires, now); err != nil {
		return err
	}
	recs := make([]*kgo.Record, len(watched))
	for i, u := range watched {
		if recs[i], err = subscriptionRecord(app, u, subscriber, expires, now); err != nil {
			return badRequest(err)
		}
	}
	if err := s.write(r.Context(), kindSubscription, recs); err != nil {
		return err
	}
	// Answered as the subscriber sees them (privacy.go).
	results, err := s.statuses(w, r, app, req.Users, nil, viewer{user: subscriber})
	if err != nil {
		return err
	}
	s.metrics.count(results)
	s.writeEncoded(w, http.StatusOK, answerSize(len(results)), func(b []byte) []byte {
		return appendSubscribed(b, results, redisstore.Time{Time: expires})
	})
	return nil
}

type unsubscribeRequest struct {
	Users []string `json:"users"`
}

type unsubscribeResponse struct {
	// Ended counts the distinct users named, whether or not a
	// subscription to them was live.
	Ended int `json:"ended"`
}

// unsubscribe answers DELETE /v1/apps/{app}/users/{user}/subscriptions
// {"users":[…]} with 202 once a tombstone per user named is in Kafka.
func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) error {
	app, subscriber, err := appUser(r)
	if err != nil {
		return err
	}
	var req unsubscribeRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	watched, err := checkWatched(subscriber, req.Users)
	if err != nil {
		return err
	}
	now := s.now()
	recs := make([]*kgo.Record, len(watched))
	for i, u := range watched {
		if recs[i], err = subscriptionRecord(app, u, subscriber, time.Time{}, now); err != nil {
			return badRequest(err)
		}
	}
	if err := s.write(r.Context(), kindSubscription, recs); err != nil {
		return err
	}
	// Until the processor applies the tombstones, the subscriptions still
	// count towards the cap as applied ones; a release that fails leaves
	// them counted until they expire.
	if err := s.store.ReleaseSubscriptions(r.Context(), app, subscriber, watched); err != nil {
		s.log.Warn("releasing ended subscriptions", "app", app, "subscriber", subscriber, "err", err)
	}
	httpapi.WriteJSON(w, http.StatusAccepted, unsubscribeResponse{Ended: len(watched)})
	return nil
}

// checkWatched checks the users a subscriber names, as a status query
// checks its users, and that there is at least one and none is the
// subscriber. It returns them without duplicates, in first-seen order.
func checkWatched(subscriber string, users []string) ([]string, error) {
	if err := checkUsers(users); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, httpapi.Errorf(httpapi.CodeInvalid, `"users" is empty: name at least one user`)
	}
	seen := make(map[string]bool, len(users))
	distinct := make([]string, 0, len(users))
	for i, u := range users {
		if u == subscriber {
			return nil, httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("users[%d]: %q cannot watch themselves", i, u))
		}
		if !seen[u] {
			seen[u] = true
			distinct = append(distinct, u)
		}
	}
	return distinct, nil
}

// checkTTL checks ttl_seconds: present, 1 second to
// schemas.MaxSubscriptionTTL.
func checkTTL(seconds *int64) (time.Duration, error) {
	limit := int64(schemas.MaxSubscriptionTTL / time.Second)
	switch {
	case seconds == nil:
		return 0, httpapi.Errorf(httpapi.CodeInvalid, `"ttl_seconds" is required: how long the subscription lasts, in seconds`)
	case *seconds < 1 || *seconds > limit:
		return 0, httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf(`"ttl_seconds" %d is out of range: 1 to %d (7 days)`, *seconds, limit))
	}
	return time.Duration(*seconds) * time.Second, nil
}

// reserve admits subscriber's subscriptions to watched until expires, or
// refuses them when they would leave it watching more than the cap of
// users live at now. Renewing a live subscription does not count twice.
func (s *Server) reserve(r *http.Request, app, subscriber string, watched []string, expires, now time.Time) error {
	res, err := s.store.ReserveSubscriptions(r.Context(), app, subscriber, watched, s.maxSubs, expires, now)
	if err != nil {
		return unavailable(err)
	}
	if !res.Admitted {
		return httpapi.Errorf(httpapi.CodeTooManySubs, fmt.Sprintf(
			"subscriber %q has %d live subscriptions and this request adds %d, over the cap of %d: end some or let them expire",
			subscriber, res.Live, res.Added, s.maxSubs))
	}
	return nil
}

// appendSubscribed appends the answer of subscribe to b, as encoding/json
// writes a subscribeResponse.
func appendSubscribed(b []byte, statuses []*redisstore.Status, expires redisstore.Time) []byte {
	b = appendResults(b, statuses)
	b = append(b, `,"expires_at":`...)
	b = expires.AppendJSON(b)
	return append(b, '}')
}
