package main

// Failover of the processor binaries in one consumer group: a processor
// killed with SIGKILL while records stream must not stall the partitions
// of the others, its own partitions are taken over within about the
// session timeout, and one restarted with the same instance id takes its
// partitions back at once. Probes (a connect of a new user on every
// partition, every probeEvery) measure how long each partition takes to
// show a new connect.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

const (
	// failoverSession is the session timeout of the test's processors.
	failoverSession = 8 * time.Second
	probeEvery      = 100 * time.Millisecond
	failoverGroup   = "failover"
)

// Three processors share the partitions. One is killed and restarted at
// once with its instance id: it takes its partitions back within half the
// session timeout. Another is killed for good, and a fourth joins
// meanwhile: the dead one's partitions are taken over after about the
// session timeout. A third is stopped with SIGTERM: it leaves the group,
// and its partitions are taken over at once. Through all three, every new
// connect on a partition of a processor that kept running is visible
// within half the session timeout, and in the end Redis holds exactly what
// the records say.
func TestFailover(t *testing.T) {
	bin := buildProcessor(t)
	cl := newKafka(t)
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	store := openStore(t, url, prefix)
	gen := newStream(rand.New(rand.NewPCG(13, 2)))
	produce(t, cl, gen.heartbeats())
	members := make([]*member, 3)
	for i := range members {
		members[i] = startMember(t, bin, cl, url, prefix, fmt.Sprintf("processor-%d", i))
	}
	owners := waitAssigned(t, cl, 3)

	pr := newProber(t, cl, store)
	stream := streamRecords(t, cl, gen)
	pr.waitAllVisible(t, time.Now())

	// Killed and restarted with the same instance id.
	victim := ownerOfSessions(t, owners, members)
	killed := time.Now()
	members[victim].kill(t)
	members[victim] = startMember(t, bin, cl, url, prefix, members[victim].id)
	pr.waitAllVisible(t, time.Now())
	took := pr.worst(killed, time.Now())
	back := owners.sessions(members[victim].id)
	t.Logf("%s killed and restarted: its sessions partitions %v applied again after %s", members[victim].id, back, maxOf(took, back))
	t.Logf("partitions of the others: longest wait for a new connect %s", maxOf(took, owners.others(members[victim].id)))
	requireWithin(t, took, owners.others(members[victim].id), failoverSession/2, "a processor that kept running")
	requireWithin(t, took, back, failoverSession/2, "a processor restarted with its instance id")

	// Killed for good, and a new processor joins while the group waits
	// for the dead one: the rebalance it starts lasts until the dead
	// one's session times out.
	owners = waitAssigned(t, cl, 3)
	dead := ownerOfSessions(t, owners, members, members[victim].id)
	killed = time.Now()
	members[dead].kill(t)
	members = append(members, startMember(t, bin, cl, url, prefix, "processor-3"))
	pr.waitAllVisible(t, time.Now())
	took = pr.worst(killed, time.Now())
	orphans := owners.sessions(members[dead].id)
	t.Logf("%s killed: its sessions partitions %v taken over after %s (session timeout %s)", members[dead].id, orphans, maxOf(took, orphans), failoverSession)
	t.Logf("partitions of the others: longest wait for a new connect %s", maxOf(took, owners.others(members[dead].id)))
	requireWithin(t, took, owners.others(members[dead].id), failoverSession/2, "a processor that kept running")
	requireWithin(t, took, orphans, 3*failoverSession, "a dead processor")

	// Stopped with SIGTERM: it leaves the group, so its partitions do
	// not wait for its session to time out.
	owners = waitAssigned(t, cl, 3)
	quit := ownerOfSessions(t, owners, members, members[dead].id)
	stopped := time.Now()
	members[quit].stop(t)
	pr.waitAllVisible(t, time.Now())
	took = pr.worst(stopped, time.Now())
	handed := owners.sessions(members[quit].id)
	t.Logf("%s stopped: its sessions partitions %v taken over after %s", members[quit].id, handed, maxOf(took, handed))
	t.Logf("partitions of the others: longest wait for a new connect %s", maxOf(took, owners.others(members[quit].id)))
	requireWithin(t, took, owners.others(members[quit].id), failoverSession/2, "a processor that kept running")
	requireWithin(t, took, handed, failoverSession/2, "a processor stopped")

	produced := append(stream.stop(t), pr.stop(t)...)
	waitApplied(t, cl, store)
	requireModel(t, store, append(slices.Clone(gen.users), pr.users()...), model(produced))
	for i, m := range members {
		if i != dead && i != quit {
			m.waitReady(t)
		}
	}
}

