package state_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// The redesign must keep the semantics: the same records, applied by
// apply.lua in Redis and by a Partition in memory, give the same outcomes
// (applied, announce, visible state, kept session), and the images the
// Partition hands out, written blindly, give the same hashes, byte for
// byte, with the same expiry, and so the same statuses to the query API.
//
// Each seed plays a few hundred random batches of records about a few
// users: connects, reconnects on other gateways and epochs, plain
// disconnects, gateway_lost disconnects from the right and from a wrong
// gateway or epoch, custom statuses set (often to the same value) and
// cleared, duplicates and replays of earlier records, records older than
// the offline TTL (forgotten at once), a rebuild (quiet) for a prefix,
// and, between batches, announcements marked and grace-period checks, as
// the processor makes them.
func TestSameAsRedis(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			d := newDiff(t, seed)
			d.run(t, 1500)
			// The records met every case, or the test proves less
			// than it says.
			for _, c := range []string{"quiet", "not applied", "now", "after grace", "kept", "forgotten"} {
				if d.seen[c] == 0 {
					t.Errorf("no record made the case %q: %v", c, d.seen)
				}
			}
		})
	}
}

const diffTTL = time.Hour

// diff runs records through apply.lua (ref) and a Partition (model).
type diff struct {
	rng                    *rand.Rand
	rdb                    *redis.Client
	ref                    *redisstore.Store
	model                  *state.Partition
	written                *redisstore.Store // reads the model's images
	refPrefix, imagePrefix string
	sent                   []redisstore.Change
	next                   int64
	// quiet holds the versions applied quietly (a rebuild's history):
	// a prefix, and windows later on, so that records of a rebuild meet
	// state announced live.
	quiet [][2]int64
	// seen counts the cases the records made.
	seen map[string]int
}

func newDiff(t *testing.T, seed uint64) *diff {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t)
	d := &diff{
		rng: rand.New(rand.NewPCG(seed, 14)), rdb: rdb, refPrefix: prefix + "-ref", imagePrefix: prefix + "-img",
		model: state.New(state.Config{OfflineTTL: diffTTL}), seen: map[string]int{},
	}
	d.ref = redisstore.New(rdb, redisstore.Options{Prefix: d.refPrefix, OfflineTTL: diffTTL})
	d.written = redisstore.New(rdb, redisstore.Options{Prefix: d.imagePrefix, OfflineTTL: diffTTL})
	d.quiet = [][2]int64{{0, int64(d.rng.IntN(300))}}
	for range 3 {
		from := int64(d.rng.IntN(3000))
		d.quiet = append(d.quiet, [2]int64{from, from + int64(d.rng.IntN(200))})
	}
	return d
}

var (
	diffApps     = []string{"chat", "game"}
	diffUsers    = []string{"ann", "bob", "cy", "x/y%z", "zoë"} // escaped in keys
	diffSessions = []string{"s1", "s2", "sé/3"}
	diffDevices  = []string{"ios", "web"}
	diffHosts    = [][2]string{{"gw-a", "e1"}, {"gw-a", "e2"}, {"gw-b", "e1"}}
	diffTexts    = []string{"", "busy", "at lunch"}
)

// record returns a new random record, or one sent before (a duplicate or
// a replay, with its old version).
func (d *diff) record(now time.Time) redisstore.Change {
	r := d.rng
	if len(d.sent) > 0 && r.IntN(10) == 0 {
		return d.sent[len(d.sent)-1-r.IntN(min(len(d.sent), 40))]
	}
	c := redisstore.Change{App: diffApps[r.IntN(len(diffApps))], User: diffUsers[r.IntN(len(diffUsers))],
		Version: d.next, At: now.Add(-time.Duration(r.IntN(600_000)) * time.Millisecond).Truncate(time.Millisecond)}
	d.next += 1 + int64(r.IntN(3)) // compaction leaves gaps
	if r.IntN(10) == 0 {
		c.At = now.Add(-2 * diffTTL) // older than the offline TTL
	}
	switch n := r.IntN(20); {
	case n < 8:
		h := diffHosts[r.IntN(len(diffHosts))]
		c.Op, c.Session, c.Gateway, c.Epoch = redisstore.Connect, diffSessions[r.IntN(len(diffSessions))], h[0], h[1]
		c.Device = diffDevices[r.IntN(len(diffDevices))]
		c.DeviceID = "d" + fmt.Sprint(r.IntN(3))
	case n < 12:
		c.Op, c.Session = redisstore.Disconnect, diffSessions[r.IntN(len(diffSessions))]
	case n < 15:
		// A gateway_lost disconnect, from the gateway and epoch that
		// hold the session or from another.
		h := diffHosts[r.IntN(len(diffHosts))]
		c.Op, c.Session, c.Gateway, c.Epoch, c.OnlyHere = redisstore.Disconnect, diffSessions[r.IntN(len(diffSessions))], h[0], h[1], true
	case n < 18:
		c.Op, c.Custom = redisstore.SetCustom, redisstore.Custom{Status: r.IntN(2), Text: diffTexts[r.IntN(len(diffTexts))]}
	default:
		c.Op = redisstore.ClearCustom
	}
	d.sent = append(d.sent, c)
	return c
}

