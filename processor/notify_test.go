package processor_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

func produceRecords(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

func friendRecords(a, b string) []*kgo.Record {
	var recs []*kgo.Record
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		value, _ := proto.Marshal(&pb.FriendEdge{App: "chat", User: pair[0], Friend: pair[1], TimestampMs: time.Now().UnixMilli()})
		recs = append(recs, &kgo.Record{Topic: schemas.FriendsTopic, Key: []byte(schemas.FriendKey("chat", pair[0], pair[1])), Value: value})
	}
	return recs
}

func subscriptionRecord(user, subscriber string, expires time.Time) *kgo.Record {
	value, _ := proto.Marshal(&pb.Subscription{App: "chat", User: user, Subscriber: subscriber,
		ExpiresAtMs: expires.UnixMilli(), TimestampMs: time.Now().UnixMilli()})
	return &kgo.Record{Topic: schemas.SubscriptionsTopic, Key: []byte(schemas.SubscriptionKey("chat", user, subscriber)), Value: value}
}

func customRecord(user string, status int32, text string) *kgo.Record {
	value, _ := proto.Marshal(&pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CUSTOM_STATUS, App: "chat", User: user,
		Custom: &pb.CustomStatus{Status: status, Text: text}, TimestampMs: time.Now().UnixMilli()})
	return &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(schemas.CustomStatusKey("chat", user)), Value: value}
}

func on(gateway string, ev *pb.SessionEvent) *pb.SessionEvent {
	ev.Gateway = gateway
	ev.TimestampMs = time.Now().UnixMilli()
	return ev
}

// notifications reads presence.notify from where it ends now.
type notifications struct {
	cl *kgo.Client
}

func readNotifications(t *testing.T, c *kfake.Cluster, cl *kgo.Client) *notifications {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), schemas.NotifyTopic)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { offsets[o.Partition] = kgo.NewOffset().At(o.Offset) })
	reader, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.NotifyTopic: offsets}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	return &notifications{cl: reader}
}

// describe is a notification in one line: type, gateway, recipients, and
// the subject's state, devices and custom status.
func describe(n *pb.Notification) string {
	var recipients, devices []string
	for _, r := range n.Recipients {
		recipients = append(recipients, r.User+"/"+r.Session)
	}
	for _, s := range n.Subject.Sessions {
		devices = append(devices, s.Device.Type)
	}
	slices.Sort(recipients)
	slices.Sort(devices)
	state := "offline"
	if n.Subject.Online {
		state = "online"
	}
	custom := "-"
	if c := n.Subject.Custom; c != nil {
		custom = fmt.Sprintf("%d:%s", c.Status, c.Text)
	}
	typ := strings.ToLower(strings.TrimPrefix(n.Type.String(), "NOTIFICATION_TYPE_"))
	return fmt.Sprintf("%s %s->%s [%s] %s %s [%s]", typ, n.Subject.User, n.Gateway, strings.Join(recipients, " "), state, custom, strings.Join(devices, " "))
}

// expect reads notifications until it has len(want), and compares them,
// in any order, with want. It returns them.
func (r *notifications) expect(t *testing.T, want ...string) []*pb.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []*pb.Notification
	var lines []string
	for len(got) < len(want) {
		fetches := r.cl.PollRecords(ctx, len(want)-len(got))
		if ctx.Err() != nil {
			t.Fatalf("got %d notifications in 20s, want %d:\n got  %q\n want %q", len(got), len(want), lines, want)
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			var n pb.Notification
			if err := proto.Unmarshal(rec.Value, &n); err != nil {
				t.Fatalf("decoding notification: %v", err)
			}
			if string(rec.Key) != schemas.NotifyKey(n.Gateway) {
				t.Errorf("notification for %s keyed %q", n.Gateway, rec.Key)
			}
			got = append(got, &n)
			lines = append(lines, describe(&n))
		})
	}
	slices.Sort(lines)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Fatalf("notifications:\n got  %q\n want %q", lines, want)
	}
	return got
}