// member is one processor binary in the group, with its instance id.
type member struct {
	id     string
	cmd    *exec.Cmd
	addr   string
	out    *logs
	exited chan struct{}
}

func startMember(t *testing.T, bin string, cl *kgo.Client, redisURL, prefix, id string) *member {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &member{id: id, addr: l.Addr().String(), out: &logs{}, exited: make(chan struct{})}
	l.Close()
	m.cmd = exec.Command(bin, "--brokers", strings.Join(cl.OptValue(kgo.SeedBrokers).([]string), ","),
		"--redis-url", redisURL, "--key-prefix", prefix, "--partitions", fmt.Sprint(partitions), "--addr", m.addr,
		"--group", failoverGroup, "--instance-id", id, "--session-timeout", failoverSession.String())
	m.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PRESENCE_") })
	m.cmd.Stderr = m.out
	redistest.DieWithTest(m.cmd)
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", id, err)
	}
	go func() { m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(func() {
		m.cmd.Process.Kill()
		<-m.exited
		if t.Failed() {
			t.Logf("stderr of %s (pid %d):\n%s", id, m.cmd.Process.Pid, m.out.tail(60))
		}
	})
	return m
}

// stop stops the processor with SIGTERM: it must exit 0.
func (m *member) stop(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s had exited before it was stopped: %v", m.id, err)
	}
	<-m.exited
	if state := m.cmd.ProcessState; !state.Success() {
		t.Fatalf("%s stopped by SIGTERM exited with %v", m.id, state)
	}
}

// kill kills the processor with SIGKILL: it leaves nothing behind, not
// even its group membership.
func (m *member) kill(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatalf("%s had exited before it was killed: %v", m.id, err)
	}
	<-m.exited
}

func (m *member) waitReady(t *testing.T) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	waitFor(t, m.id+" to be ready", func() error {
		resp, err := c.Get("http://" + m.addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answers %d", resp.StatusCode)
		}
		return nil
	})
}

// assignment says which instance id owns each partition of the sessions
// topic.
type assignment map[int32]string

