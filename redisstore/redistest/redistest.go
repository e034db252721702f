// Package redistest runs a real redis-server for tests. Each test binary
// starts its own server on a free loopback port (or uses the one named by
// PRESENCE_TEST_REDIS_URL) and each test gets its own key prefix, so tests
// never see each other's keys. A missing redis-server fails the test: it is
// never skipped.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process owned by a test binary.
type Server struct {
	Addr string
	dir  string
	cmd  *exec.Cmd
}

// Start starts a redis-server that keeps nothing on disk, listening on a
// free loopback port.
func Start() (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (make test installs it): %w", err)
	}
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		return nil, fmt.Errorf("making redis dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--maxmemory-policy", "noeviction")
	s.cmd.SysProcAttr = dieWithParent()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	if err := s.waitReady(10 * time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not ready after %s: %w", s.Addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	os.RemoveAll(s.dir)
}

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
