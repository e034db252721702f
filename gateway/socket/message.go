package socket

import (
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
	st := status.FromProto(u)
	return st.AppendMessageJSON(nil, typ)
}
