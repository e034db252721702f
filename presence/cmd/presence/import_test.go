package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
)

// importFriends runs `presence import-friends` on a CSV file against a
// fresh Kafka, and returns the keys of the records of presence.friends
// (by partition, checked against schemas.Partition), stderr and the error.
func importFriends(t *testing.T, csv string) ([]string, string, error) {
	t.Helper()
	const partitions = 5
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.FriendsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	file := filepath.Join(t.TempDir(), "friends.csv")
	if err := os.WriteFile(file, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PRESENCE_BROKERS": strings.Join(c.ListenAddrs(), ",")}
	var stdout, stderr bytes.Buffer
	runErr := run(context.Background(), []string{"import-friends", "--app", "chat", "--file", file},
		func(k string) string { return env[k] }, &stdout, &stderr)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(schemas.FriendsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, schemas.FriendsTopic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var keys []string
	for int64(len(keys)) < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(keys), total, ctx.Err())
		}
		fetches.EachRecord(func(r *kgo.Record) {
			keys = append(keys, string(r.Key))
			if want := int32(schemas.Partition(r.Key, partitions)); r.Partition != want {
				t.Errorf("record %q in partition %d, want %d", r.Key, r.Partition, want)
			}
		})
	}
	slices.Sort(keys)
	return keys, stderr.String(), runErr
}

func TestImportFriends(t *testing.T) {
	keys, stderr, err := importFriends(t, "user,friend\nalice,bob\ncarol,alice\n")
	if err != nil {
		t.Fatalf("import-friends: %v\n%s", err, stderr)
	}
	want := []string{"chat/alice/bob", "chat/alice/carol", "chat/bob/alice", "chat/carol/alice"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %q, want both halves of each edge %q", keys, want)
	}
	if !strings.Contains(stderr, "imported 2 edges (4 records)") {
		t.Errorf("no summary on stderr:\n%s", stderr)
	}
}

func TestImportFriendsBadLine(t *testing.T) {
	keys, stderr, err := importFriends(t, "user,friend\nalice,bob\ncarol\ndave,erin\n")
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("got %v, want an error naming line 3\n%s", err, stderr)
	}
	if len(keys) != 0 {
		t.Errorf("a bad line still wrote %q", keys)
	}
}

func TestImportFriendsUsage(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no brokers", []string{"import-friends", "--app", "chat"}, "--brokers is required"},
		{"no app", []string{"import-friends", "--brokers", "127.0.0.1:1"}, "--app is required"},
		{"stray argument", []string{"import-friends", "--brokers", "127.0.0.1:1", "--app", "chat", "friends.csv"}, "takes no arguments"},
		{"missing file", []string{"import-friends", "--brokers", "127.0.0.1:1", "--app", "chat", "--file", "/nonexistent/friends.csv"}, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), c.args, func(string) string { return "" }, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"import-friends", "--help"}, func(string) string { return "" }, &stdout, &stderr)
	for _, f := range []string{"brokers", "app", "file"} {
		if !strings.Contains(stderr.String(), "--"+f+" (PRESENCE_") {
			t.Errorf("presence import-friends --help does not list --%s:\n%s", f, stderr.String())
		}
	}
	if err := run(context.Background(), []string{"help"}, func(string) string { return "" }, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "import-friends") {
		t.Errorf("presence help does not list import-friends: %v\n%s", err, stdout.String())
	}
}
