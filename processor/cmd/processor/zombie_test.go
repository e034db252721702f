package main

// A zombie: a processor that lost its partitions while it could not run
// (paused past its session timeout) and wakes up with a write in hand. It
// writes users blindly from its memory, so were it not fenced it would put
// back what another processor has since changed.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presence-im/presence/redisstore/redistest"
)

// A processor whose write to Redis is in flight is paused (SIGSTOP) past
// its session timeout; another takes its partitions and applies newer
// records of its users. When the paused one resumes, its write reaches
// Redis and is refused by the partition's fence: it counts the partition
// as moved ("fenced"), joins the group again, and Redis ends holding
// exactly what the records say. The write is held in flight by a proxy
// between the zombie and Redis, so that the test does not depend on when
// the pause falls.
func TestZombieIsFenced(t *testing.T) {
	bin := buildProcessor(t)
	cl := newKafka(t)
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	store := openStore(t, url, prefix)
	proxy := newRedisProxy(t, strings.TrimPrefix(url, "redis://"))
	gen := newStream(rand.New(rand.NewPCG(21, 5)))
	produce(t, cl, gen.heartbeats())
	zombie := startMember(t, bin, cl, "redis://"+proxy.addr(), prefix, "zombie")
	taker := startMember(t, bin, cl, url, prefix, "taker")
	owners := waitAssigned(t, cl, 2)
	if len(owners.sessions("zombie")) == 0 {
		t.Fatalf("the zombie-to-be owns no sessions partition: %v", owners)
	}
	stream := streamRecords(t, cl, gen)

	// Hold a write of the zombie's users in flight (a fenced
	// transaction, redisstore's runWatched: its EXEC), then pause it.
	waitFor(t, "the zombie to send a write of users", func() error {
		proxy.pauseAt("exec")
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if proxy.held("multi", "exec") { // a fenced transaction (redisstore runWatched)
				return nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		proxy.resume()
		return fmt.Errorf("no write held")
	})
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	t.Cleanup(func() { zombie.cmd.Process.Signal(syscall.SIGCONT) })

	// The taker gets every partition once the zombie's session times
	// out, and applies what follows, the zombie's users' records too.
	waitFor(t, "the taker to own every partition", func() error {
		if time.Since(paused) < failoverSession {
			return fmt.Errorf("the zombie's session has not timed out yet")
		}
		_, err := assigned(cl, 1)
		return err
	})
	time.Sleep(time.Second) // newer records of the zombie's users
	produced := stream.stop(t)
	waitApplied(t, cl, store)

	// The zombie wakes up and its write arrives: refused.
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	proxy.resume()
	waitAssigned(t, cl, 2)
	zombie.waitReady(t)
	taker.waitReady(t)
	waitApplied(t, cl, store)
	requireModel(t, store, gen.users, model(produced))
	if err := metricAtLeast(zombie.addr, `presence_processor_partitions_moved_total{how="fenced"}`, 1); err != nil {
		t.Errorf("the zombie's write was not refused: %v", err)
	}
}

// metricAtLeast checks that the processor at addr exports metric (a name
// with its labels, as /metrics prints it) at least want.
func metricAtLeast(addr, metric string, want float64) error {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, metric+" "); ok {
			var got float64
			if _, err := fmt.Sscan(v, &got); err != nil {
				return err
			}
			if got < want {
				return fmt.Errorf("%s is %g, want at least %g", metric, got, want)
			}
			return nil
		}
	}
	return fmt.Errorf("%s not exported", metric)
}

// redisProxy forwards connections to a Redis; paused, it holds what
// clients send (and notes it) until resumed, as a network that stalls.
type redisProxy struct {
	l      net.Listener
	target string

	mu      sync.Mutex
	cond    *sync.Cond
	paused  bool
	at      []byte       // while paused, only what holds it is held
	pending bytes.Buffer // what clients sent while paused
}

func newRedisProxy(t *testing.T, target string) *redisProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &redisProxy{l: l, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(func() {
		p.resume()
		l.Close()
	})
	return p
}

func (p *redisProxy) addr() string { return p.l.Addr().String() }

func (p *redisProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *redisProxy) forward(c net.Conn) {
	defer c.Close()
	r, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer r.Close()
	go func() { io.Copy(c, r); c.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			held := p.paused && bytes.Contains(bytes.ToLower(buf[:n]), p.at)
			if held {
				p.pending.Write(buf[:n])
			}
			for held && p.paused {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, err := r.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pauseAt holds the next writes of clients that hold at (in lower case),
// and lets the others through, until resume.
func (p *redisProxy) pauseAt(at string) {
	p.mu.Lock()
	p.paused, p.at = true, []byte(at)
	p.pending.Reset()
	p.mu.Unlock()
}

func (p *redisProxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// held says whether what clients sent while paused holds every one of
// parts, in lower case.
func (p *redisProxy) held(parts ...string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	sent := bytes.ToLower(p.pending.Bytes())
	return !slices.ContainsFunc(parts, func(s string) bool { return !bytes.Contains(sent, []byte(s)) })
}
