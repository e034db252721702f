package processor

import (
	"slices"
	"testing"
	"time"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas/status"
)

// TestLeasesJudge checks the rules of lease.go, one session each: of the
// heartbeating epoch, lost when the lease lapses; of an older epoch
// connected before the latest heartbeat, lost at once; of another epoch
// connected after it, a lease after connecting; of a gateway never heard
// of, the fallback lease after connecting. A lost session is not judged
// lost again while its disconnect is written and not yet applied.
func TestLeasesJudge(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ls := newLeases(30 * time.Second)
	ls.setPartitions(1)
	ls.renew("gw", lease{epoch: "e2", at: t0, length: 10 * time.Second, expires: t0.Add(10 * time.Second)})
	session := func(id, epoch string, connected time.Time) state.GatewaySession {
		return state.GatewaySession{App: "a", User: "u-" + id, Session: redisstore.Session{Session: id, Gateway: "gw",
			Epoch: epoch, ConnectedAt: status.Time{Time: connected}}}
	}
	sessions := []state.GatewaySession{
		session("current", "e2", t0.Add(-time.Minute)),
		session("restarted", "e1", t0.Add(-time.Minute)),
		session("later", "e3", t0.Add(5*time.Second)),
	}
	names := func(ss []state.GatewaySession) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Session.Session)
		}
		return out
	}
	for _, c := range []struct {
		asOf time.Duration
		want []string
	}{
		{0, []string{"restarted"}},
		{10 * time.Second, []string{"current", "restarted"}},
		{15 * time.Second, []string{"current", "restarted", "later"}},
	} {
		now := t0.Add(c.asOf)
		lost, l, known := ls.judge("gw", sessions, now, now)
		if got := names(lost); !slices.Equal(got, c.want) || !known || l.epoch != "e2" {
			t.Errorf("as of t0+%s: lost %v (lease %+v, known %v), want %v", c.asOf, got, l, known, c.want)
		}
	}

	ls.wrote(sessions[1:2], t0)
	if lost, _, _ := ls.judge("gw", sessions, t0.Add(time.Second), t0.Add(time.Second)); len(lost) != 0 {
		t.Errorf("a session whose disconnect was just written is lost again: %v", names(lost))
	}
	if lost, _, known := ls.judge("quiet-gw", []state.GatewaySession{session("q", "e", t0)}, t0.Add(29*time.Second), t0.Add(29*time.Second)); len(lost) != 0 || known {
		t.Errorf("a session of a gateway never heard of is lost before the fallback lease: %v", names(lost))
	}
	if lost, _, _ := ls.judge("quiet-gw", []state.GatewaySession{session("q", "e", t0)}, t0.Add(30*time.Second), t0.Add(30*time.Second)); len(lost) != 1 {
		t.Errorf("a session of a gateway never heard of is not lost after the fallback lease: %v", names(lost))
	}
}

// TestLeasesDue checks that a gateway is looked at only once its
// partition of presence.gateways was read up to its end, then not again
// before its next check, unless rechecked.
func TestLeasesDue(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ls := newLeases(30 * time.Second)
	ls.setPartitions(1)
	ls.renew("gw", lease{epoch: "e", at: t0, length: 10 * time.Second, expires: t0.Add(10 * time.Second)})
	if due := ls.due([]string{"hosting"}, t0); len(due) != 0 {
		t.Fatalf("due before the heartbeats were read: %v", due)
	}
	ls.read([]int32{0}, t0)
	due := ls.due([]string{"hosting"}, t0.Add(time.Second))
	if len(due) != 2 || due[0].id != "gw" || due[1].id != "hosting" || !due[0].asOf.Equal(t0) {
		t.Fatalf("due once read: %v, want gw and hosting as of t0", due)
	}
	if due := ls.due([]string{"hosting"}, t0.Add(2*time.Second)); len(due) != 0 {
		t.Fatalf("due again before their next check: %v", due)
	}
	ls.recheck("hosting")
	if due := ls.due([]string{"hosting"}, t0.Add(3*time.Second)); len(due) != 1 || due[0].id != "hosting" {
		t.Fatalf("due after recheck: %v, want hosting", due)
	}
	ls.forget("gw")
	ls.recheck("gw")
	if due := ls.due(nil, t0.Add(4*time.Second)); len(due) != 0 {
		t.Fatalf("a forgotten gateway hosting nothing is due: %v", due)
	}
}
