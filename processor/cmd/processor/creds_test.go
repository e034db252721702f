package main

// The processor binary with credentials: Kafka over TLS with SCRAM, Redis
// over TLS with a password, as docker-compose.yml runs it.

import (
	"context"
	"crypto/tls"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/service/testcert"
)

const (
	kafkaPassword = "kafka-Pa55word"
	redisPassword = "redis-Pa55word"
)

// secured is a Kafka that takes only TLS connections authenticated with
// SCRAM-SHA-512 and a Redis that takes only TLS connections with a
// password, both with certificates of a CA of the test's own.
type secured struct {
	caFile  string
	brokers string
	redis   *redistest.Server
	kafka   *kgo.Client // a client of the Kafka, with the credentials
	store   *redisstore.Store
}

func newSecured(t *testing.T) *secured {
	t.Helper()
	ca := testcert.NewCA(t)
	s := &secured{caFile: testcert.WriteFile(t, "ca.pem", ca.PEM)}
	cert, key := ca.Server(t, "127.0.0.1").Files(t)
	s.redis = redistest.NewServer(t, redistest.Options{Password: redisPassword,
		TLS: &redistest.TLS{CertFile: cert, KeyFile: key, CAFile: s.caFile}})
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "presence", kafkaPassword),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").Pair}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s.brokers = strings.Join(c.ListenAddrs(), ",")
	s.kafka, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(records.Partitioner()),
		kgo.SASL(scram.Auth{User: "presence", Pass: kafkaPassword}.AsSha512Mechanism()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool()}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kafka.Close)
	if err := processor.EnsureTopics(context.Background(), s.kafka, partitions); err != nil {
		t.Fatal(err)
	}
	ropts, err := redisstore.ParseURL(s.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	ropts.TLSConfig.RootCAs = ca.Pool()
	s.store = redisstore.New(redis.NewClient(ropts), redisstore.Options{Prefix: "creds"})
	t.Cleanup(func() { s.store.Close() })
	return s
}

// command is the processor binary bin given the credentials: the Kafka
// password through the environment, the Redis one in the URL, and the
// CA through SSL_CERT_FILE, which Go reads for the system's CAs (a
// rediss:// URL has no way to name a CA).
func (s *secured) command(bin, redisURL, addr string, env ...string) *exec.Cmd {
	cmd := exec.Command(bin, "--brokers", s.brokers, "--redis-url", redisURL, "--key-prefix", "creds",
		"--partitions", strconv.Itoa(partitions), "--addr", addr, "--group", "creds",
		"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-username", "presence", "--kafka-tls", "--kafka-tls-ca", s.caFile)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PRESENCE_") || strings.HasPrefix(kv, "SSL_CERT_")
	}), env...)
	redistest.DieWithTest(cmd)
	return cmd
}

// The processor binary reads the topics from a Kafka that requires TLS
// and SCRAM, and writes Redis over TLS with a password: Redis ends up
// holding what the records say, and no password shows in its logs.
func TestProcessorWithCredentials(t *testing.T) {
	s := newSecured(t)
	bin := buildProcessor(t)
	gen := newStream(rand.New(rand.NewPCG(3, 5)))
	produce(t, s.kafka, gen.heartbeats())
	recs := gen.next(300)
	produce(t, s.kafka, recs)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out logs
	cmd := s.command(bin, s.redis.URL(), addr, "PRESENCE_KAFKA_PASSWORD="+kafkaPassword, "SSL_CERT_FILE="+s.caFile)
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()

	waitApplied(t, s.kafka, s.store)
	requireModel(t, s.store, gen.users, model(recs))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the processor stopped with %v:\n%s", err, out.tail(20))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the processor did not stop within 30s:\n%s", out.tail(20))
	}
	logged := out.tail(1 << 20)
	if strings.Contains(logged, kafkaPassword) || strings.Contains(logged, redisPassword) {
		t.Errorf("the processor logged a password:\n%s", logged)
	}
}

// The processor binary given a wrong credential exits at once with an
// error that says what failed, and shows no password.
func TestProcessorWrongCredentials(t *testing.T) {
	s := newSecured(t)
	bin := buildProcessor(t)
	right := s.redis.URL()
	wrong := "rediss://:not-" + redisPassword + "@" + s.redis.Addr
	for _, tc := range []struct {
		name, redisURL string
		env            []string
		wants          []string
	}{
		{"wrong kafka password", right, []string{"PRESENCE_KAFKA_PASSWORD=not-" + kafkaPassword, "SSL_CERT_FILE=" + s.caFile},
			[]string{"connecting to kafka", `SASL SCRAM-SHA-512 as "presence"`}},
		{"no kafka password", right, []string{"SSL_CERT_FILE=" + s.caFile}, []string{"needs --kafka-password"}},
		{"wrong redis password", wrong, []string{"PRESENCE_KAFKA_PASSWORD=" + kafkaPassword, "SSL_CERT_FILE=" + s.caFile},
			[]string{"rediss://:xxxxx@" + s.redis.Addr, "WRONGPASS"}},
		{"redis without tls", "redis://:" + redisPassword + "@" + s.redis.Addr, []string{"PRESENCE_KAFKA_PASSWORD=" + kafkaPassword},
			[]string{"redis://:xxxxx@" + s.redis.Addr}},
		{"redis ca unknown", right, []string{"PRESENCE_KAFKA_PASSWORD=" + kafkaPassword},
			[]string{"rediss://:xxxxx@" + s.redis.Addr, "certificate signed by unknown authority"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out logs
			cmd := s.command(bin, tc.redisURL, "127.0.0.1:0", tc.env...)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
			err := cmd.Wait()
			if !timer.Stop() {
				t.Fatalf("the processor was still running after 60s:\n%s", out.tail(20))
			}
			if err == nil {
				t.Fatalf("the processor exited with 0:\n%s", out.tail(20))
			}
			text := out.tail(1 << 20)
			t.Logf("exited with %v: %s", err, out.tail(1))
			for _, want := range tc.wants {
				if !strings.Contains(text, want) {
					t.Errorf("the processor's output does not say %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, kafkaPassword) || strings.Contains(text, redisPassword) {
				t.Errorf("the processor's output shows a password:\n%s", text)
			}
		})
	}
}
