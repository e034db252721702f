package redisstore_test

import (
	"testing"

	"github.com/presence-im/presence/redisstore"
	pst "github.com/presence-im/presence/schemas/status"
)

// A session's activity is kept in its hash field (nothing for active,
// two bytes otherwise) and read back, with the aggregate: the most
// present session's, none offline.
func TestSessionActivity(t *testing.T) {
	s := newStore(t, redisstore.DefaultOfflineTTL)
	idle, background := connect("ann", "s1", 1, base), connect("ann", "s2", 2, base)
	idle.Activity, background.Activity = pst.Idle, pst.Background
	apply(t, s, idle, background)
	st := status(t, s, "ann")
	if len(st.Sessions) != 2 || st.Sessions[0].Activity != pst.Idle || st.Sessions[1].Activity != pst.Background || st.Activity != pst.Idle {
		t.Fatalf("status %+v, want s1 idle, s2 background, aggregate idle", st)
	}
	apply(t, s, connect("ann", "s3", 3, base))
	if st := status(t, s, "ann"); st.Activity != pst.Active || st.Sessions[2].Activity != pst.Active {
		t.Fatalf("with an active session: %+v, want active", st)
	}
	apply(t, s, disconnect("ann", "s1", 4, base), disconnect("ann", "s2", 5, base), disconnect("ann", "s3", 6, base))
	if st := status(t, s, "ann"); st.State != redisstore.Offline || st.Activity != "" {
		t.Fatalf("offline: %+v, want no activity", st)
	}
}