// A friends-and-subscribers world: ann is friends with bob (online on
// gw-2) and cid (offline), and wes (online on gw-3) watches her.
func world(t *testing.T, grace time.Duration) (*kfake.Cluster, *kgo.Client, *redisstore.Store) {
	t.Helper()
	c, cl := newCluster(t)
	store := newStore(t)
	startWith(t, c, processor.Config{Store: store, OfflineGrace: grace})
	produceRecords(t, cl, append(friendRecords("ann", "bob"), friendRecords("ann", "cid")...)...)
	produceRecords(t, cl, subscriptionRecord("ann", "wes", time.Now().Add(time.Hour)))
	produce(t, cl, on("gw-2", connectEv("bob", "b1", t0)), on("gw-3", connectEv("wes", "w1", t0)))
	waitCaughtUp(t, cl, store)
	return c, cl, store
}

func TestNotifiesFriendsSubscribersAndOtherDevices(t *testing.T) {
	c, cl, _ := world(t, 200*time.Millisecond)
	r := readNotifications(t, c, cl)

	produce(t, cl, on("gw-1", connectEv("ann", "a1", t0)))
	first := r.expect(t,
		"presence ann->gw-2 [bob/b1] online - [android]",
		"presence ann->gw-3 [wes/w1] online - [android]")

	web := on("gw-1", connectEv("ann", "a2", t0))
	web.Device.Type = "web"
	produce(t, cl, web)
	second := r.expect(t,
		"presence ann->gw-2 [bob/b1] online - [android web]",
		"presence ann->gw-3 [wes/w1] online - [android web]",
		"sync ann->gw-1 [ann/a1] online - [android web]")
	if second[0].Subject.Version <= first[0].Subject.Version {
		t.Errorf("versions do not grow: %d then %d", first[0].Subject.Version, second[0].Subject.Version)
	}

	produceRecords(t, cl, customRecord("ann", 2, "busy"))
	r.expect(t,
		"presence ann->gw-2 [bob/b1] online 2:busy [android web]",
		"presence ann->gw-3 [wes/w1] online 2:busy [android web]",
		"sync ann->gw-1 [ann/a1 ann/a2] online 2:busy [android web]")

	// Both devices leave: one change, then offline once the grace passed.
	produce(t, cl, on("gw-1", disconnectEv("ann", "a2", t0)))
	r.expect(t,
		"presence ann->gw-2 [bob/b1] online 2:busy [android]",
		"presence ann->gw-3 [wes/w1] online 2:busy [android]",
		"sync ann->gw-1 [ann/a1] online 2:busy [android]")
	produce(t, cl, on("gw-1", disconnectEv("ann", "a1", t0)))
	offline := r.expect(t,
		"presence ann->gw-2 [bob/b1] offline 2:busy []",
		"presence ann->gw-3 [wes/w1] offline 2:busy []")
	if offline[0].Subject.LastSeenMs == 0 {
		t.Error("offline notification without last seen")
	}
	// Each of ann's changes is on presence.changes, in order, in the
	// partition of her sessions, versions growing.
	want := []string{"online - [android]", "online - [android web]", "online 2:busy [android web]",
		"online 2:busy [android]", "offline 2:busy []"}
	if got := changesOf(t, cl, "ann"); !slices.Equal(got, want) {
		t.Errorf("ann's changes on %s:\n got %q\nwant %q", schemas.ChangesTopic, got, want)
	}
}

// changesOf reads presence.changes whole and describes the changes of a
// user of app chat, in order, checking their key, partition and that
// versions never go back.
func changesOf(t *testing.T, cl *kgo.Client, user string) []string {
	t.Helper()
	key := schemas.UserKey("chat", user)
	partition := int32(schemas.Partition([]byte(key), schemas.DefaultPartitions))
	var out []string
	var version int64
	for _, r := range readTopic(t, cl, schemas.ChangesTopic) {
		if string(r.Key) != key {
			continue
		}
		var c pb.StatusChange
		if err := proto.Unmarshal(r.Value, &c); err != nil {
			t.Fatalf("change at %d/%d: %v", r.Partition, r.Offset, err)
		}
		if r.Partition != partition || c.App != "chat" || c.Status.GetUser() != user || c.TimestampMs == 0 {
			t.Fatalf("change of %s in partition %d (want %d): %v", user, r.Partition, partition, &c)
		}
		if c.Status.Version < version { // the same twice: at least once
			t.Errorf("change of %s at version %d after %d", user, c.Status.Version, version)
		}
		version = c.Status.Version
		n := describe(&pb.Notification{Subject: c.Status})
		out = append(out, n[strings.Index(n, "] ")+2:])
	}
	return out
}

