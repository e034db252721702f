package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

// After heavy churn, and once the offline TTL and the subscriptions have
// passed, compaction leaves in each topic the live state and nothing else:
// the processor tombstoned every ended session, the custom status of
// every expired user and every expired subscription. Replaying what is
// left rebuilds the same state.
func TestTopicsStayBounded(t *testing.T) {
	const ttl = time.Second
	c, cl := newCluster(t)
	adm := kadm.NewClient(cl)
	// Tombstones themselves are removed by the next compaction.
	if _, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "delete.retention.ms", Value: kadm.StringPtr("0")}},
		schemas.SessionsTopic, schemas.SubscriptionsTopic); err != nil {
		t.Fatal(err)
	}
	newTTLStore := func() *redisstore.Store {
		return redisstore.New(redistest.Client(t), redisstore.Options{Prefix: redistest.Prefix(t), OfflineTTL: ttl})
	}
	store := newTTLStore()
	startWith(t, c, processor.Config{Store: store, Group: "live"})

	evs := produce(t, cl, churn(7, 200, 3, 5000)...)
	users := map[string]bool{}
	for _, ev := range evs {
		users[ev.User] = true
	}
	var recs []*kgo.Record
	expired := time.Now().Add(ttl) // every offline user and short subscription is gone after it
	for i := range 50 {
		recs = append(recs, customRecord(fmt.Sprintf("user-%d", i), int32(i), "busy"))
	}
	for i := range 120 {
		expires := time.Now().Add(ttl)
		if i%6 == 0 {
			expires = time.Now().Add(time.Hour)
		}
		recs = append(recs, subscriptionRecord(fmt.Sprintf("user-%d", i), fmt.Sprintf("watcher-%d", i%7), expires))
	}
	produceRecords(t, cl, recs...)
	before := len(evs) + len(recs)

	// One user per partition, whose records end each partition: the last
	// batch of a partition is never compacted (as Kafka never compacts
	// the active segment), so it holds a pin, and the pin's previous
	// record is its only duplicate.
	pins := map[int]string{}
	for k := 0; len(pins) < partitions; k++ {
		pin := fmt.Sprintf("pin-%d", k)
		if p := schemas.Partition([]byte(schemas.UserKey("chat", pin)), partitions); pins[p] == "" {
			pins[p] = pin
			users[pin] = true
		}
	}
	var sessions, subscriptions, live int
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, pin := range pins {
			produce(t, cl, connectEv(pin, "pin", time.Now()))
			produceRecords(t, cl, subscriptionRecord(pin, "watcher-pin", time.Now().Add(time.Hour)))
		}
		waitCaughtUp(t, cl, store)
		c.Compact()
		sessions = len(readTopic(t, cl, schemas.SessionsTopic))
		subscriptions = len(readTopic(t, cl, schemas.SubscriptionsTopic))
		live = liveRecords(t, store, users)
		if time.Now().After(expired) && sessions+subscriptions <= live+2*partitions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s, compacted topics hold %d session and %d subscription records; the live state is %d records, plus %d pins",
				sessions, subscriptions, live, 2*partitions)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d records produced; after tombstones and compaction %d session and %d subscription records remain for a live state of %d",
		before, sessions, subscriptions, live)
	if live < 2*partitions+20 {
		t.Fatalf("live state of %d records: the test kept too little to show anything", live)
	}
	// Left of the subscriptions: the 20 long ones, and the pins'.
	if subscriptions > 20+2*partitions {
		t.Fatalf("%d subscription records left, want at most 20 long ones and %d pins'", subscriptions, 2*partitions)
	}

	// A rebuild from what is left equals the live state.
	rebuilt := newTTLStore()
	startWith(t, c, processor.Config{Store: rebuilt, Group: "rebuild", Quiet: true})
	waitCaughtUp(t, cl, rebuilt)
	for user := range users {
		want, _ := store.Status(context.Background(), "chat", user)
		got, _ := rebuilt.Status(context.Background(), "chat", user)
		if !sameStatus(got, want) {
			t.Errorf("%s rebuilt from the compacted topic: %+v, want %+v", user, got, want)
		}
	}
	if got := liveRecords(t, rebuilt, users); got != live {
		t.Errorf("rebuilt state holds %d records' worth, want %d", got, live)
	}
}

// liveRecords counts the records that the state of users needs: one per
// live session, custom status and live subscription.
func liveRecords(t *testing.T, store *redisstore.Store, users map[string]bool) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	for user := range users {
		st, err := store.Status(ctx, "chat", user)
		if err != nil {
			t.Fatal(err)
		}
		if st != nil {
			n += len(st.Sessions)
			if st.Custom != nil {
				n++
			}
		}
	}
	for i := range 7 {
		watching, err := store.Watching(ctx, "chat", fmt.Sprintf("watcher-%d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		n += len(watching)
	}
	watching, err := store.Watching(ctx, "chat", "watcher-pin", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return n + len(watching)
}

// sameStatus compares what a user sees of two statuses, but for their
// versions: the version is the offset of the user's latest record, which
// a tombstone may have removed from the compacted topic. The state is the
// same, and any change after a rebuild has a version above both.
func sameStatus(a, b *redisstore.Status) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Version, y.Version = 0, 0
	j1, _ := json.Marshal(x)
	j2, _ := json.Marshal(y)
	return string(j1) == string(j2)
}
