package status

import (
	"cmp"
	"slices"
	"time"

	pb "github.com/presence-im/presence/schemas/presencepb"
)

// FromProto returns the Status a record's UserStatus (a notification's
// subject, a StatusChange's status) says, in the query API's shape:
// sessions oldest connection first, times in UTC.
func FromProto(u *pb.UserStatus) Status {
	st := Status{
		User:     u.GetUser(),
		State:    Offline,
		Sessions: make([]Session, 0, len(u.GetSessions())),
		Version:  u.GetVersion(),
	}
	if u.GetOnline() {
		st.State = Online
	}
	for _, s := range u.GetSessions() {
		st.Sessions = append(st.Sessions, Session{
			Session:     s.GetSession(),
			Device:      s.GetDevice().GetType(),
			DeviceID:    s.GetDevice().GetId(),
			Gateway:     s.GetGateway(),
			ConnectedAt: millis(s.GetConnectedAtMs()),
			Activity:    ActivityFromProto(s.GetActivity()),
		})
	}
	slices.SortFunc(st.Sessions, func(a, b Session) int {
		return cmp.Or(a.ConnectedAt.Compare(b.ConnectedAt.Time), cmp.Compare(a.Session, b.Session))
	})
	if st.State == Online {
		st.Activity = ActivityFromProto(u.GetActivity())
	}
	if c := u.GetCustom(); c != nil {
		st.Custom = &Custom{Status: int(c.GetStatus()), Text: c.GetText()}
	}
	if ms := u.GetLastSeenMs(); ms != 0 {
		last := millis(ms)
		st.LastSeen = &last
	}
	return st
}

// millis is a time in Unix milliseconds, in UTC.
func millis(ms int64) Time { return Time{Time: time.UnixMilli(ms).UTC()} }
