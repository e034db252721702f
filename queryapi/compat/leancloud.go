package compat

import (
	"fmt"
	"net/http"

	"github.com/presence-im/presence/schemas/status"
	"github.com/presence-im/presence/service/httpapi"
)

// LeanCloud's recipe of online status is three cloud functions over
// Redis: _clientOnline sets peerId -> 1, _clientOffline sets peerId -> 0
// for 7 days, and getOnOffStatus({peerIds}) answers what MGET does, "1",
// "0" or null (never seen, or expired) for each id, in the order asked.
// Presence writes the first two itself, from the gateways' records; the
// third is here, at LeanCloud's REST path of a cloud function
// (POST /1.1/functions/<name>, the app in the X-LC-Id header, the answer
// {"result":…}, an error {"code":int,"error":string} with a 4xx or 5xx
// status), over the native status query.

// Values of getOnOffStatus for a user who is online and offline.
const (
	peerOnline  = "1"
	peerOffline = "0"
)

// leanCloud is the envelope of LeanCloud's cloud functions.
type leanCloud struct{}

// leanCloudError is LeanCloud's error: the status as its code (LeanCloud
// answers a bad key {"code":401,"error":"Unauthorized."}), and the native
// message.
type leanCloudError struct {
	Code  int    `json:"code"`
	Error string `json:"error"`
}

func (leanCloud) fail(w http.ResponseWriter, status int, e *httpapi.Error) {
	httpapi.WriteJSON(w, status, leanCloudError{Code: status, Error: e.Message})
}

// onOffRequest is the parameters of getOnOffStatus.
type onOffRequest struct {
	PeerIDs []string `json:"peerIds"`
}

// onOffResponse is its answer: "1", "0" or null per peer.
type onOffResponse struct {
	Result []*string `json:"result"`
}

// queryBody is the body of the native status query.
type queryBody struct {
	Users []string `json:"users"`
}

// results is the native answer of statuses.
type results struct {
	Results []*status.Status `json:"results"`
}

// statuses asks the native status query the statuses of users, a list
// the seed's request holds as field (of what), as viewer sees them (see
// callAs), and returns a status or nil per user, in order. Errors name
// the seed's field.
func (c *Compat) statuses(w http.ResponseWriter, r *http.Request, app, viewer string, users []string, field, what string) (results, error) {
	if users == nil {
		return results{}, httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf("%q is required: a list of %s", field, what))
	}
	var ans results
	if err := c.callAs(w, r, viewer, http.MethodPost, queryBody{Users: users}, &ans, "v1", "apps", app, "status", "query"); err != nil {
		return results{}, naming(err, "users", field)
	}
	if len(ans.Results) != len(users) {
		return results{}, fmt.Errorf("the status query answered %d results for %d users", len(ans.Results), len(users))
	}
	return ans, nil
}

// getOnOffStatus answers POST /compat/leancloud/1.1/functions/getOnOffStatus
// (header X-LC-Id: the app) {"peerIds":[…]} with {"result":[…]}: "1" for
// an online user, "0" for an offline one, null for one never seen or
// offline for longer than the offline TTL, in the order asked, through
// POST /v1/apps/{app}/status/query.
func (c *Compat) getOnOffStatus(w http.ResponseWriter, r *http.Request) error {
	app := r.Header.Get("X-LC-Id")
	if app == "" {
		return httpapi.Errorf(httpapi.CodeInvalid, "header X-LC-Id is required: the app")
	}
	var req onOffRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	// The caller's ?viewer= passes on: privacy applies as to the native
	// status query.
	ans, err := c.statuses(w, r, app, r.URL.Query().Get("viewer"), req.PeerIDs, "peerIds", "client ids")
	if err != nil {
		return err
	}
	online, offline := peerOnline, peerOffline
	resp := onOffResponse{Result: make([]*string, len(ans.Results))}
	for i, st := range ans.Results {
		switch {
		case st == nil:
		case st.State == status.Online:
			resp.Result[i] = &online
		default:
			resp.Result[i] = &offline
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}
