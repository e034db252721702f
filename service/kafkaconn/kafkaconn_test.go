package kafkaconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/service/cli"
	"github.com/presence-im/presence/service/testcert"
)

const (
	topic    = "kafkaconn-test"
	password = "s3cret-Pa55word"
)

// parse registers the flags on a new flag set and parses args and env.
func parse(t *testing.T, args []string, env map[string]string) (*Flags, *flag.FlagSet) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := Register(fs)
	if err := cli.Parse(fs, args, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return f, fs
}

func TestFlagErrors(t *testing.T) {
	ca := testcert.WriteFile(t, "ca.pem", testcert.NewCA(t).PEM)
	notPEM := testcert.WriteFile(t, "not.pem", []byte("not a certificate "+password))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown mechanism", []string{"--kafka-sasl-mechanism", "GSSAPI", "--kafka-username", "u", "--kafka-password", password}, `"GSSAPI": want PLAIN`},
		{"mechanism without username", []string{"--kafka-sasl-mechanism", "PLAIN", "--kafka-password", password}, "needs --kafka-username"},
		{"mechanism without password", []string{"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-username", "u"}, "needs --kafka-password"},
		{"password without mechanism", []string{"--kafka-username", "u", "--kafka-password", password}, "need --kafka-sasl-mechanism"},
		{"ca without tls", []string{"--kafka-tls-ca", ca}, "--kafka-tls-ca needs --kafka-tls"},
		{"skip verify without tls", []string{"--kafka-tls-insecure-skip-verify"}, "needs --kafka-tls"},
		{"unreadable ca", []string{"--kafka-tls", "--kafka-tls-ca", ca + ".missing"}, "reading --kafka-tls-ca"},
		{"ca without certificate", []string{"--kafka-tls", "--kafka-tls-ca", notPEM}, "holds no PEM certificate"},
		{"cert without key", []string{"--kafka-tls", "--kafka-tls-cert", ca}, "--kafka-tls-cert needs --kafka-tls-key"},
		{"key without cert", []string{"--kafka-tls", "--kafka-tls-key", ca}, "--kafka-tls-key needs --kafka-tls-cert"},
		{"cert not matching key", []string{"--kafka-tls", "--kafka-tls-cert", ca, "--kafka-tls-key", notPEM}, "loading --kafka-tls-cert and --kafka-tls-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := parse(t, tc.args, nil)
			_, err := f.Opts(nil)
			if err == nil {
				t.Fatalf("%q accepted", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
}

func TestNoFlagsNoOpts(t *testing.T) {
	f, _ := parse(t, nil, nil)
	opts, err := f.Opts(nil)
	if err != nil || len(opts) != 0 {
		t.Fatalf("no flags made %d options, err %v; want none", len(opts), err)
	}
}

// TestPasswordNeverShown checks that a password from the environment
// appears neither in --help nor in the flags' log value, and that the
// warnings about PLAIN without TLS are given.
func TestPasswordNeverShown(t *testing.T) {
	f, fs := parse(t, []string{"--kafka-sasl-mechanism", "PLAIN", "--kafka-username", "svc"},
		map[string]string{"PRESENCE_KAFKA_PASSWORD": password})
	if f.Password != password {
		t.Fatalf("PRESENCE_KAFKA_PASSWORD was not read: got %q", f.Password)
	}
	var help bytes.Buffer
	cli.Usage(fs, "t")
	fs.SetOutput(&help)
	fs.Usage()
	if !strings.Contains(help.String(), "--kafka-password (PRESENCE_KAFKA_PASSWORD)") {
		t.Errorf("--help does not list --kafka-password:\n%s", help.String())
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := f.Opts(log); err != nil {
		t.Fatal(err)
	}
	log.Info("starting", "kafka", f)
	if !strings.Contains(logs.String(), "password crosses the network in clear") {
		t.Errorf("no warning about PLAIN without TLS in:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "kafka.password_set=true") {
		t.Errorf("the log value does not say the password is set:\n%s", logs.String())
	}
	for what, out := range map[string]string{"--help": help.String(), "the logs": logs.String()} {
		if strings.Contains(out, password) {
			t.Errorf("%s show the password:\n%s", what, out)
		}
	}
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{Plain, ScramSHA256, ScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic),
				kfake.EnableSASL(), kfake.Superuser(mech, "presence", password))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			brokers := c.ListenAddrs()

			f, _ := parse(t, []string{"--kafka-sasl-mechanism", strings.ToLower(mech), "--kafka-username", "presence"},
				map[string]string{"PRESENCE_KAFKA_PASSWORD": password})
			if err := check(brokers, f); err != nil {
				t.Fatalf("Check with the right password: %v", err)
			}
			roundTrip(t, brokers, mustOpts(t, f))

			t.Run("wrong password", func(t *testing.T) {
				wrong := "not-" + password
				f, _ := parse(t, []string{"--kafka-sasl-mechanism", mech, "--kafka-username", "presence", "--kafka-password", wrong}, nil)
				err := check(brokers, f)
				if err == nil {
					t.Fatal("kafka accepted a wrong password")
				}
				t.Logf("error: %v", err)
				if want := fmt.Sprintf("SASL %s as %q", mech, "presence"); !strings.Contains(err.Error(), want) ||
					!strings.Contains(err.Error(), "refuses the credentials") {
					t.Errorf("error %q does not say it authenticated with %s, nor that kafka may refuse the credentials", err, want)
				}
				if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), password) {
					t.Errorf("error %q holds a password", err)
				}
			})
			t.Run("no credentials", func(t *testing.T) {
				f, _ := parse(t, nil, nil)
				if err := check(brokers, f); err == nil {
					t.Fatal("kafka accepted a client without credentials")
				}
			})
		})
	}
}

