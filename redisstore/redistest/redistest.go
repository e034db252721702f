// Package redistest runs a real redis-server, or a real Redis Cluster of
// three (StartCluster, SharedCluster), for tests. Each test binary
// starts its own server on a free loopback port (or uses the one named by
// PRESENCE_TEST_REDIS_URL) and each test gets its own key prefix, so tests
// never see each other's keys. A missing redis-server fails the test: it is
// never skipped.
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process owned by a test binary, or by one test
// (see NewServer).
type Server struct {
	Addr string
	bin  string
	dir  string
	args []string
	opts Options
	cmd  *exec.Cmd
	// log holds what the server wrote, for the error when it does not
	// start.
	log output
}

// output is what a process writes, kept for its error.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// tail is the last 2 KB written.
func (o *output) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.buf.Bytes()
	return string(b[max(0, len(b)-2048):])
}

// Options configure a Server. The zero value keeps nothing on disk.
type Options struct {
	// AppendOnly logs every write to an append-only file, synced to disk
	// before Redis answers (appendonly yes, appendfsync always), so that a
	// server killed and restarted holds every write it acknowledged.
	// Without it, a restarted server is empty.
	AppendOnly bool
	// Password is the password of the default user (requirepass): a
	// client that gives no password or a wrong one is refused.
	Password string
	// Users are ACL users, by name, with their passwords, each allowed
	// every command on every key.
	Users map[string]string
	// TLS, when set, makes the server serve TLS only, with these files.
	TLS *TLS
	// cluster makes the server a Redis Cluster node with no slots yet
	// (see StartCluster).
	cluster bool
}

// TLS are the PEM files of a server that serves TLS. Clients need not
// present a certificate.
type TLS struct {
	CertFile, KeyFile string
	// CAFile holds the CA that signed the certificate; the server's own
	// client trusts it.
	CAFile string
}

// Start starts a redis-server that keeps nothing on disk, listening on a
// free loopback port.
func Start() (*Server, error) { return StartWith(Options{}) }

// StartWith starts a redis-server configured by opts, listening on a free
// loopback port, with a directory of its own.
func StartWith(opts Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (make test installs it): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		return nil, fmt.Errorf("making redis dir: %w", err)
	}
	persistence := []string{"--appendonly", "no"}
	if opts.AppendOnly {
		persistence = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--dir", dir, "--maxmemory-policy", "noeviction"}, persistence...)
	if opts.Password != "" {
		args = append(args, "--requirepass", opts.Password)
	}
	for _, name := range slices.Sorted(maps.Keys(opts.Users)) {
		args = append(args, "--user", name, "on", ">"+opts.Users[name], "~*", "&*", "+@all")
	}
	if opts.cluster {
		// The bus port is chosen too: port+10000, the default, may be
		// taken or past 65535.
		bus, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus))
	}
	if opts.TLS != nil {
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cert-file", opts.TLS.CertFile,
			"--tls-key-file", opts.TLS.KeyFile, "--tls-ca-cert-file", opts.TLS.CAFile, "--tls-auth-clients", "no")
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bin: bin, dir: dir, args: args, opts: opts}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// NewServer starts a redis-server of the test's own, beside the test
// binary's shared one, for a test that kills and restarts it. It is
// stopped when the test ends.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := StartWith(opts)
	if err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// start runs the server's process and waits until it answers.
func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stderr, cmd.Stdout = &s.log, &s.log
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	s.cmd = cmd
	if err := s.waitReady(10 * time.Second); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// waitReady waits until the server answers PING, its data loaded.
func (s *Server) waitReady(limit time.Duration) error {
	opts := &redis.Options{Addr: s.Addr, Password: s.opts.Password, MaxRetries: -1, DialTimeout: time.Second}
	if s.opts.TLS != nil {
		ca, err := os.ReadFile(s.opts.TLS.CAFile)
		if err != nil {
			return fmt.Errorf("reading the redis test CA: %w", err)
		}
		opts.TLSConfig = &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}
		opts.TLSConfig.RootCAs.AppendCertsFromPEM(ca)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not ready after %s: %w; it wrote: %s", s.Addr, limit, err, s.log.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it
// to exit. Its port and directory stay for Restart.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts a killed server again, on the same port and directory,
// and waits until it answers: it holds what it had on disk (every
// acknowledged write with AppendOnly, nothing otherwise).
func (s *Server) Restart() error {
	if s.cmd != nil {
		return fmt.Errorf("restarting redis-server on %s: it is running", s.Addr)
	}
	return s.start()
}

// URL is the URL of the server: redis://, or rediss:// when it serves
// TLS, with the default user's password when it has one. Clients of a TLS
// server must trust the CA of its TLS files (redisstore.ParseURL cannot
// know it).
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr}
	if s.opts.TLS != nil {
		u.Scheme = "rediss"
	}
	if s.opts.Password != "" {
		u.User = url.UserPassword("", s.opts.Password)
	}
	return u.String()
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	s.Kill()
	os.RemoveAll(s.dir)
}

// DieWithTest makes cmd, not yet started, be killed when the test binary
// dies (on Linux), so that a test that crashes leaves no process behind.
func DieWithTest(cmd *exec.Cmd) { cmd.SysProcAttr = dieWithParent() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var shared struct {
	once   sync.Once
	server *Server
	url    string
	err    error
}

// URL returns the URL of the test binary's Redis, starting it on first use.
func URL(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		if url := os.Getenv("PRESENCE_TEST_REDIS_URL"); url != "" {
			shared.url = url
			return
		}
		shared.server, shared.err = Start()
		if shared.err == nil {
			shared.url = shared.server.URL()
		}
	})
	if shared.err != nil {
		t.Fatalf("redis for tests: %v", shared.err)
	}
	return shared.url
}

// Main runs the tests of a package and stops its Redis afterwards. Call it
// from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.server != nil {
		shared.server.Stop()
	}
	if sharedCluster.cluster != nil {
		sharedCluster.cluster.Stop()
	}
	os.Exit(code)
}

// Client returns a client of the test binary's Redis, closed when the test
// ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatalf("parsing redis url: %v", err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// Flush empties the Redis database at url, for a test that must start
// from an empty database rather than a prefix of its own.
func Flush(t testing.TB, url string) {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("parsing redis url: %v", err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("flushing %s: %v", url, err)
	}
}

// Prefix returns a key prefix no other test uses.
func Prefix(t testing.TB) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "test-" + hex.EncodeToString(b)
}
