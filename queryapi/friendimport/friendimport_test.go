package friendimport_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/queryapi/friendimport"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

func TestRead(t *testing.T) {
	for _, c := range []struct {
		name, csv string
		edges     int
	}{
		{"header", "user,friend\nalice,bob\nbob,carol\n", 2},
		{"no header", "alice,bob", 1},
		{"byte order mark, CRLF", "\uFEFFuser,friend\r\nalice,bob\r\n", 1},
		{"quoted ids, blank lines", "\"a,b\",\"say \"\"hi\"\"\"\n\nalice,a/b%c\n", 2},
		{"same edge twice", "alice,bob\nbob,alice\n", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, err := friendimport.Read(strings.NewReader(c.csv), "chat")
			if err != nil {
				t.Fatal(err)
			}
			if in.Edges() != c.edges {
				t.Errorf("%d edges, want %d", in.Edges(), c.edges)
			}
		})
	}
}

// A bad line is named by its number.
func TestReadBadLine(t *testing.T) {
	for _, c := range []struct {
		name, csv, want string
		invalid         bool
	}{
		{"own friend", "user,friend\nalice,bob\nbob,bob\n", "line 3", true},
		{"one field", "alice,bob\ncarol\n", "line 2", false},
		{"three fields", "alice,bob,carol\n", "line 1", false},
		{"empty id", "alice,bob\n\nbob,\n", "line 3", true},
		{"long id", "alice," + strings.Repeat("x", 129) + "\n", "line 1", true},
		{"control character", "alice,bo\x01b\n", "line 1", true},
		{"invalid utf-8", "alice,bo\xffb\n", "line 1", true},
		{"space after comma", "alice,bob\nalice, carol\n", "line 2", true},
		{"bad quote", "alice,bob\nal\"ice,bob\n", "line 2", false},
		{"header not first", "alice,bob\nuser,friend\nuser,user\n", "line 3", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := friendimport.Read(strings.NewReader(c.csv), "chat")
			if err == nil || !strings.HasPrefix(err.Error(), c.want+":") {
				t.Fatalf("got %v, want an error starting %q", err, c.want)
			}
			if c.invalid && !errors.Is(err, schemas.ErrInvalid) {
				t.Errorf("%v does not wrap schemas.ErrInvalid", err)
			}
		})
	}
	if _, err := friendimport.Read(strings.NewReader("user,friend\n"), "chat"); err == nil {
		t.Error("a list without friendships was accepted")
	}
	if _, err := friendimport.Read(strings.NewReader("alice,bob\n"), "bad app"); !errors.Is(err, schemas.ErrInvalid) {
		t.Errorf("bad app: got %v", err)
	}
}

const partitions = 4

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.FriendsTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Every friendship becomes two records, each in its user's partition, and
// importing the list again writes the same keys.
func TestImport(t *testing.T) {
	c := newCluster(t)
	in, err := friendimport.Read(strings.NewReader("user,friend\nalice,bob\n\"a,b\",alice\ncarol,dave\n"), "chat")
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_800_000_000_000)
	var progress bytes.Buffer
	cfg := friendimport.Config{Brokers: c.ListenAddrs(), MaxBuffered: 2, Progress: &progress, Now: func() time.Time { return at }}
	sum, err := friendimport.Import(context.Background(), cfg, in)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Edges != 3 || sum.Records != 6 || !strings.Contains(sum.String(), "3 edges (6 records)") {
		t.Errorf("summary %+v (%s), want 3 edges, 6 records", sum, sum)
	}

	recs := readAll(t, c)
	var keys []string
	for _, r := range recs {
		keys = append(keys, string(r.Key))
		if want := int32(schemas.Partition(r.Key, partitions)); r.Partition != want {
			t.Errorf("record %q in partition %d, want %d", r.Key, r.Partition, want)
		}
		var e pb.FriendEdge
		if err := proto.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != schemas.FriendKey("chat", e.User, e.Friend) || e.App != "chat" || e.TimestampMs != at.UnixMilli() {
			t.Errorf("record %q holds %v", r.Key, &e)
		}
	}
	slices.Sort(keys)
	want := []string{"chat/a,b/alice", "chat/alice/a,b", "chat/alice/bob", "chat/bob/alice", "chat/carol/dave", "chat/dave/carol"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %q, want %q", keys, want)
	}

	if _, err := friendimport.Import(context.Background(), cfg, in); err != nil {
		t.Fatal(err)
	}
	again := map[string]int{}
	for _, r := range readAll(t, c) {
		again[string(r.Key)]++
	}
	for _, k := range want {
		if again[k] != 2 {
			t.Errorf("after a second import, %d records with key %q, want 2", again[k], k)
		}
	}
}

// With no friends topic, the records fail (at once: the client is told not
// to wait for the topic to appear) and the import says so.
func TestImportFails(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in, err := friendimport.Read(strings.NewReader("alice,bob\n"), "chat")
	if err != nil {
		t.Fatal(err)
	}
	cfg := friendimport.Config{Brokers: c.ListenAddrs(), KafkaOpts: []kgo.Opt{kgo.UnknownTopicRetries(0)}}
	sum, err := friendimport.Import(context.Background(), cfg, in)
	if err == nil || sum.Records != 0 || !strings.Contains(err.Error(), "0 of 1 edges written") {
		t.Fatalf("got %+v, %v; want an error saying nothing was written", sum, err)
	}
}

func readAll(t *testing.T, c *kfake.Cluster) []*kgo.Record {
	t.Helper()
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
	var recs []*kgo.Record
	for int64(len(recs)) < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(recs), total, ctx.Err())
		}
		recs = append(recs, fetches.Records()...)
	}
	return recs
}
