package webhook_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/queryapi/webhook"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/service/auth"
)

// staticHooks is a Source of fixed webhooks.
type staticHooks []auth.Webhook

func (s staticHooks) Webhooks() ([]auth.Webhook, <-chan struct{}) { return s, nil }

// BenchmarkThroughKafka is one change delivered from presence.changes
// (in-process Kafka) to a local endpoint, 100 users, with as many
// changes of another app in the topic: the consumer, the filter, the
// delivery, and the in-process broker's and endpoint's work too (ns/op
// is wall time, 16 requests in flight; cpu-ns/op the process's CPU).
func BenchmarkThroughKafka(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(12, schemas.ChangesTopic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(records.Partitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	start := time.Now()
	recs := make([]*kgo.Record, 0, 2*b.N)
	for i := range b.N {
		for _, app := range []string{"chat", "games"} {
			user := fmt.Sprintf("u%d", i%100)
			r, err := records.Encode(schemas.ChangesTopic, schemas.UserKey(app, user), &pb.StatusChange{App: app, TimestampMs: time.Now().UnixMilli(),
				Status: &pb.UserStatus{User: user, Online: i%2 == 0, Version: int64(i),
					Sessions: []*pb.Session{{Session: "s1", Device: &pb.Device{Type: "ios", Id: "d1"}, Gateway: "gw-1", ConnectedAtMs: 1}}}}, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, r)
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		if got.Add(1) == int64(b.N) {
			close(done)
		}
	}))
	defer srv.Close()
	s, err := webhook.New(webhook.Config{Brokers: c.ListenAddrs(), Logger: slog.New(slog.DiscardHandler),
		Webhooks: staticHooks{{App: "chat", URL: srv.URL, Secret: []byte("bench-webhook-secret-01"), ID: "bench", Loaded: start}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	go func() {
		defer close(stopped)
		_ = s.Run(ctx)
	}()
	<-done
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
	cancel()
	<-stopped
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
