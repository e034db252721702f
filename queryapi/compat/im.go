package compat

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/httpapi"
)

// The Java IM's user status routes take the app and the calling user (the
// operator) as the query parameters appId and identifier, a JSON body
// (its request classes, each with the fields of RequestBase: appId,
// operater, clientType, imei, which the query parameters override), and
// answer its ResponseVO, {"code":200,"msg":"success","data":…}. Here the
// caller is who its credentials say; identifier names the user whose
// friends are read, who subscribes, or whose custom status is set when
// the body names nobody, and the native route checks the credentials may
// act for that user.

// javaIM is the Java IM's envelope.
type javaIM struct{}

// imResponse is the Java IM's ResponseVO. An error has the HTTP status
// as its code, the native message, and data null.
type imResponse struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	Data any    `json:"data"`
}

func (javaIM) fail(w http.ResponseWriter, status int, e *httpapi.Error) {
	httpapi.WriteJSON(w, status, imResponse{Code: status, Msg: e.Message})
}

// imSuccess answers data in the Java IM's envelope.
func imSuccess(w http.ResponseWriter, data any) {
	httpapi.WriteJSON(w, http.StatusOK, imResponse{Code: http.StatusOK, Msg: "success", Data: data})
}

// requestBase are the fields every request of the Java IM may carry;
// they are accepted and not read, as the seed overrides them with the
// query parameters.
type requestBase struct {
	AppID      json.RawMessage `json:"appId"`
	Operater   json.RawMessage `json:"operater"`
	ClientType json.RawMessage `json:"clientType"`
	Imei       json.RawMessage `json:"imei"`
}

// imQuery returns the query parameters appId and identifier; the app is
// required, and so is the identifier when needIdentifier.
func imQuery(r *http.Request, needIdentifier bool) (app, identifier string, err error) {
	q := r.URL.Query()
	app, identifier = q.Get("appId"), q.Get("identifier")
	switch {
	case app == "":
		return "", "", httpapi.Errorf(httpapi.CodeInvalid, "query parameter appId is required: the app")
	case needIdentifier && identifier == "":
		return "", "", httpapi.Errorf(httpapi.CodeInvalid, "query parameter identifier is required: the user who calls")
	}
	return app, identifier, nil
}

// queryUserOnlineStatus answers POST …/queryUserOnlineStatus?appId=
// {"userList":[…]} with data {user: UserOnlineStatusResp} for every user
// named, through POST /v1/apps/{app}/status/query. A user never seen has
// no session and a null custom status, as in the seed.
func (c *Compat) queryUserOnlineStatus(w http.ResponseWriter, r *http.Request) error {
	app, identifier, err := imQuery(r, false)
	if err != nil {
		return err
	}
	var req struct {
		requestBase
		UserList []string `json:"userList"`
	}
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	// The statuses are as the user who calls (identifier) sees them: an
	// invisible user is offline to them, whatever the key.
	viewer := identifier
	if viewer == "" {
		viewer = r.URL.Query().Get("viewer")
	}
	ans, err := c.statuses(w, r, app, viewer, req.UserList, "userList", "user ids")
	if err != nil {
		return err
	}
	data := newUserStatuses(app, len(req.UserList))
	for i, u := range req.UserList {
		data.add(u, ans.Results[i])
	}
	imSuccess(w, data)
	return nil
}

// queryFriendOnlineStatus answers POST …/queryFriendOnlineStatus?appId=
// &identifier= {} with data {friend: UserOnlineStatusResp} for the
// identifier's friends, through GET
// /v1/apps/{app}/users/{identifier}/friends/status: friends never seen,
// or offline for longer than the offline TTL, are left out.
func (c *Compat) queryFriendOnlineStatus(w http.ResponseWriter, r *http.Request) error {
	app, user, err := imQuery(r, true)
	if err != nil {
		return err
	}
	var req requestBase
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	var ans results
	if err := c.call(w, r, http.MethodGet, nil, &ans, "v1", "apps", app, "users", user, "friends", "status"); err != nil {
		return err
	}
	data := newUserStatuses(app, len(ans.Results))
	for _, st := range ans.Results {
		if st != nil {
			data.add(st.User, st)
		}
	}
	imSuccess(w, data)
	return nil
}