// A reconnect within the grace period is no news; the next change is.
func TestGraceAbsorbsReconnect(t *testing.T) {
	c, cl, _ := world(t, 3*time.Second)
	r := readNotifications(t, c, cl)
	produce(t, cl, on("gw-1", connectEv("ann", "a1", t0)))
	r.expect(t, "presence ann->gw-2 [bob/b1] online - [android]", "presence ann->gw-3 [wes/w1] online - [android]")

	back := on("gw-1", connectEv("ann", "a1-again", t0))
	back.Device.Id = "dev-a1" // the same phone
	produce(t, cl, on("gw-1", disconnectEv("ann", "a1", t0)), back)
	// The next notifications are those of this change, not an
	// offline/online pair.
	produceRecords(t, cl, customRecord("ann", 1, "back"))
	r.expect(t, "presence ann->gw-2 [bob/b1] online 1:back [android]", "presence ann->gw-3 [wes/w1] online 1:back [android]",
		"sync ann->gw-1 [ann/a1-again] online 1:back [android]")
}

// A user back within the grace period after Redis showed them offline:
// the audience is told nothing, but presence.changes, which watches
// follow, says they are back (a watch may have read them offline).
func TestChangesShowReturnWithinGrace(t *testing.T) {
	c, cl, store := world(t, time.Hour)
	r := readNotifications(t, c, cl)
	produce(t, cl, on("gw-1", connectEv("ann", "a1", t0)))
	r.expect(t, "presence ann->gw-2 [bob/b1] online - [android]", "presence ann->gw-3 [wes/w1] online - [android]")
	produce(t, cl, on("gw-1", disconnectEv("ann", "a1", t0)))
	waitCaughtUp(t, cl, store)
	if st, err := store.Status(context.Background(), "chat", "ann"); err != nil || st == nil || st.State != redisstore.Offline {
		t.Fatalf("ann after her disconnect: %+v, %v", st, err)
	}
	back := on("gw-1", connectEv("ann", "a1-again", t0))
	back.Device.Id = "dev-a1" // the same phone
	produce(t, cl, back)
	produceRecords(t, cl, customRecord("ann", 1, "back"))
	r.expect(t, "presence ann->gw-2 [bob/b1] online 1:back [android]", "presence ann->gw-3 [wes/w1] online 1:back [android]",
		"sync ann->gw-1 [ann/a1-again] online 1:back [android]")
	want := []string{"online - [android]", "online - [android]", "online 1:back [android]"}
	if got := changesOf(t, cl, "ann"); !slices.Equal(got, want) {
		t.Errorf("ann's changes on %s:\n got %q\nwant %q", schemas.ChangesTopic, got, want)
	}
}

// A processor that stops while an offline announcement waits for the
// grace period leaves it to the processor that takes the partition: it
// queues again, as it restores the partition, the users its latest
// records took offline. (The first processor's grace is an hour: only the
// second can announce.)
func TestOfflineAnnouncedAfterTakeover(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	first := startWith(t, c, processor.Config{Store: store, OfflineGrace: time.Hour})
	produceRecords(t, cl, friendRecords("ann", "bob")...)
	produce(t, cl, on("gw-2", connectEv("bob", "b1", t0)), on("gw-1", connectEv("ann", "a1", t0)))
	waitCaughtUp(t, cl, store)
	r := readNotifications(t, c, cl)
	gone := produce(t, cl, on("gw-1", disconnectEv("ann", "a1", t0)))
	waitCaughtUp(t, cl, store)
	first.Stop(t)
	// Beside the checkpoint: ann's announcement is pending from her
	// disconnect on.
	partition := int32(schemas.Partition([]byte(schemas.UserKey("chat", "ann")), partitions))
	if cp, err := store.Checkpoint(context.Background(), schemas.SessionsTopic); err != nil || cp.Told[partition] != gone[0].offset || len(cp.Told) != 1 {
		t.Fatalf("announcements pending: %v (%v), want partition %d from offset %d", cp.Told, err, partition, gone[0].offset)
	}

	startWith(t, c, processor.Config{Store: store, OfflineGrace: 100 * time.Millisecond})
	r.expect(t, "presence ann->gw-2 [bob/b1] offline - []")
}

