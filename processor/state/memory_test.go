package state_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
)

// memoryUsers is how many users the memory test keeps.
const memoryUsers = 100_000

// heapAfter returns the bytes allocated on the heap once build has run and
// the garbage is collected, and keeps build's result alive until then.
func heapAfter(build func() *state.Partition) (uint64, *state.Partition) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return after.HeapAlloc - before.HeapAlloc, p
}

// How the users of fill end up.
const (
	online    = iota // one session
	offline          // one session, ended
	reconnect        // one session ended, then another: the ended one's key is due
)

// fill applies, for each of memoryUsers users, a connect of one session
// with ids of realistic lengths (20-byte session ids, 16-byte device
// ids, 10 gateways), and a disconnect when offline or reconnecting,
// then a connect of another session when reconnecting.
func fill(how int) *state.Partition {
	p := state.New(state.Config{OfflineTTL: time.Hour})
	at := time.Now()
	v := int64(0)
	for i := range memoryUsers {
		c := redisstore.Change{Op: redisstore.Connect, App: "chat", User: fmt.Sprintf("user-%06d", i),
			Session: fmt.Sprintf("sess-%015d", i), Device: []string{"ios", "android", "web"}[i%3],
			DeviceID: fmt.Sprintf("dev-%012d", i), Gateway: fmt.Sprintf("gw-%d", i%10), Epoch: "1764000000000",
			At: at, Version: v}
		p.Apply(c, true)
		v++
		if how != online {
			p.Apply(redisstore.Change{Op: redisstore.Disconnect, App: c.App, User: c.User, Session: c.Session, At: at, Version: v}, true)
			v++
		}
		if how == reconnect {
			c.Session, c.Version = fmt.Sprintf("sess-%015d", memoryUsers+i), v
			p.Apply(c, true)
			v++
		}
	}
	p.TakeDirty()
	return p
}

// The state's own memory, per online session (a user with one session)
// and per offline user remembered, as the README reports it for the
// processor. The bounds are generous: they catch a struct that grows by
// a field or a map per user, not noise.
func TestMemory(t *testing.T) {
	for _, tc := range []struct {
		name  string
		how   int
		limit uint64
	}{
		{"online session", online, 300},
		{"offline user", offline, 200},
		{"online session, another ended before (its key due)", reconnect, 400},
	} {
		bytes, p := heapAfter(func() *state.Partition { return fill(tc.how) })
		if p.Len() != memoryUsers {
			t.Fatalf("%s: %d users known, want %d", tc.name, p.Len(), memoryUsers)
		}
		per := bytes / memoryUsers
		t.Logf("%s: %d bytes each in memory", tc.name, per)
		if per > tc.limit {
			t.Errorf("%s: %d bytes each, more than %d", tc.name, per, tc.limit)
		}
		runtime.KeepAlive(p)
	}
}

// BenchmarkMemory reports the state's memory per online session, per
// offline user, and per key due to be tombstoned (a session ended before
// its user came back online) (go test -run '^$' -bench Memory
// ./processor/state).
func BenchmarkMemory(b *testing.B) {
	for range b.N {
		on, p := heapAfter(func() *state.Partition { return fill(online) })
		runtime.KeepAlive(p)
		off, p := heapAfter(func() *state.Partition { return fill(offline) })
		runtime.KeepAlive(p)
		again, p := heapAfter(func() *state.Partition { return fill(reconnect) })
		runtime.KeepAlive(p)
		b.ReportMetric(float64(on)/memoryUsers, "bytes/online-session")
		b.ReportMetric(float64(off)/memoryUsers, "bytes/offline-user")
		b.ReportMetric(float64(again-on)/memoryUsers, "bytes/due-key")
	}
}

// BenchmarkApply measures applying live records (connects and
// disconnects of 100,000 users, announcements decided) and taking the
// images of a batch of 1,000 of them.
func BenchmarkApply(b *testing.B) {
	p := state.New(state.Config{OfflineTTL: time.Hour})
	at := time.Now()
	changes := make([]redisstore.Change, 2*memoryUsers)
	for i := range memoryUsers {
		c := redisstore.Change{Op: redisstore.Connect, App: "chat", User: fmt.Sprintf("user-%06d", i),
			Session: fmt.Sprintf("sess-%015d", i), Device: "ios", DeviceID: fmt.Sprintf("dev-%012d", i),
			Gateway: fmt.Sprintf("gw-%d", i%10), Epoch: "1764000000000", At: at}
		changes[2*i] = c
		c.Op = redisstore.Disconnect
		changes[2*i+1] = c
	}
	b.ResetTimer()
	for n := range b.N {
		c := changes[n%len(changes)]
		c.Version = int64(n)
		p.Apply(c, false)
		if n%1000 == 999 {
			p.TakeDirty()
		}
	}
}
