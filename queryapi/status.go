package queryapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/httpapi"
)

type queryRequest struct {
	Users []string `json:"users"`
}

// queryResponse is the answer of a status query, written by
// writeResults.
type queryResponse struct {
	Results []*redisstore.Status `json:"results"`
}

// queryStatuses answers POST /v1/apps/{app}/status/query with a status or
// null per user asked, in order.
func (s *Server) queryStatuses(w http.ResponseWriter, r *http.Request) error {
	app, err := appParam(r)
	if err != nil {
		return err
	}
	var req queryRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := checkUsers(req.Users); err != nil {
		return err
	}
	v, err := viewerOf(r)
	if err != nil {
		return err
	}
	buf := s.lookups.get()
	defer s.lookups.put(buf)
	results, err := s.statuses(w, r, app, req.Users, buf, v)
	if err != nil {
		return err
	}
	s.metrics.count(results)
	s.writeResults(w, results)
	return nil
}

// userStatus answers GET /v1/apps/{app}/users/{user}/status.
func (s *Server) userStatus(w http.ResponseWriter, r *http.Request) error {
	app, user, err := appUser(r)
	if err != nil {
		return err
	}
	v, err := viewerOf(r)
	if err != nil {
		return err
	}
	sts, err := s.statuses(w, r, app, []string{user}, nil, v)
	if err != nil {
		return err
	}
	st := sts[0]
	s.metrics.count(sts)
	if st == nil {
		return httpapi.Errorf(httpapi.CodeNotFound, fmt.Sprintf("user %q of app %q is not known (never seen, or offline for longer than the offline TTL)", user, app))
	}
	s.writeEncoded(w, http.StatusOK, answerSize(1), st.AppendJSON)
	return nil
}

// statuses reads the statuses of users for a lookup, into buf when it is
// not nil (see redisstore.StatusesIntactInto). When that read finds
// the state not whole (Redis, or a master of a cluster, lost its data
// since the rebuild count was last read) or of another generation (a
// rebuild began since), the count is read again at once and the answer
// carries RebuildingHeader: never a null or a 404 for a user whose state
// was lost without saying so. Each status is as v may see it (mask).
func (s *Server) statuses(w http.ResponseWriter, r *http.Request, app string, users []string, buf *redisstore.StatusBuffer, v viewer) ([]*redisstore.Status, error) {
	if buf == nil {
		buf = new(redisstore.StatusBuffer)
	}
	results, seen, err := s.store.StatusesIntactInto(r.Context(), buf, app, users)
	if err != nil {
		return nil, unavailable(err)
	}
	if w.Header().Get(RebuildingHeader) == "" && !s.rebuilding.current(seen) { // the count read last said whole
		if n, ok := s.rebuilding.fresh(r.Context()); ok && n > 0 {
			w.Header().Set(RebuildingHeader, strconv.Itoa(n))
		}
	}
	if err := s.mask(r.Context(), app, v, results); err != nil {
		return nil, err
	}
	return results, nil
}

// checkUsers checks the "users" list of a request as every batch endpoint
// does: present, at most MaxBatch ids, each valid.
func checkUsers(users []string) error {
	if users == nil {
		return httpapi.Errorf(httpapi.CodeInvalid, `"users" is required: a list of user ids`)
	}
	if len(users) > MaxBatch {
		return httpapi.Errorf(httpapi.CodeTooMany, fmt.Sprintf("%d users asked, at most %d per request", len(users), MaxBatch))
	}
	for i, u := range users {
		if err := schemas.ValidateID("user", u); err != nil {
			return httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("users[%d]: %v", i, err))
		}
	}
	return nil
}

// lookup wraps a handler that reads state from Redis, which may be
// incomplete while it is rebuilt: the answer carries RebuildingHeader
// then, and is 503 not_ready while the gate fails.
func (s *Server) lookup(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if n := s.rebuilding.header(r.Context()); n != "" {
			w.Header().Set(RebuildingHeader, n)
		}
		if err := s.open(r); err != nil {
			return err
		}
		return h(w, r)
	}
}

// open reports whether lookups may be answered now.
func (s *Server) open(r *http.Request) error {
	if s.gate == nil {
		return nil
	}
	if err := s.gate(r.Context()); err != nil {
		return httpapi.Errorf(httpapi.CodeNotReady, "rebuilding state from Kafka, retry shortly: "+err.Error())
	}
	return nil
}

// unavailable wraps a Redis failure as a 503 the client may retry, keeping
// the cause for the log.
func unavailable(err error) error {
	return fmt.Errorf("%w (%w)", httpapi.Errorf(httpapi.CodeUnavailable, "redis, where statuses are read, is unavailable; retry later"), err)
}
