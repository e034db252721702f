package main

// The supervisor: runs the processor binary as a service manager would,
// starting it again whenever it exits.

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore/redistest"
)

// buildProcessor builds the processor binary and returns its path.
func buildProcessor(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "processor")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the processor: %v\n%s", err, out)
	}
	return bin
}

// supervisor runs the processor binary as a service manager would: it
// starts it again whenever it exits, whatever the cause, and tells the
// exits the test caused (kill) from those it did not.
type supervisor struct {
	bin  string
	args []string
	quit chan struct{} // closed when the supervisor stops
	done chan struct{} // closed when its loop has returned

	mu        sync.Mutex
	cmd       *exec.Cmd
	started   time.Time
	addr      string        // the running process's /readyz host:port
	exited    chan struct{} // closed when the running process exits
	runs      []*logs       // stderr of each run
	killedRun int           // the run the test killed, counted from 1
	stopping  bool
	lastErr   error    // how the last run ended
	selfExits []string // the exits the test did not cause, with their last log lines
	kills     int
}

func supervise(t *testing.T, bin string, cl *kgo.Client, redisURL, prefix string) *supervisor {
	t.Helper()
	s := &supervisor{
		bin: bin, quit: make(chan struct{}), done: make(chan struct{}),
		args: []string{"--brokers", strings.Join(cl.OptValue(kgo.SeedBrokers).([]string), ","),
			"--redis-url", redisURL, "--key-prefix", prefix, "--partitions", fmt.Sprint(partitions)},
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	go s.loop()
	t.Cleanup(func() { s.shutdown(t) })
	return s
}

// start starts a run of the binary. Each run has its own consumer group:
// the processor starts every partition at its checkpoint in Redis, not at
// the group's offsets, and a new member of the old group would wait for
// the killed one's session to time out (45s) before being assigned.
func (s *supervisor) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return errStopping
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	run := len(s.runs) + 1
	cmd := exec.Command(s.bin, append(slices.Clone(s.args), "--addr", addr, "--group", fmt.Sprintf("faults-%d", run))...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PRESENCE_") })
	out := &logs{}
	cmd.Stderr = out
	redistest.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the processor: %w", err)
	}
	s.cmd, s.started, s.addr, s.exited = cmd, time.Now(), addr, make(chan struct{})
	s.runs = append(s.runs, out)
	return nil
}

var errStopping = errors.New("the supervisor is stopping")

// loop waits for each run to end and starts the next. A run that ends by
// itself is followed by a pause that grows while runs keep failing at
// once, as a service manager would do.
func (s *supervisor) loop() {
	defer close(s.done)
	pause := 50 * time.Millisecond
	for {
		s.mu.Lock()
		cmd, exited, run, started := s.cmd, s.exited, len(s.runs), s.started
		s.mu.Unlock()
		err := cmd.Wait()
		s.mu.Lock()
		ours := s.killedRun == run || s.stopping
		if !ours {
			s.selfExits = append(s.selfExits, fmt.Sprintf("run %d (%v): %s", run, err, s.runs[run-1].tail(3)))
		}
		s.lastErr = err
		close(exited)
		s.mu.Unlock()
		if !ours {
			pause = min(2*pause, 2*time.Second)
			if time.Since(started) > 5*time.Second {
				pause = 50 * time.Millisecond
			}
			select {
			case <-s.quit:
				return
			case <-time.After(pause):
			}
		}
		if err := s.start(); err != nil {
			if !errors.Is(err, errStopping) {
				s.mu.Lock()
				s.selfExits = append(s.selfExits, fmt.Sprintf("could not start run %d: %v", run+1, err))
				s.mu.Unlock()
			}
			return
		}
	}
}

// kill kills the running process with SIGKILL and waits for it to exit;
// the supervisor starts it again.
func (s *supervisor) kill(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.killedRun = len(s.runs)
	s.mu.Unlock()
	if cmd.Process.Kill() == nil {
		s.mu.Lock()
		s.kills++
		s.mu.Unlock()
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the processor did not exit within 10s of SIGKILL")
	}
}

// requireCleanStop stops the processor with SIGTERM: it must exit 0.
func (s *supervisor) requireCleanStop(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	s.stopping = true
	close(s.quit)
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("the processor had exited by itself before SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the processor did not stop within 30s of SIGTERM")
	}
	<-exited
	if s.lastErr != nil {
		t.Fatalf("the processor stopped by SIGTERM exited with %v", s.lastErr)
	}
}

// shutdown kills what still runs, and reports the runs; the logs of every
// run when the test failed.
func (s *supervisor) shutdown(t *testing.T) {
	s.mu.Lock()
	stopped := s.stopping
	s.stopping = true
	if !stopped {
		close(s.quit)
	}
	cmd := s.cmd
	s.mu.Unlock()
	_ = cmd.Process.Kill()
	<-s.done
	t.Logf("processor: %d runs, killed %d times, exited by itself %d times", len(s.runs), s.kills, len(s.selfExits))
	for _, e := range s.selfExits {
		t.Logf("exited by itself: %s", e)
	}
	if t.Failed() {
		for i, l := range s.runs {
			t.Logf("stderr of run %d:\n%s", i+1, l.tail(200))
		}
	}
}

// readyz answers GET /readyz of the running process, and says which run
// answered.
func (s *supervisor) readyz() (run, status int, err error) {
	s.mu.Lock()
	addr, run := s.addr, len(s.runs)
	s.mu.Unlock()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return run, 0, err
	}
	resp.Body.Close()
	return run, resp.StatusCode, nil
}

// waitReady waits until the processor says it is ready.
func (s *supervisor) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, "/readyz to answer 200", func() error {
		if _, status, err := s.readyz(); err != nil || status != http.StatusOK {
			return cmp.Or(err, fmt.Errorf("status %d", status))
		}
		return nil
	})
}

// waitNotReady waits until the processor running now answers that it is
// not ready, or exits (then its restarts do not answer, or answer not
// ready).
func (s *supervisor) waitNotReady(t *testing.T) {
	t.Helper()
	run, _, _ := s.readyz()
	waitFor(t, "/readyz to answer an error", func() error {
		now, status, err := s.readyz()
		if status >= 400 || now != run {
			return nil
		}
		return cmp.Or(err, fmt.Errorf("run %d answers %d", now, status))
	})
}

// logs is a process's stderr.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// tail returns the last n lines.
func (l *logs) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