func TestTLS(t *testing.T) {
	ca := testcert.NewCA(t)
	server := ca.Server(t, "kafka.test")
	clientCA := testcert.NewCA(t)
	client := clientCA.Client(t, "presence-client")
	stranger := ca.Client(t, "presence-client")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{server.Pair}, MinVersion: tls.VersionTLS12,
		ClientCAs: clientCA.Pool(), ClientAuth: tls.VerifyClientCertIfGiven,
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	caFile := testcert.WriteFile(t, "ca.pem", ca.PEM)
	base := []string{"--kafka-tls", "--kafka-tls-ca", caFile, "--kafka-tls-server-name", "kafka.test"}

	t.Run("right ca", func(t *testing.T) {
		f, _ := parse(t, base, nil)
		if err := check(brokers, f); err != nil {
			t.Fatalf("Check: %v", err)
		}
		roundTrip(t, brokers, mustOpts(t, f))
	})
	t.Run("client certificate", func(t *testing.T) {
		f, _ := parse(t, append(base, "--kafka-tls-cert", testcert.WriteFile(t, "cert.pem", client.PEM),
			"--kafka-tls-key", testcert.WriteFile(t, "key.pem", client.KeyPEM)), nil)
		roundTrip(t, brokers, mustOpts(t, f))
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"wrong ca", []string{"--kafka-tls", "--kafka-tls-ca", testcert.WriteFile(t, "other.pem", testcert.NewCA(t).PEM), "--kafka-tls-server-name", "kafka.test"}},
		{"wrong server name", []string{"--kafka-tls", "--kafka-tls-ca", caFile, "--kafka-tls-server-name", "other.test"}},
		{"system cas", []string{"--kafka-tls", "--kafka-tls-server-name", "kafka.test"}},
		{"client certificate of another ca", append(base, "--kafka-tls-cert", testcert.WriteFile(t, "bad-cert.pem", stranger.PEM),
			"--kafka-tls-key", testcert.WriteFile(t, "bad-key.pem", stranger.KeyPEM))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := parse(t, tc.args, nil)
			err := check(brokers, f)
			if err == nil {
				t.Fatal("the connection was accepted")
			}
			if !strings.Contains(err.Error(), "with TLS") || !strings.Contains(err.Error(), "tls: ") {
				t.Errorf("error %q does not say TLS failed", err)
			}
		})
	}
	t.Run("plaintext", func(t *testing.T) {
		f, _ := parse(t, nil, nil)
		if err := check(brokers, f); err == nil {
			t.Fatal("a plaintext connection was accepted")
		}
	})
}

func TestSASLOverTLS(t *testing.T) {
	ca := testcert.NewCA(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic), kfake.EnableSASL(),
		kfake.Superuser(ScramSHA512, "presence", password),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.Server(t, "kafka.test").Pair}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	f, _ := parse(t, []string{"--kafka-sasl-mechanism", ScramSHA512, "--kafka-username", "presence",
		"--kafka-tls", "--kafka-tls-ca", testcert.WriteFile(t, "ca.pem", ca.PEM), "--kafka-tls-server-name", "kafka.test"},
		map[string]string{"PRESENCE_KAFKA_PASSWORD": password})
	roundTrip(t, c.ListenAddrs(), mustOpts(t, f))
}

func mustOpts(t *testing.T, f *Flags) []kgo.Opt {
	t.Helper()
	opts, err := f.Opts(nil)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// check runs f.Check with f's options, giving up after 10s.
func check(brokers []string, f *Flags) error {
	opts, err := f.Opts(nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.Check(ctx, brokers, opts)
}

// roundTrip writes a record with opts and reads it back with opts.
func roundTrip(t *testing.T, brokers []string, opts []kgo.Opt) {
	t.Helper()
	value := fmt.Sprintf("hello %d", time.Now().UnixNano())
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("the record written was not read back: %v", err)
		}
		fetches.EachError(func(_ string, _ int32, err error) { t.Fatalf("consuming: %v", err) })
		found := false
		fetches.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == value })
		if found {
			return
		}
	}
}
