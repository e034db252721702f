package socket

import (
	"cmp"
	"slices"
	"time"

	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/status"
)

// Message types, the "type" of a message and the label of
// notifications_delivered_total.
const (
	TypePresence = "presence"
	TypeSync     = "sync"
)

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

// encode is the message of a notification for each of its recipients: its
// type, then the fields of the query API's Status of the user who changed
// (written by package schemas/status, as the query API writes them).
func encode(typ string, u *pb.UserStatus) []byte {
	st := status.Status{
		User:     u.GetUser(),
		State:    status.Offline,
		Sessions: make([]status.Session, 0, len(u.GetSessions())),
		Version:  u.GetVersion(),
	}
	if u.GetOnline() {
		st.State = status.Online
	}
	for _, s := range u.GetSessions() {
		st.Sessions = append(st.Sessions, status.Session{
			Session:     s.GetSession(),
			Device:      s.GetDevice().GetType(),
			DeviceID:    s.GetDevice().GetId(),
			Gateway:     s.GetGateway(),
			ConnectedAt: millis(s.GetConnectedAtMs()),
		})
	}
	// The query API's order: oldest connection first.
	slices.SortFunc(st.Sessions, func(a, b status.Session) int {
		return cmp.Or(a.ConnectedAt.Compare(b.ConnectedAt.Time), cmp.Compare(a.Session, b.Session))
	})
	if c := u.GetCustom(); c != nil {
		st.Custom = &status.Custom{Status: int(c.GetStatus()), Text: c.GetText()}
	}
	if ms := u.GetLastSeenMs(); ms != 0 {
		last := millis(ms)
		st.LastSeen = &last
	}
	return st.AppendMessageJSON(nil, typ)
}

// millis is a time in Unix milliseconds, in UTC.
func millis(ms int64) status.Time { return status.Time{Time: time.UnixMilli(ms).UTC()} }
