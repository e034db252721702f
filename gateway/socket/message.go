package socket

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	pb "github.com/presence-im/presence/schemas/presencepb"
)

// Message types, the "type" of a message and the label of
// notifications_delivered_total.
const (
	TypePresence = "presence"
	TypeSync     = "sync"
)

// message is what a client receives: a type, then the fields of the query
// API's Status of the user who changed.
type message struct {
	Type string `json:"type"`
	status
}

// status is the query API's Status JSON (redisstore.Status), field for
// field.
type status struct {
	User     string    `json:"user"`
	State    string    `json:"state"`
	Sessions []session `json:"sessions"`
	Custom   *custom   `json:"custom"`
	LastSeen *millis   `json:"last_seen"`
	Version  int64     `json:"version"`
}

type session struct {
	Session     string `json:"session"`
	Device      string `json:"device"`
	DeviceID    string `json:"device_id"`
	Gateway     string `json:"gateway"`
	ConnectedAt millis `json:"connected_at"`
}

type custom struct {
	Status int    `json:"status"`
	Text   string `json:"text"`
}

// millis is a time in Unix milliseconds that reads in JSON as RFC 3339 in
// UTC with exactly three fractional digits, like the query API's times.
type millis int64

const millisLayout = "2006-01-02T15:04:05.000Z07:00"

func (m millis) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(millisLayout)+2)
	b = append(b, '"')
	b = time.UnixMilli(int64(m)).UTC().AppendFormat(b, millisLayout)
	return append(b, '"'), nil
}

// messageType is the "type" of a notification's messages; false for a
// type this gateway does not know.
func messageType(t pb.NotificationType) (string, bool) {
	switch t {
	case pb.NotificationType_NOTIFICATION_TYPE_PRESENCE:
		return TypePresence, true
	case pb.NotificationType_NOTIFICATION_TYPE_SYNC:
		return TypeSync, true
	}
	return "", false
}

// encode is the message of a notification for each of its recipients.
func encode(typ string, u *pb.UserStatus) ([]byte, error) {
	st := status{
		User:     u.GetUser(),
		State:    "offline",
		Sessions: make([]session, 0, len(u.GetSessions())),
		Version:  u.GetVersion(),
	}
	if u.GetOnline() {
		st.State = "online"
	}
	for _, s := range u.GetSessions() {
		st.Sessions = append(st.Sessions, session{
			Session:     s.GetSession(),
			Device:      s.GetDevice().GetType(),
			DeviceID:    s.GetDevice().GetId(),
			Gateway:     s.GetGateway(),
			ConnectedAt: millis(s.GetConnectedAtMs()),
		})
	}
	// The query API's order: oldest connection first.
	slices.SortFunc(st.Sessions, func(a, b session) int {
		return cmp.Or(cmp.Compare(a.ConnectedAt, b.ConnectedAt), cmp.Compare(a.Session, b.Session))
	})
	if c := u.GetCustom(); c != nil {
		st.Custom = &custom{Status: int(c.GetStatus()), Text: c.GetText()}
	}
	if ms := u.GetLastSeenMs(); ms != 0 {
		last := millis(ms)
		st.LastSeen = &last
	}
	return json.Marshal(message{Type: typ, status: st})
}
