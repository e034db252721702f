//go:build unix

package redisstore_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
)

// BenchmarkStatusesIntact reads 500 statuses as a lookup of the query API
// does: a third online (one session, some two, some with a custom
// status), a third offline, a third unknown. Its allocations and CPU
// profile are the Go side of a lookup (go test -bench Statuses
// -benchmem -cpuprofile); several run at once, as a loaded query API
// runs them, so that the CPU measured is the lookups' rather than the
// scheduler's, spinning while one waits for Redis.
func BenchmarkStatusesIntact(b *testing.B) {
	s := redisstore.New(redistest.Client(b), redisstore.Options{Prefix: redistest.Prefix(b), OfflineTTL: time.Hour})
	const n = 500
	at := time.Now().Truncate(time.Millisecond).Add(-time.Minute)
	var changes []redisstore.Change
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("user-%06d", i)
		switch i % 3 {
		case 0:
			changes = append(changes, connect(users[i], "s"+users[i], 1, at))
			if i%2 == 0 {
				changes = append(changes, connect(users[i], "t"+users[i], 2, at.Add(time.Second)))
			}
		case 1:
			changes = append(changes, connect(users[i], "s"+users[i], 1, at),
				disconnect(users[i], "s"+users[i], 2, at.Add(time.Second)))
		}
	}
	if _, err := s.Apply(context.Background(), changes, false); err != nil {
		b.Fatal(err)
	}
	got, _, err := s.StatusesIntact(context.Background(), "chat", users)
	if err != nil || got[0] == nil || got[0].State != redisstore.Online || got[1] == nil || got[1].State != redisstore.Offline || got[2] != nil {
		b.Fatalf("statuses %v, %v; want online, offline, unknown", got[:3], err)
	}
	b.ReportAllocs()
	start := cpuTime(b)
	b.SetParallelism(4) // 8 lookups at once on 2 cores, as the bench's clients
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.StatusesIntact(context.Background(), "chat", users); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time this process has used (Redis, a process of its
// own, aside): with it a benchmark reports the CPU a lookup costs here,
// not the wall time it waits for Redis.
func cpuTime(b *testing.B) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
