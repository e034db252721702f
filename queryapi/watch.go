package queryapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/presence-im/presence/queryapi/watch"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/httpapi"
)

// Watch timeouts: timeout_ms when the request has none, and the most it
// may ask (the servers' write timeout leaves room for it).
const (
	DefaultWatchTimeout = 25 * time.Second
	MaxWatchTimeout     = 30 * time.Second
)

// feedStartWait is how long a first watch waits for the change feed to
// start being read (a query API that has just started) before 503.
const feedStartWait = 5 * time.Second

type watchRequest struct {
	Users     []string `json:"users"`
	Cursor    *string  `json:"cursor"`
	TimeoutMS *int64   `json:"timeout_ms"`
}

// watchStatuses answers POST /v1/apps/{app}/status/watch. Without a
// cursor: the statuses of the users, as a status query answers them, and
// the cursor to watch them from. With one: the latest status of each of
// them that changed after it, as soon as one has, or none at the
// timeout, and the cursor to go on from.
func (s *Server) watchStatuses(w http.ResponseWriter, r *http.Request) error {
	app, err := appParam(r)
	if err != nil {
		return err
	}
	var req watchRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := checkUsers(req.Users); err != nil {
		return err
	}
	timeout := DefaultWatchTimeout
	if req.TimeoutMS != nil {
		if *req.TimeoutMS < 0 || *req.TimeoutMS > MaxWatchTimeout.Milliseconds() {
			return httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("timeout_ms %d: want 0 to %d", *req.TimeoutMS, MaxWatchTimeout.Milliseconds()))
		}
		timeout = time.Duration(*req.TimeoutMS) * time.Millisecond
	}
	v, err := viewerOf(r)
	if err != nil {
		return err
	}
	if req.Cursor == nil {
		return s.watchStart(w, r, app, req.Users, v)
	}
	c, err := watch.ParseCursor(*req.Cursor)
	if err != nil {
		return httpapi.Errorf(httpapi.CodeInvalid, "cursor: not one this service gave; start again without one")
	}
	gen, ok := s.rebuilding.generation(r.Context())
	if !ok {
		return httpapi.Errorf(httpapi.CodeUnavailable, "redis, where the state's generation is read, is unavailable; retry later")
	}
	keys := make([]string, len(req.Users))
	for i, u := range req.Users {
		keys[i] = schemas.UserKey(app, u)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	changes, next, err := s.feed.Wait(ctx, keys, c, gen)
	switch {
	case errors.Is(err, watch.ErrExpired):
		return httpapi.Errorf(httpapi.CodeCursorExpired, err.Error()+": start again without one")
	case errors.Is(err, watch.ErrNotReady):
		return httpapi.Errorf(httpapi.CodeNotReady, "the change feed is not read yet; retry shortly")
	case errors.Is(err, watch.ErrBusy):
		return httpapi.Errorf(httpapi.CodeUnavailable, "too many watches wait on this query API; retry later, or on another")
	case err != nil:
		return err
	}
	if r.Context().Err() != nil {
		return nil // the client left
	}
	masked, err := s.maskChanges(r.Context(), app, v, changes)
	if err != nil {
		return err
	}
	s.writeEncoded(w, http.StatusOK, 64+len(changes)*answerSize(1), func(b []byte) []byte {
		b = append(b, `{"changes":[`...)
		for i, c := range changes {
			if i > 0 {
				b = append(b, ',')
			}
			if masked != nil && masked[i] != nil {
				b = masked[i].AppendJSON(b)
			} else {
				b = append(b, c.JSON...)
			}
		}
		return appendCursor(append(b, ']'), next)
	})
	return nil
}

// watchStart answers a watch without a cursor: the generation of the
// state and the position of the feed are taken before the statuses are
// read, so that a change after the read is after the cursor (a change in
// between comes twice: its version tells).
func (s *Server) watchStart(w http.ResponseWriter, r *http.Request, app string, users []string, v viewer) error {
	gen, err := s.store.Generation(r.Context())
	if err != nil {
		return unavailable(err)
	}
	started, cancel := context.WithTimeout(r.Context(), feedStartWait)
	defer cancel()
	c, err := s.feed.Position(started, gen)
	if errors.Is(err, watch.ErrNotReady) {
		return httpapi.Errorf(httpapi.CodeNotReady, "the change feed is not read yet; retry shortly")
	}
	buf := s.lookups.get()
	defer s.lookups.put(buf)
	results, err := s.statuses(w, r, app, users, buf, v)
	if err != nil {
		return err
	}
	if w.Header().Get(RebuildingHeader) != "" {
		// The rebuild applies the rest of the history without a change
		// record: a cursor taken now would never learn of it.
		w.Header().Del(RebuildingHeader)
		return httpapi.Errorf(httpapi.CodeNotReady, "the state is being rebuilt from kafka: a watch can start once it is whole; retry shortly")
	}
	s.metrics.count(results)
	s.writeEncoded(w, http.StatusOK, answerSize(len(results)), func(b []byte) []byte {
		return appendCursor(appendResults(b, results), c)
	})
	return nil
}

// appendCursor closes an answer left open with its cursor.
func appendCursor(b []byte, c watch.Cursor) []byte {
	b = append(b, `,"cursor":"`...)
	b = append(b, c.Encode()...) // base64url: nothing to escape
	return append(b, `"}`...)
}