func (d *diff) run(t *testing.T, records int) {
	ctx := context.Background()
	now := time.Now()
	for n := 0; n < records; {
		batch := make([]redisstore.Change, 1+d.rng.IntN(12))
		for i := range batch {
			batch[i] = d.record(now)
		}
		n += len(batch)
		// A batch is split where it goes in or out of quiet, as the
		// processor splits a rebuild's at its target.
		for len(batch) > 0 {
			quiet := d.isQuiet(batch[0])
			i := 1
			for i < len(batch) && d.isQuiet(batch[i]) == quiet {
				i++
			}
			d.apply(t, ctx, batch[:i], quiet)
			batch = batch[i:]
		}
		d.check(t, ctx)
		d.flush(t, ctx)
		d.compare(t, ctx)
	}
}

func (d *diff) count(c redisstore.Change, o redisstore.Outcome, quiet bool) {
	switch {
	case quiet:
		d.seen["quiet"]++
	case !o.Applied:
		d.seen["not applied"]++
	}
	switch {
	case o.Announce == redisstore.Now:
		d.seen["now"]++
	case o.Announce == redisstore.AfterGrace:
		d.seen["after grace"]++
	}
	if o.Kept != nil {
		d.seen["kept"]++
	}
	if o.Applied && strings.HasPrefix(d.model.Check(redisstore.User{App: c.App, User: c.User}).Visible, "-1:") {
		d.seen["forgotten"]++ // at once: too old, or nothing left to show
	}
}

func (d *diff) isQuiet(c redisstore.Change) bool {
	for _, q := range d.quiet {
		if c.Version >= q[0] && c.Version < q[1] {
			return true
		}
	}
	return false
}

