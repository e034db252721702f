// Package kafkaconn is how every Presence command reaches a secured Kafka:
// the flags that say how to authenticate (SASL PLAIN or SCRAM) and encrypt
// (TLS, with an optional CA and client certificate), and the franz-go
// options they make.
//
// Flags (each with its PRESENCE_... environment fallback, see service/cli):
//
//	--kafka-sasl-mechanism        PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)
//	--kafka-username              the SASL user
//	--kafka-password              the SASL password; prefer PRESENCE_KAFKA_PASSWORD
//	--kafka-tls                   dial the brokers with TLS
//	--kafka-tls-ca                PEM file of the CAs that sign the brokers' certificates
//	--kafka-tls-cert, -key        PEM files of a client certificate and its key
//	--kafka-tls-server-name       name the brokers' certificates must hold
//	--kafka-tls-insecure-skip-verify  accept any broker certificate (tests only)
//
// A command registers the flags (Register), turns them into kgo options
// once parsed (Opts: inconsistent flags are an error), and calls Check at
// start, so that a wrong credential or certificate stops it at once with
// an error saying how it connected, rather than franz-go retrying quietly.
// Files are read once, at start. The password is never logged nor put in
// an error message.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// CheckTimeout bounds Check.
const CheckTimeout = 15 * time.Second

// The SASL mechanisms --kafka-sasl-mechanism takes.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Flags are the Kafka connection settings of a command. The zero value
// connects in plaintext without authentication.
type Flags struct {
	Mechanism string // --kafka-sasl-mechanism
	Username  string // --kafka-username
	// Password is the SASL password. It is never printed: not by
	// LogValue, not in errors, not as a default in --help.
	Password           string
	TLS                bool   // --kafka-tls
	CAFile             string // --kafka-tls-ca
	CertFile, KeyFile  string // --kafka-tls-cert, --kafka-tls-key
	ServerName         string // --kafka-tls-server-name
	InsecureSkipVerify bool   // --kafka-tls-insecure-skip-verify
}

// Register adds the Kafka connection flags to fs and returns the Flags
// they fill once fs is parsed.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Mechanism, "kafka-sasl-mechanism", "", "SASL mechanism to authenticate to Kafka with: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none)")
	fs.StringVar(&f.Username, "kafka-username", "", "SASL user name (with --kafka-sasl-mechanism)")
	fs.StringVar(&f.Password, "kafka-password", "", "SASL password; set it through the environment rather than the command line, where other users of the host can read it")
	fs.BoolVar(&f.TLS, "kafka-tls", false, "connect to Kafka over TLS")
	fs.StringVar(&f.CAFile, "kafka-tls-ca", "", "PEM file of the CA certificates that sign the brokers' (default: the system's)")
	fs.StringVar(&f.CertFile, "kafka-tls-cert", "", "PEM file of a client certificate to present (with --kafka-tls-key)")
	fs.StringVar(&f.KeyFile, "kafka-tls-key", "", "PEM file of the client certificate's private key")
	fs.StringVar(&f.ServerName, "kafka-tls-server-name", "", "name the brokers' certificates must hold (default: the host dialed)")
	fs.BoolVar(&f.InsecureSkipVerify, "kafka-tls-insecure-skip-verify", false, "accept any broker certificate: for tests only, it allows anyone on the path to read and change the traffic")
	return f
}

// IsZero says whether no flag was set: a plaintext connection without
// authentication.
func (f *Flags) IsZero() bool { return *f == Flags{} }

// Opts checks the flags and returns the franz-go options they make: none
// for the zero Flags. It warns on log (when not nil) about settings that
// expose the password or the traffic.
func (f *Flags) Opts(log *slog.Logger) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	mech, err := f.mechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	tc, err := f.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if log != nil {
		if mech != nil && mech.Name() == Plain && tc == nil {
			log.Warn("kafka SASL PLAIN without TLS: the password crosses the network in clear; add --kafka-tls or use SCRAM")
		}
		if tc != nil && tc.InsecureSkipVerify {
			log.Warn("--kafka-tls-insecure-skip-verify: any broker certificate is accepted; use it for tests only")
		}
	}
	return opts, nil
}

