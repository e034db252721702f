package queryapi

import (
	"fmt"
	"math"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/httpapi"
)

// A custom status is one record on presence.sessions keyed by
// schemas.CustomStatusKey, in the user's partition, so it is ordered with
// the user's connects and disconnects; clearing it is a tombstone on that
// key.

type customRequest struct {
	// Status is required; a pointer tells a missing one from 0.
	Status *int64 `json:"status"`
	Text   string `json:"text"`
}

// customResponse is the answer of a custom status write: the custom status
// the user will show, null once cleared.
type customResponse struct {
	User   string             `json:"user"`
	Custom *redisstore.Custom `json:"custom"`
}

// setCustomStatus answers PUT /v1/apps/{app}/users/{user}/custom-status
// {"status":int,"text":string} with 202 once the record is in Kafka.
func (s *Server) setCustomStatus(w http.ResponseWriter, r *http.Request) error {
	app, user, err := appUser(r)
	if err != nil {
		return err
	}
	var req customRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	custom, err := req.check()
	if err != nil {
		return err
	}
	rec, err := customStatusRecord(app, user, custom, s.now())
	if err != nil {
		return badRequest(err)
	}
	return s.writeCustom(w, r, user, custom, rec)
}

// clearCustomStatus answers DELETE /v1/apps/{app}/users/{user}/custom-status
// with 202 once the tombstone is in Kafka.
func (s *Server) clearCustomStatus(w http.ResponseWriter, r *http.Request) error {
	app, user, err := appUser(r)
	if err != nil {
		return err
	}
	rec, err := customStatusRecord(app, user, nil, s.now())
	if err != nil {
		return badRequest(err)
	}
	return s.writeCustom(w, r, user, nil, rec)
}

func (s *Server) writeCustom(w http.ResponseWriter, r *http.Request, user string, custom *redisstore.Custom, rec *kgo.Record) error {
	if err := s.write(r.Context(), kindCustomStatus, []*kgo.Record{rec}); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusAccepted, customResponse{User: user, Custom: custom})
	return nil
}

// check returns the custom status the request sets: a status that fits an
// int32, a text of at most schemas.MaxCustomText characters.
func (req customRequest) check() (*redisstore.Custom, error) {
	if req.Status == nil {
		return nil, httpapi.Errorf(httpapi.CodeInvalid, `"status" is required: an integer`)
	}
	if *req.Status < math.MinInt32 || *req.Status > math.MaxInt32 {
		return nil, httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf(`"status" %d does not fit 32 bits (%d to %d)`, *req.Status, math.MinInt32, math.MaxInt32))
	}
	if err := schemas.ValidateCustomText(req.Text); err != nil {
		return nil, httpapi.Errorf(httpapi.CodeInvalid, err.Error())
	}
	return &redisstore.Custom{Status: int(*req.Status), Text: req.Text}, nil
}
