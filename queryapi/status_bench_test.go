//go:build unix

package queryapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
)

// BenchmarkStatusQuery answers 500-id status queries, as the bench's
// query scenario asks them (a third online, offline, unknown), through
// the server's handler without a network: what the server spends per
// lookup besides Redis and HTTP transport (go test -bench StatusQuery
// -benchmem -cpuprofile), with several at once as in the bench.
func BenchmarkStatusQuery(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	store := redisstore.New(redistest.Client(b), redisstore.Options{Prefix: redistest.Prefix(b), OfflineTTL: time.Hour})
	s, err := queryapi.New(queryapi.Config{Store: store, Brokers: c.ListenAddrs(), RateLimits: nil,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)

	at := time.Now().Truncate(time.Millisecond).Add(-time.Minute)
	users := make([]string, queryapi.MaxBatch)
	var changes []redisstore.Change
	for i := range users {
		users[i] = fmt.Sprintf("user-%06d", i)
		connect := redisstore.Change{Op: redisstore.Connect, App: "chat", User: users[i], Session: "s" + users[i],
			Device: "ios", DeviceID: "d" + users[i], Gateway: "gw-1", At: at, Version: 1}
		switch i % 3 {
		case 0:
			changes = append(changes, connect)
		case 1:
			disconnect := connect
			disconnect.Op, disconnect.At, disconnect.Version = redisstore.Disconnect, at.Add(time.Second), 2
			changes = append(changes, connect, disconnect)
		}
	}
	if _, err := store.Apply(context.Background(), changes, false); err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(map[string][]string{"users": users})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	ask := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/apps/chat/status/query", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	if w := ask(); w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"state":"offline"`)) {
		b.Fatalf("answered %d: %.200s", w.Code, w.Body.Bytes())
	}
	b.ReportAllocs()
	start := cpuTime(b)
	b.SetParallelism(4) // 8 lookups at once on 2 cores, as the bench's clients
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w := ask(); w.Code != http.StatusOK {
				b.Errorf("answered %d: %.200s", w.Code, w.Body.Bytes())
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
