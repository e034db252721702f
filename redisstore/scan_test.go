package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

// ScanUsers finds exactly the users of the partitions asked, across
// several batches and readers, with their hashes and expiries, and passes
// over what is not a user's hash: other keys of the user, keys of three
// ids, keys of another prefix that an unescaped pattern of this one
// (holding "[x]*") would match.
func TestScanUsers(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	base := redistest.Prefix(t)
	prefix := base + "[x]*"
	store := redisstore.New(rdb, redisstore.Options{Prefix: prefix})
	const n, users = 4, 2500
	asked := []int32{1, 3}
	expireAt := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	want := map[string]redisstore.StoredUser{}
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range users {
			name := fmt.Sprintf("u%d/é", i) // escaped in keys
			key := prefix + ":{" + schemas.UserKey("chat", name) + "}"
			p.HSet(ctx, key, "v", i, "ss1", "web")
			u := redisstore.StoredUser{App: "chat", User: name, Fields: map[string]string{"v": fmt.Sprint(i), "ss1": "web"},
				Partition: int32(schemas.Partition([]byte(schemas.UserKey("chat", name)), n))}
			if i%2 == 0 {
				p.PExpireAt(ctx, key, expireAt)
				u.ExpireAt = expireAt
			}
			p.SAdd(ctx, key+":f", "friend")
			if slices.Contains(asked, u.Partition) {
				want[name] = u
			}
		}
		p.HSet(ctx, prefix+":{chat/a/b}", "v", 1)      // three ids
		p.HSet(ctx, base+"x-other:{chat/zed}", "v", 1) // another prefix
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]redisstore.StoredUser{}
	err = store.ScanUsers(ctx, n, asked, func(u redisstore.StoredUser) error {
		if _, ok := got[u.User]; ok {
			return fmt.Errorf("%s found twice", u.User)
		}
		got[u.User] = u
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) < users/4 {
		t.Fatalf("found %d users, want %d (of %d)", len(got), len(want), users)
	}
	for name, w := range want {
		g := got[name]
		if g.App != w.App || g.Partition != w.Partition || !g.ExpireAt.Equal(w.ExpireAt) || !maps.Equal(g.Fields, w.Fields) {
			t.Fatalf("user %s: found %+v, want %+v", name, g, w)
		}
	}
}

// ScanUsers stops at the first error of its callback, and returns it, and
// fails on a user key that does not hold a hash rather than restore less.
func TestScanUsersFails(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t)
	store := redisstore.New(rdb, redisstore.Options{Prefix: prefix})
	for i := range 3000 {
		if err := rdb.HSet(ctx, fmt.Sprintf("%s:{chat/u%d}", prefix, i), "v", i).Err(); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := store.ScanUsers(ctx, 1, []int32{0}, func(redisstore.StoredUser) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ScanUsers = %v after %d calls, want the callback's error after one", err, calls)
	}
	if err := rdb.Set(ctx, prefix+":{chat/str}", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	err = store.ScanUsers(ctx, 1, []int32{0}, func(redisstore.StoredUser) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("ScanUsers over a string at a user's key = %v, want WRONGTYPE", err)
	}
}
