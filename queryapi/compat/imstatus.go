package compat

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/presence-im/presence/schemas/status"
)

// userStatus is the Java IM's UserOnlineStatusResp: a user's live
// sessions and custom status.
type userStatus struct {
	Session      []userSession `json:"session"`
	CustomText   *string       `json:"customText"`
	CustomStatus *int          `json:"customStatus"`
}

// userSession is the Java IM's UserSession, of a Presence session: the
// app, a number when its id is one (the seed's apps are integers); the
// clientType of the device (ClientType's codes: webApi 0, web 1, ios 2,
// android 3, windows 4, mac 5, or a device that is such a number; null
// for another); no SDK version; connectState 1, online (the seed lists
// online sessions only); the gateway as brokerHost, and as brokerId when
// it is a number; the device id as imei (null without one).
type userSession struct {
	UserID       string  `json:"userId"`
	AppID        any     `json:"appId"`
	ClientType   *int    `json:"clientType"`
	Version      *int    `json:"version"`
	ConnectState int     `json:"connectState"`
	BrokerID     *int    `json:"brokerId"`
	BrokerHost   string  `json:"brokerHost"`
	Imei         *string `json:"imei"`
}

// connectOnline is the Java IM's connectState of a live session.
const connectOnline = 1

// userStatuses is the data of the status queries, {user:
// UserOnlineStatusResp}, in the order users were first added.
type userStatuses struct {
	app   any
	order []string
	by    map[string]userStatus
}

func newUserStatuses(app string, n int) *userStatuses {
	var appID any = app
	if id, ok := number(app); ok {
		appID = id
	}
	return &userStatuses{app: appID, order: make([]string, 0, n), by: make(map[string]userStatus, n)}
}

// add adds user with its status, nil for a user Presence does not know.
func (m *userStatuses) add(user string, st *status.Status) {
	if _, ok := m.by[user]; ok {
		return
	}
	us := userStatus{Session: []userSession{}}
	if st != nil {
		for _, s := range st.Sessions {
			us.Session = append(us.Session, m.session(st.User, s))
		}
		if st.Custom != nil {
			us.CustomText, us.CustomStatus = &st.Custom.Text, &st.Custom.Status
		}
	}
	m.order = append(m.order, user)
	m.by[user] = us
}

func (m *userStatuses) session(user string, s status.Session) userSession {
	us := userSession{UserID: user, AppID: m.app, ClientType: clientType(s.Device),
		ConnectState: connectOnline, BrokerHost: s.Gateway}
	if id, ok := number(s.Gateway); ok {
		us.BrokerID = &id
	}
	if s.DeviceID != "" {
		us.Imei = &s.DeviceID
	}
	return us
}

// MarshalJSON writes the statuses as one object, in order.
func (m *userStatuses) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, u := range m.order {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(u)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.by[u])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// clientType is the Java IM's ClientType code of a device, or nil.
func clientType(device string) *int {
	code := -1
	switch strings.ToLower(device) {
	case "webapi":
		code = 0
	case "web":
		code = 1
	case "ios":
		code = 2
	case "android":
		code = 3
	case "windows":
		code = 4
	case "mac":
		code = 5
	default:
		if n, ok := number(device); ok {
			code = n
		}
	}
	if code < 0 {
		return nil
	}
	return &code
}

// number is s read as a Java Integer, when s is one written plainly
// (no sign, no leading zero): "10000", not "+1" or "007".
func number(s string) (int, bool) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, false
	}
	return int(n), true
}