// sessions returns the sessions partitions id owns.
func (a assignment) sessions(id string) []int32 {
	var out []int32
	for p, owner := range a {
		if owner == id {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// others returns the sessions partitions id does not own.
func (a assignment) others(id string) []int32 {
	var out []int32
	for p, owner := range a {
		if owner != id {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// waitAssigned waits until the group is stable with n members and every
// partition of every consumed topic has an owner, and returns the owners
// of the sessions partitions.
func waitAssigned(t *testing.T, cl *kgo.Client, n int) assignment {
	t.Helper()
	var owners assignment
	waitFor(t, fmt.Sprintf("the group to assign every partition to %d members", n), func() (err error) {
		owners, err = assigned(cl, n)
		return err
	})
	t.Logf("sessions partitions by owner: %v", owners)
	return owners
}

// assigned returns the owners of the sessions partitions if the group is
// stable with n members and every partition of every consumed topic has
// an owner.
func assigned(cl *kgo.Client, n int) (assignment, error) {
	described, err := kadm.NewClient(cl).DescribeGroups(context.Background(), failoverGroup)
	if err != nil {
		return nil, err
	}
	g := described[failoverGroup]
	if g.State != "Stable" || len(g.Members) != n {
		return nil, fmt.Errorf("group %s with %d members", g.State, len(g.Members))
	}
	owners := assignment{}
	count := 0
	for _, m := range g.Members {
		c, ok := m.Assigned.AsConsumer()
		if !ok || m.InstanceID == nil {
			return nil, fmt.Errorf("member %s: no consumer assignment or instance id", m.MemberID)
		}
		for _, tp := range c.Topics {
			count += len(tp.Partitions)
			if tp.Topic == schemas.SessionsTopic {
				for _, p := range tp.Partitions {
					owners[p] = *m.InstanceID
				}
			}
		}
	}
	if want := len(schemas.StateTopics) * partitions; count != want {
		return nil, fmt.Errorf("%d of %d partitions assigned", count, want)
	}
	return owners, nil
}

// ownerOfSessions returns the index in members of a member that owns a
// sessions partition while another member owns one too, not one of
// except.
func ownerOfSessions(t *testing.T, owners assignment, members []*member, except ...string) int {
	t.Helper()
	ids := slices.Compact(slices.Sorted(maps.Values(owners)))
	for i, m := range members {
		if len(ids) > 1 && slices.Contains(ids, m.id) && !slices.Contains(except, m.id) {
			return i
		}
	}
	t.Fatalf("no two members own sessions partitions: %v", owners)
	return 0
}

// requireWithin fails unless every probe of partitions was visible within
// bound.
func requireWithin(t *testing.T, took map[int32]time.Duration, partitions []int32, bound time.Duration, whose string) {
	t.Helper()
	for _, p := range partitions {
		if took[p] > bound {
			t.Errorf("partition %d of %s: a new connect took %s to be visible, more than %s", p, whose, took[p].Round(time.Millisecond), bound)
		}
	}
}

// maxOf is the longest of took over partitions.
func maxOf(took map[int32]time.Duration, partitions []int32) time.Duration {
	var longest time.Duration
	for _, p := range partitions {
		longest = max(longest, took[p])
	}
	return longest.Round(10 * time.Millisecond)
}

// streamer produces chunks of the stream until stopped.
type streamer struct {
	quit     chan struct{}
	done     chan struct{}
	produced []*kgo.Record
	err      error
}

// streamRecords produces a chunk of gen's records every 50ms in the
// background, as gateways and clients would.
func streamRecords(t *testing.T, cl *kgo.Client, gen *stream) *streamer {
	s := &streamer{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-tick.C:
			}
			recs := gen.next(40)
			if s.err = cl.ProduceSync(context.Background(), recs...).FirstErr(); s.err != nil {
				return
			}
			s.produced = append(s.produced, recs...)
		}
	}()
	t.Cleanup(func() { s.halt() })
	return s
}

func (s *streamer) halt() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

// stop stops the stream and returns what it produced.
func (s *streamer) stop(t *testing.T) []*kgo.Record {
	t.Helper()
	s.halt()
	if s.err != nil {
		t.Fatalf("producing the stream: %v", s.err)
	}
	return s.produced
}

// probe is the connect of a new user on one partition.
type probe struct {
	user      string
	partition int32
	sent      time.Time
	seen      time.Time // zero until Redis holds it
	rec       *kgo.Record
}

// prober produces a probe on every sessions partition every probeEvery,
// and notes when Redis holds each.
type prober struct {
	store *redisstore.Store
	quit  chan struct{}
	done  sync.WaitGroup

	mu     sync.Mutex
	probes []*probe
	err    error
}

func newProber(t *testing.T, cl *kgo.Client, store *redisstore.Store) *prober {
	pr := &prober{store: store, quit: make(chan struct{})}
	pr.done.Go(func() { pr.send(cl) })
	pr.done.Go(pr.watch)
	t.Cleanup(pr.halt)
	return pr
}

// send produces the probes.
func (pr *prober) send(cl *kgo.Client) {
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-pr.quit:
			return
		case <-tick.C:
		}
		var recs []*kgo.Record
		var probes []*probe
		for p := range int32(partitions) {
			user := probeUser(p, n)
			session := user + "-s"
			ev := &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CONNECT, App: app, User: user, Session: session,
				Device: &pb.Device{Type: "web", Id: "id-" + session}, Gateway: gateways[0], GatewayEpoch: "e1",
				TimestampMs: time.Now().UnixMilli()}
			r := record(schemas.SessionsTopic, schemas.SessionKey(app, user, session), ev)
			recs = append(recs, r)
			probes = append(probes, &probe{user: user, partition: p, rec: r})
		}
		sent := time.Now()
		err := cl.ProduceSync(context.Background(), recs...).FirstErr()
		pr.mu.Lock()
		if err != nil {
			pr.err = err
			pr.mu.Unlock()
			return
		}
		for _, p := range probes {
			p.sent = sent
		}
		pr.probes = append(pr.probes, probes...)
		pr.mu.Unlock()
	}
}

// probeUser returns the n-th probe user on partition p of the sessions
// topic.
func probeUser(p int32, n int) string {
	for i := 0; ; i++ {
		user := fmt.Sprintf("probe-%d-%d-%d", p, n, i)
		if schemas.Partition([]byte(schemas.SessionKey(app, user, user+"-s")), partitions) == int(p) {
			return user
		}
	}
}

// watch reads the probes not yet seen from Redis every 20ms.
func (pr *prober) watch() {
	for {
		select {
		case <-pr.quit:
			return
		case <-time.After(20 * time.Millisecond):
		}
		pr.mu.Lock()
		var pending []*probe
		for _, p := range pr.probes {
			if p.seen.IsZero() {
				pending = append(pending, p)
			}
		}
		pr.mu.Unlock()
		users := make([]string, len(pending))
		for i, p := range pending {
			users[i] = p.user
		}
		statuses, err := pr.store.Statuses(context.Background(), app, users)
		now := time.Now()
		pr.mu.Lock()
		if err != nil {
			pr.err = err
		}
		for i, st := range statuses {
			if st != nil && len(st.Sessions) > 0 {
				pending[i].seen = now
			}
		}
		pr.mu.Unlock()
	}
}

// waitAllVisible waits until every partition shows a probe sent after
// since, and every probe sent before it.
func (pr *prober) waitAllVisible(t *testing.T, since time.Time) {
	t.Helper()
	waitFor(t, "every partition to show new connects", func() error {
		pr.mu.Lock()
		defer pr.mu.Unlock()
		if pr.err != nil {
			t.Fatalf("probing: %v", pr.err)
		}
		fresh := map[int32]bool{}
		for _, p := range pr.probes {
			if p.seen.IsZero() {
				return fmt.Errorf("a connect on partition %d sent %s ago is not visible yet", p.partition, time.Since(p.sent).Round(time.Millisecond))
			}
			if p.sent.After(since) {
				fresh[p.partition] = true
			}
		}
		if len(fresh) < partitions {
			return fmt.Errorf("only partitions %v have new connects", fresh)
		}
		return nil
	})
}

// worst returns, per partition, the longest a probe sent between from and
// to took to be visible.
func (pr *prober) worst(from, to time.Time) map[int32]time.Duration {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	out := map[int32]time.Duration{}
	for _, p := range pr.probes {
		if p.sent.After(from) && p.sent.Before(to) && !p.seen.IsZero() {
			out[p.partition] = max(out[p.partition], p.seen.Sub(p.sent))
		}
	}
	return out
}

func (pr *prober) halt() {
	select {
	case <-pr.quit:
	default:
		close(pr.quit)
	}
	pr.done.Wait()
}

// stop stops probing and returns the probes' records.
func (pr *prober) stop(t *testing.T) []*kgo.Record {
	t.Helper()
	pr.halt()
	if pr.err != nil {
		t.Fatalf("probing: %v", pr.err)
	}
	recs := make([]*kgo.Record, len(pr.probes))
	for i, p := range pr.probes {
		recs[i] = p.rec
	}
	return recs
}

// users returns the probe users.
func (pr *prober) users() []string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	out := make([]string, len(pr.probes))
	for i, p := range pr.probes {
		out[i] = p.user
	}
	return out
}