// apply applies a batch to both, compares outcomes, and marks announced a
// random part of what both say to announce (an announcement may fail).
func (d *diff) apply(t *testing.T, ctx context.Context, batch []redisstore.Change, quiet bool) {
	t.Helper()
	want, err := d.ref.Apply(ctx, batch, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var users []redisstore.User
	var visible []string
	for i, c := range batch {
		got := d.model.Apply(c, quiet)
		if want[i].Kept != nil {
			// apply.lua returns the kept session's value, which does
			// not hold its id; the model gives it.
			want[i].Kept.Session = c.Session
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Fatalf("record %+v (quiet %v): model %s, redis %s", c, quiet, show(got), show(want[i]))
		}
		d.count(c, got, quiet)
		if got.Announce == redisstore.Now && d.rng.IntN(4) > 0 {
			users = append(users, redisstore.User{App: c.App, User: c.User})
			visible = append(visible, got.Visible)
		}
	}
	d.markAnnounced(t, ctx, users, visible)
}

// check compares the grace-period checks of a few users, and marks
// announced those both say to announce.
func (d *diff) check(t *testing.T, ctx context.Context) {
	t.Helper()
	users := make([]redisstore.User, 1+d.rng.IntN(3))
	for i := range users {
		users[i] = redisstore.User{App: diffApps[d.rng.IntN(len(diffApps))], User: diffUsers[d.rng.IntN(len(diffUsers))]}
	}
	want, err := d.ref.Check(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	var marked []redisstore.User
	var visible []string
	for i, u := range users {
		got := d.model.Check(u)
		if !reflect.DeepEqual(got, want[i]) {
			t.Fatalf("check of %v: model %s, redis %s", u, show(got), show(want[i]))
		}
		if got.Announce == redisstore.Now {
			marked, visible = append(marked, u), append(visible, got.Visible)
		}
	}
	d.markAnnounced(t, ctx, marked, visible)
}

func (d *diff) markAnnounced(t *testing.T, ctx context.Context, users []redisstore.User, visible []string) {
	t.Helper()
	if err := d.ref.MarkAnnounced(ctx, users, visible); err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		d.model.MarkAnnounced(u, visible[i])
	}
}

// flush writes the model's images blindly, as a writer would: a whole
// image replaces the hash, another sets its fields and deletes those
// removed.
func (d *diff) flush(t *testing.T, ctx context.Context) {
	t.Helper()
	images := d.model.TakeDirty()
	if d.model.Dirty() != 0 {
		t.Fatalf("%d users still dirty after TakeDirty", d.model.Dirty())
	}
	_, err := d.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, img := range images {
			key := d.key(d.imagePrefix, img.User)
			if img.Whole {
				p.Del(ctx, key)
			}
			if img.Gone {
				continue
			}
			p.HSet(ctx, key, img.Fields)
			if len(img.Removed) > 0 {
				p.HDel(ctx, key, img.Removed...)
			}
			if !img.ExpireAt.IsZero() {
				p.PExpireAt(ctx, key, img.ExpireAt)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (d *diff) key(prefix string, u redisstore.User) string {
	return prefix + ":{" + schemas.UserKey(u.App, u.User) + "}"
}

// compare compares, for every user, the hash apply.lua left (but its
// "a") with the one the model's images wrote, field by field, their
// expiries, the statuses the query API decodes from them, the number of
// users known, and the sessions of each gateway with those Redis shows on
// it. The hashes and expiries are read in one round trip.
func (d *diff) compare(t *testing.T, ctx context.Context) {
	t.Helper()
	type read struct {
		u                redisstore.User
		refHash, imgHash *redis.MapStringStringCmd
		refTime, imgTime *redis.Cmd
	}
	var reads []read
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, app := range diffApps {
			for _, name := range diffUsers {
				u := redisstore.User{App: app, User: name}
				ref, img := d.key(d.refPrefix, u), d.key(d.imagePrefix, u)
				reads = append(reads, read{u: u, refHash: p.HGetAll(ctx, ref), imgHash: p.HGetAll(ctx, img),
					refTime: p.Do(ctx, "PEXPIRETIME", ref), imgTime: p.Do(ctx, "PEXPIRETIME", img)})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reads {
		want := r.refHash.Val()
		delete(want, "a")
		if got := r.imgHash.Val(); !reflect.DeepEqual(got, want) {
			t.Fatalf("hash of %v: the model's image %q, apply.lua's %q", r.u, got, want)
		}
		// PEXPIRETIME: -1 persistent, -2 missing.
		if got, want := r.imgTime.Val(), r.refTime.Val(); got != want {
			t.Fatalf("expiry of %v: the model's image %v, apply.lua's %v", r.u, got, want)
		}
	}
	known := 0
	online := map[string][]state.GatewaySession{}
	for _, app := range diffApps {
		want, err := d.ref.Statuses(ctx, app, diffUsers)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.written.Statuses(ctx, app, diffUsers)
		if err != nil {
			t.Fatal(err)
		}
		for i, name := range diffUsers {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("status of %s/%s: from the model's image %+v, from apply.lua %+v", app, name, got[i], want[i])
			}
			// What the processor announces, read from its memory.
			held, err := d.model.Status(redisstore.User{App: app, User: name})
			if err != nil || !reflect.DeepEqual(held, want[i]) {
				t.Fatalf("status of %s/%s: from the model's memory %+v (%v), from apply.lua %+v", app, name, held, err, want[i])
			}
			if want[i] != nil {
				known++
				for _, s := range want[i].Sessions {
					online[s.Gateway] = append(online[s.Gateway], state.GatewaySession{App: app, User: name, Session: s})
				}
			}
		}
	}
	if err := d.model.CheckIndexes(); err != nil {
		t.Fatal(err)
	}
	if d.model.Len() != known {
		t.Fatalf("the model knows %d users, redis %d", d.model.Len(), known)
	}
	var gateways []string
	for gw, sessions := range online {
		gateways = append(gateways, gw)
		slices.SortFunc(sessions, func(a, b state.GatewaySession) int {
			return cmp.Or(strings.Compare(a.App, b.App), strings.Compare(a.User, b.User), strings.Compare(a.Session.Session, b.Session.Session))
		})
		if got := d.model.SessionsOf(gw); !reflect.DeepEqual(got, sessions) {
			t.Fatalf("sessions of gateway %s: model %+v, redis %+v", gw, got, sessions)
		}
	}
	slices.Sort(gateways)
	if got := d.model.Gateways(); !slices.Equal(got, gateways) {
		t.Fatalf("gateways: model %v, redis %v", got, gateways)
	}
}

func show(o redisstore.Outcome) string {
	s := fmt.Sprintf("{applied %v announce %d visible %q", o.Applied, o.Announce, o.Visible)
	if o.Kept != nil {
		s += fmt.Sprintf(" kept %+v", *o.Kept)
	}
	return s + "}"
}