// LogValue describes the flags without the password.
func (f *Flags) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("sasl_mechanism", f.Mechanism), slog.String("username", f.Username),
		slog.Bool("password_set", f.Password != ""), slog.Bool("tls", f.TLS),
		slog.String("tls_ca", f.CAFile), slog.String("tls_cert", f.CertFile),
		slog.String("tls_server_name", f.ServerName), slog.Bool("tls_insecure_skip_verify", f.InsecureSkipVerify))
}

// mechanism is the SASL mechanism the flags ask for, nil for none.
func (f *Flags) mechanism() (sasl.Mechanism, error) {
	if f.Mechanism == "" {
		if f.Username != "" || f.Password != "" {
			return nil, errors.New("--kafka-username and --kafka-password need --kafka-sasl-mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
		return nil, nil
	}
	switch {
	case f.Username == "":
		return nil, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-username", f.Mechanism)
	case f.Password == "":
		return nil, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-password (or PRESENCE_KAFKA_PASSWORD)", f.Mechanism)
	}
	switch strings.ToUpper(f.Mechanism) {
	case Plain:
		return plain.Auth{User: f.Username, Pass: f.Password}.AsMechanism(), nil
	case ScramSHA256:
		return scram.Auth{User: f.Username, Pass: f.Password}.AsSha256Mechanism(), nil
	case ScramSHA512:
		return scram.Auth{User: f.Username, Pass: f.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("--kafka-sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", f.Mechanism)
}

// tlsConfig is the TLS configuration the flags ask for, nil for none.
func (f *Flags) tlsConfig() (*tls.Config, error) {
	if !f.TLS {
		for _, s := range []struct {
			name string
			set  bool
		}{
			{"--kafka-tls-ca", f.CAFile != ""}, {"--kafka-tls-cert", f.CertFile != ""}, {"--kafka-tls-key", f.KeyFile != ""},
			{"--kafka-tls-server-name", f.ServerName != ""}, {"--kafka-tls-insecure-skip-verify", f.InsecureSkipVerify},
		} {
			if s.set {
				return nil, fmt.Errorf("%s needs --kafka-tls", s.name)
			}
		}
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading --kafka-tls-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--kafka-tls-ca %s holds no PEM certificate", f.CAFile)
		}
	}
	switch {
	case f.CertFile != "" && f.KeyFile == "":
		return nil, errors.New("--kafka-tls-cert needs --kafka-tls-key")
	case f.CertFile == "" && f.KeyFile != "":
		return nil, errors.New("--kafka-tls-key needs --kafka-tls-cert")
	case f.CertFile != "":
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading --kafka-tls-cert and --kafka-tls-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Check asks one of brokers for the cluster's brokers with opts (what
// Opts returned for these flags), within ctx and CheckTimeout, and returns why it could not: Kafka unreachable, a
// certificate it does not trust or that does not trust it, credentials
// refused. Franz-go retries such failures quietly while producing or
// consuming; commands call Check at start so that a wrong setting fails
// them at once, with an error that says what was tried.
func (f *Flags) Check(ctx context.Context, brokers []string, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		hint := ""
		if f.Mechanism != "" && errors.Is(err, io.EOF) {
			hint = "; a broker closes the connection when it refuses the credentials"
		}
		return fmt.Errorf("connecting to kafka %s with %s: %w%s", strings.Join(brokers, ","), f.describe(), err, hint)
	}
	return nil
}

// describe says how the flags connect, without the password.
func (f *Flags) describe() string {
	how := "plaintext"
	if f.TLS {
		how = "TLS"
	}
	if f.Mechanism == "" {
		return how + ", no SASL"
	}
	return fmt.Sprintf("%s, SASL %s as %q", how, strings.ToUpper(f.Mechanism), f.Username)
}