// A processor that takes a partition from a release that kept pending
// offline announcements in Redis (a sorted set per partition, and no
// watermark beside the checkpoint) makes them.
func TestOfflineAnnouncedAfterUpgrade(t *testing.T) {
	ctx := context.Background()
	c, cl := newCluster(t)
	rdb, prefix := redistest.Client(t), redistest.Prefix(t)
	store := redisstore.New(rdb, redisstore.Options{Prefix: prefix})
	first := startWith(t, c, processor.Config{Store: store, OfflineGrace: time.Hour})
	produceRecords(t, cl, friendRecords("ann", "bob")...)
	produce(t, cl, on("gw-2", connectEv("bob", "b1", t0)), on("gw-1", connectEv("ann", "a1", t0)))
	waitCaughtUp(t, cl, store)
	r := readNotifications(t, c, cl)
	produce(t, cl, on("gw-1", disconnectEv("ann", "a1", t0)))
	waitCaughtUp(t, cl, store)
	first.Stop(t)
	// As the older release left it.
	partition := schemas.Partition([]byte(schemas.UserKey("chat", "ann")), partitions)
	cp := prefix + ":checkpoint:" + schemas.SessionsTopic
	if err := rdb.HDel(ctx, cp, "owner:told:"+strconv.Itoa(partition)).Err(); err != nil {
		t.Fatal(err)
	}
	grace := prefix + ":grace:" + strconv.Itoa(partition)
	pend := func(due time.Time) {
		t.Helper()
		if err := rdb.ZAdd(ctx, grace, redis.Z{Score: float64(due.UnixMilli()), Member: schemas.UserKey("chat", "ann")}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Due in an hour: the partition moves on before it is made, and the
	// schedule stays in Redis for the next owner.
	pend(time.Now().Add(time.Hour))
	owner := "owner:" + strconv.Itoa(partition)
	before := rdb.HGet(ctx, cp, owner).Val()
	second := startWith(t, c, processor.Config{Store: store, OfflineGrace: time.Hour})
	for deadline := time.Now().Add(20 * time.Second); rdb.HGet(ctx, cp, owner).Val() == before; {
		if time.Now().After(deadline) {
			t.Fatal("the second processor did not take ann's partition in 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitCaughtUp(t, cl, store)
	second.Stop(t)
	if rdb.Exists(ctx, grace).Val() != 1 {
		t.Fatal("an owner dropped the older release's schedule before making it")
	}

	pend(time.Now())
	startWith(t, c, processor.Config{Store: store, OfflineGrace: 100 * time.Millisecond})
	r.expect(t, "presence ann->gw-2 [bob/b1] offline - []")
	// Made, the schedule goes (right after the announcement).
	for deadline := time.Now().Add(10 * time.Second); rdb.Exists(ctx, grace).Val() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the older release's schedule is still in Redis 10 s after its announcement")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Expired subscriptions are not told; removed friends are not told.
func TestExpiredAndRemovedAudience(t *testing.T) {
	c, cl, store := world(t, time.Second)
	produceRecords(t, cl, &kgo.Record{Topic: schemas.FriendsTopic, Key: []byte(schemas.FriendKey("chat", "ann", "bob"))})
	produceRecords(t, cl, subscriptionRecord("ann", "wes", time.Now().Add(-time.Second)))
	waitCaughtUp(t, cl, store)
	// bob's half of the friendship remains: bob is told of ann only once
	// both halves are gone, but ann's audience is hers.
	r := readNotifications(t, c, cl)
	produce(t, cl, on("gw-1", connectEv("ann", "a1", t0)))
	produceRecords(t, cl, customRecord("ann", 1, "fence"))
	produce(t, cl, on("gw-4", connectEv("cid", "c1", t0)))
	r.expect(t, "sync ann->gw-1 [ann/a1] online 1:fence [android]", "presence cid->gw-1 [ann/a1] online - [android]")
}

// A rebuild into an empty Redis announces nothing of history.
func TestRebuildIsQuiet(t *testing.T) {
	c, cl, _ := world(t, time.Second)
	r := readNotifications(t, c, cl)
	produce(t, cl, on("gw-1", connectEv("ann", "a1", t0)))
	produceRecords(t, cl, customRecord("ann", 3, "before"))
	// What the first processor announces live, read before the rebuild
	// starts so that a late one cannot pass for the rebuild's.
	r.expect(t,
		"presence ann->gw-2 [bob/b1] online - [android]", "presence ann->gw-3 [wes/w1] online - [android]",
		"presence ann->gw-2 [bob/b1] online 3:before [android]", "presence ann->gw-3 [wes/w1] online 3:before [android]",
		"sync ann->gw-1 [ann/a1] online 3:before [android]")

	fresh := newStore(t)
	startWith(t, c, processor.Config{Store: fresh, Group: "rebuild", OfflineGrace: time.Second})
	waitCaughtUp(t, cl, fresh)
	if st, _ := fresh.Status(context.Background(), "chat", "ann"); st == nil || st.Custom == nil || st.Custom.Text != "before" {
		t.Fatalf("rebuilt ann: %+v", st)
	}
	// The next notifications are those of a new change, from both
	// processors (each with its own Redis): the rebuild announced nothing.
	produceRecords(t, cl, customRecord("ann", 4, "after"))
	after := []string{"presence ann->gw-2 [bob/b1] online 4:after [android]", "presence ann->gw-3 [wes/w1] online 4:after [android]",
		"sync ann->gw-1 [ann/a1] online 4:after [android]"}
	r.expect(t, append(after, after...)...)
	// Nor did it write changes: those of the first processor, then the
	// new one from each.
	want := []string{"online - [android]", "online 3:before [android]", "online 4:after [android]", "online 4:after [android]"}
	if got := changesOf(t, cl, "ann"); !slices.Equal(got, want) {
		t.Errorf("ann's changes on %s:\n got %q\nwant %q", schemas.ChangesTopic, got, want)
	}
}

// A user with a very large audience: every online member is told, in
// records of at most 1000 recipients. The cost is logged (and exported as
// presence_processor_announce_seconds and _fanout_recipients), not
// asserted.
func TestLargeFanout(t *testing.T) {
	const friends, online = 20000, 4000
	c, cl := newCluster(t)
	store := newStore(t)
	startWith(t, c, processor.Config{Store: store, OfflineGrace: time.Second})
	var recs []*kgo.Record
	var evs []*pb.SessionEvent
	for i := range friends {
		f := fmt.Sprintf("fan-%d", i)
		recs = append(recs, friendRecords("star", f)...)
		if i < online {
			evs = append(evs, on(fmt.Sprintf("gw-%d", i%4), connectEv(f, f+"-s", t0)))
		}
	}
	produceRecords(t, cl, recs...)
	produce(t, cl, evs...)
	waitCaughtUp(t, cl, store)

	r := readNotifications(t, c, cl)
	start := time.Now()
	produce(t, cl, on("gw-0", connectEv("star", "star-s", t0)))
	records := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	told := map[string]bool{}
	for len(told) < online {
		fetches := r.cl.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d online friends told in 30s", len(told), online)
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			var n pb.Notification
			if err := proto.Unmarshal(rec.Value, &n); err != nil {
				t.Fatal(err)
			}
			if len(n.Recipients) > maxPerRecord {
				t.Errorf("a record with %d recipients", len(n.Recipients))
			}
			for _, rc := range n.Recipients {
				if told[rc.User] {
					t.Errorf("%s told twice", rc.User)
				}
				told[rc.User] = true
			}
			records++
		})
	}
	t.Logf("a change of a user with %d friends, %d online: told in %d records, %s end to end", friends, online, records, time.Since(start))
}

const maxPerRecord = 1000

// The sessions of ann's audience are read from memory for the users of
// her own partition, which waits for the announcement, and from Redis for
// the others: either way every online friend is told on each of its
// sessions, once, through its gateway, and the friends gone offline are
// not told, when she comes online and when she goes offline.
func TestAudienceSessionsFromMemoryOrRedis(t *testing.T) {
	c, cl := newCluster(t)
	store := newStore(t)
	startWith(t, c, processor.Config{Store: store, OfflineGrace: time.Second})
	partitionOf := func(user string) int { return schemas.Partition([]byte(schemas.UserKey("chat", user)), partitions) }
	var same, other []string // friends in ann's partition, in others
	for i := 0; len(same) < 3 || len(other) < 3; i++ {
		f := fmt.Sprintf("f%d", i)
		switch {
		case partitionOf(f) == partitionOf("ann") && len(same) < 3:
			same = append(same, f)
		case partitionOf(f) != partitionOf("ann") && len(other) < 3:
			other = append(other, f)
		}
	}
	// Of each kind, one online on two gateways, one on one, one gone.
	var recs []*kgo.Record
	var evs []*pb.SessionEvent
	for _, fs := range [][]string{same, other} {
		for _, f := range fs {
			recs = append(recs, friendRecords("ann", f)...)
		}
		evs = append(evs, on("gw-2", connectEv(fs[0], fs[0]+"-a", t0)), on("gw-3", connectEv(fs[0], fs[0]+"-b", t0)),
			on("gw-2", connectEv(fs[1], fs[1]+"-a", t0)),
			on("gw-3", connectEv(fs[2], fs[2]+"-a", t0)), on("gw-3", disconnectEv(fs[2], fs[2]+"-a", t0)))
	}
	produceRecords(t, cl, recs...)
	produce(t, cl, evs...)
	waitCaughtUp(t, cl, store)

	r := readNotifications(t, c, cl)
	produce(t, cl, on("gw-1", connectEv("ann", "a1", t0)))
	var gw2, gw3 []string
	for _, fs := range [][]string{same, other} {
		gw2 = append(gw2, fs[0]+"/"+fs[0]+"-a", fs[1]+"/"+fs[1]+"-a")
		gw3 = append(gw3, fs[0]+"/"+fs[0]+"-b")
	}
	slices.Sort(gw2)
	slices.Sort(gw3)
	r.expect(t,
		"presence ann->gw-2 ["+strings.Join(gw2, " ")+"] online - [android]",
		"presence ann->gw-3 ["+strings.Join(gw3, " ")+"] online - [android]")
	// The offline announcement, made by the grace sweep, reads them the
	// same way.
	produce(t, cl, on("gw-1", disconnectEv("ann", "a1", t0)))
	r.expect(t,
		"presence ann->gw-2 ["+strings.Join(gw2, " ")+"] offline - []",
		"presence ann->gw-3 ["+strings.Join(gw3, " ")+"] offline - []")
}

// A new last-seen rule changes nothing visible, and tells nobody, but
// presence.changes gets the user's status with the new setting: watches
// mask the user's latest change with the setting it carries.
func TestPrivacyRuleOnPresenceChanges(t *testing.T) {
	c, cl, _ := world(t, time.Second)
	r := readNotifications(t, c, cl)
	produce(t, cl, on("gw-1", connectEv("ann", "a1", t0)))
	r.expect(t, "presence ann->gw-2 [bob/b1] online - [android]", "presence ann->gw-3 [wes/w1] online - [android]")
	value, err := proto.Marshal(&pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_PRIVACY, App: "chat", User: "ann",
		Privacy: &pb.Privacy{LastSeen: pb.LastSeenRule_LAST_SEEN_RULE_NOBODY}, TimestampMs: t0.UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	produceRecords(t, cl, &kgo.Record{Topic: schemas.SessionsTopic, Key: []byte(schemas.PrivacyKey("chat", "ann")), Value: value})
	key := schemas.UserKey("chat", "ann")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var rules []pb.LastSeenRule
		for _, rec := range readTopic(t, cl, schemas.ChangesTopic) {
			var sc pb.StatusChange
			if string(rec.Key) == key && proto.Unmarshal(rec.Value, &sc) == nil {
				rules = append(rules, sc.GetPrivacy().GetLastSeen())
			}
		}
		if len(rules) == 2 && rules[1] == pb.LastSeenRule_LAST_SEEN_RULE_NOBODY {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ann's changes carry the rules %v, want a second with nobody", rules)
		}
	}
}