// subscribeBody is the body of the native subscribe.
type subscribeBody struct {
	Users      []string `json:"users"`
	TTLSeconds int64    `json:"ttl_seconds"`
}

// subscribeUserOnlineStatus answers POST
// …/subscribeUserOnlineStatus?appId=&identifier= {"subUserId":[…],
// "subTime":ms}: the identifier watches each of subUserId for subTime
// milliseconds (rounded up to a second, at most 7 days), through POST
// /v1/apps/{app}/users/{identifier}/subscriptions. data is null.
func (c *Compat) subscribeUserOnlineStatus(w http.ResponseWriter, r *http.Request) error {
	app, user, err := imQuery(r, true)
	if err != nil {
		return err
	}
	var req struct {
		requestBase
		SubUserID []string `json:"subUserId"`
		SubTime   *int64   `json:"subTime"`
	}
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	limit := schemas.MaxSubscriptionTTL.Milliseconds()
	switch {
	case req.SubUserID == nil:
		return httpapi.Errorf(httpapi.CodeInvalid, `"subUserId" is required: the users to watch`)
	case req.SubTime == nil:
		return httpapi.Errorf(httpapi.CodeInvalid, `"subTime" is required: how long to watch, in milliseconds`)
	case *req.SubTime < 1 || *req.SubTime > limit:
		return httpapi.Errorf(httpapi.CodeInvalid, fmt.Sprintf(`"subTime" %d is out of range: 1 to %d milliseconds (7 days)`, *req.SubTime, limit))
	}
	second := time.Second.Milliseconds()
	body := subscribeBody{Users: req.SubUserID, TTLSeconds: (*req.SubTime + second - 1) / second}
	if err := c.call(w, r, http.MethodPost, body, nil, "v1", "apps", app, "users", user, "subscriptions"); err != nil {
		return naming(err, "users", "subUserId")
	}
	imSuccess(w, nil)
	return nil
}

// customBody is the body of the native custom status write.
type customBody struct {
	Status int64  `json:"status"`
	Text   string `json:"text"`
}

// setUserCustomerStatus answers POST
// …/setUserCustomerStatus?appId=&identifier= {"userId","customStatus",
// "customText"}: sets userId's custom status (the identifier's, without
// a userId), through PUT /v1/apps/{app}/users/{user}/custom-status; both
// fields null or absent clear it, through DELETE, as the seed's null
// status reads as none. data is null.
func (c *Compat) setUserCustomerStatus(w http.ResponseWriter, r *http.Request) error {
	app, identifier, err := imQuery(r, false)
	if err != nil {
		return err
	}
	var req struct {
		requestBase
		UserID       string  `json:"userId"`
		CustomText   *string `json:"customText"`
		CustomStatus *int64  `json:"customStatus"`
	}
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	user := req.UserID
	if user == "" {
		user = identifier
	}
	path := []string{"v1", "apps", app, "users", user, "custom-status"}
	switch {
	case user == "":
		return httpapi.Errorf(httpapi.CodeInvalid, `"userId" (or the query parameter identifier) is required: whose status to set`)
	case req.CustomStatus == nil && req.CustomText == nil:
		err = c.call(w, r, http.MethodDelete, nil, nil, path...)
	case req.CustomStatus == nil:
		return httpapi.Errorf(httpapi.CodeInvalid, `"customStatus" is required with "customText": an integer`)
	default:
		body := customBody{Status: *req.CustomStatus}
		if req.CustomText != nil {
			body.Text = *req.CustomText
		}
		err = c.call(w, r, http.MethodPut, body, nil, path...)
	}
	if err != nil {
		return naming(err, "status", "customStatus")
	}
	imSuccess(w, nil)
	return nil
}
