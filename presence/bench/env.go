package bench

// The environment a run measures: one Redis (one server or a cluster) for
// the whole run, flushed between phases, and a Kafka per scenario.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/processor"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/records"
)

// redisPoolSize is the most connections to Redis at once (to each master
// of a cluster): the processor applies up to a partition count of
// pipelines at once, the query API serves every client at once.
const redisPoolSize = 64

// env is the Redis and Kafka of a run.
type env struct {
	cfg          Config
	out          *progress
	server       *redistest.Server // nil with an external Redis
	redisURL     string
	redisVersion string
	// rdb is one server's client or a cluster's: what is said of "the
	// database" below is, on a cluster, of database 0 of every master.
	rdb     redis.UniversalClient
	masters int // 0 for one server
	// emptied: the external Redis's database was found empty, so that
	// what it holds now is the run's.
	emptied bool
}

// newEnv starts a redis-server unless cfg names a Redis (one server or a
// cluster), and checks that a Redis or Kafka given holds nothing the run
// would destroy.
func newEnv(ctx context.Context, cfg Config, out *progress) (*env, error) {
	e := &env{cfg: cfg, out: out, redisURL: cfg.RedisURL}
	if e.redisURL == "" {
		s, err := redistest.StartWith(redistest.Options{})
		if err != nil {
			return nil, fmt.Errorf("starting a redis-server for the run (or give one with --redis-url): %w", err)
		}
		e.server, e.redisURL = s, s.URL()
	}
	var err error
	if e.rdb, err = dial(ctx, e.redisURL); err != nil {
		e.close()
		return nil, err
	}
	if err := e.check(ctx); err != nil {
		e.close()
		return nil, err
	}
	kind := ""
	if e.masters > 0 {
		kind = fmt.Sprintf(" (a cluster of %d masters)", e.masters)
	}
	out.printf("redis %s at %s%s, kafka %s", e.redisVersion, redisstore.RedactURL(e.redisURL), kind, e.kafkaKind())
	return e, nil
}

// check reads the version of Redis and refuses a Redis database or a Kafka
// that holds anything.
func (e *env) check(ctx context.Context) error {
	var mu sync.Mutex
	var versions []string
	err := redisstore.ForEachNode(ctx, e.rdb, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		versions = append(versions, infoField(info, "redis_version"))
		return nil
	})
	if err != nil {
		return fmt.Errorf("reaching redis at %s: %w", redisstore.RedactURL(e.redisURL), err)
	}
	if _, cluster := e.rdb.(*redis.ClusterClient); cluster {
		e.masters = len(versions)
	}
	slices.Sort(versions)
	e.redisVersion = strings.Join(slices.Compact(versions), ", ")
	if e.server == nil {
		n, err := e.countKeys(ctx)
		if err != nil {
			return fmt.Errorf("redis at %s: %w", redisstore.RedactURL(e.redisURL), err)
		}
		if n > 0 && e.masters > 0 {
			return fmt.Errorf("redis at %s holds %d keys on its %d masters: the bench flushes every master between phases, "+
				"so give it an empty cluster, or no --redis-url", redisstore.RedactURL(e.redisURL), n, e.masters)
		}
		if n > 0 {
			return fmt.Errorf("redis at %s holds %d keys in its database: the bench flushes the database between phases, "+
				"so give it an empty one (another database number, such as redis://host:6379/15, or no --redis-url)", redisstore.RedactURL(e.redisURL), n)
		}
		e.emptied = true
	}
	if len(e.cfg.Brokers) > 0 {
		return e.checkKafka(ctx)
	}
	return nil
}

// checkKafka refuses an external Kafka that holds Presence topics.
func (e *env) checkKafka(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.cfg.Brokers...)}, e.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	names, err := heldTopics(ctx, kadm.NewClient(cl))
	if err != nil {
		return fmt.Errorf("listing the topics of kafka %s: %w", strings.Join(e.cfg.Brokers, ","), err)
	}
	if len(names) > 0 {
		return fmt.Errorf("kafka %s holds Presence topics (%s): the bench creates them and deletes them after each scenario, "+
			"so give it a Kafka of its own, or no --brokers", strings.Join(e.cfg.Brokers, ","), strings.Join(names, ", "))
	}
	return nil
}

func (e *env) kafkaKind() string {
	if len(e.cfg.Brokers) > 0 {
		return strings.Join(e.cfg.Brokers, ",")
	}
	return "in-process (kfake)"
}

// close stops what the env started, and empties the database of an
// external Redis, which was empty before the run.
func (e *env) close() {
	if e.rdb != nil {
		if e.server == nil && e.emptied {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_ = e.flush(ctx)
			cancel()
		}
		e.rdb.Close()
	}
	if e.server != nil {
		e.server.Stop()
	}
}

// store is redisstore over the run's Redis, with its default layout. It
// shares the env's client: do not close it.
func (e *env) store() *redisstore.Store {
	return redisstore.New(e.rdb, redisstore.Options{})
}

// kafka is the Kafka of one scenario, its Presence topics created.
type kafka struct {
	brokers []string
	opts    []kgo.Opt      // of every client: the run's KafkaOpts with an external Kafka
	cluster *kfake.Cluster // nil with an external Kafka
	adm     *kadm.Client
	admCl   *kgo.Client
}

// kafka starts a scenario: it empties Redis, starts an in-process Kafka
// (or checks the external one), and creates the Presence topics as the
// processor does.
func (e *env) kafka(ctx context.Context) (*kafka, error) {
	if err := e.flush(ctx); err != nil {
		return nil, err
	}
	k := &kafka{brokers: e.cfg.Brokers}
	if len(k.brokers) == 0 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return nil, fmt.Errorf("starting in-process kafka: %w", err)
		}
		k.cluster, k.brokers = c, c.ListenAddrs()
	} else if err := e.checkKafka(ctx); err != nil {
		return nil, err
	} else {
		k.opts = e.cfg.KafkaOpts
	}
	cl, err := k.client()
	if err != nil {
		k.close()
		return nil, err
	}
	k.admCl, k.adm = cl, kadm.NewClient(cl)
	if err := processor.EnsureTopics(ctx, cl, e.cfg.Partitions); err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

// client is a plain Kafka client that partitions as the schemas say.
func (k *kafka) client(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(k.brokers...),
		kgo.RecordPartitioner(records.Partitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}, append(slices.Clone(k.opts), opts...)...)...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka client: %w", err)
	}
	return cl, nil
}

// ends returns the end offset of each partition of topic.
func (k *kafka) ends(ctx context.Context, topic string) (map[int32]int64, error) {
	listed, err := k.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing the end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	var lerr error
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			lerr = fmt.Errorf("listing the end offset of %s/%d: %w", topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out, lerr
}

// close stops the in-process Kafka, or deletes the Presence topics of the
// external one and waits until they are gone.
func (k *kafka) close() {
	if k.cluster != nil {
		if k.admCl != nil {
			k.admCl.Close()
		}
		k.cluster.Close()
		return
	}
	if k.admCl == nil {
		return
	}
	defer k.admCl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = k.adm.DeleteTopics(ctx, presenceTopics()...)
	for ctx.Err() == nil {
		if names, err := heldTopics(ctx, k.adm); err == nil && len(names) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// heldTopics returns the Presence topics that exist.
func heldTopics(ctx context.Context, adm *kadm.Client) ([]string, error) {
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	var held []string
	for _, name := range topics.Names() {
		if slices.Contains(presenceTopics(), name) {
			held = append(held, name)
		}
	}
	return held, nil
}

// presenceTopics are the names of every topic Presence creates.
func presenceTopics() []string {
	var names []string
	for _, t := range schemas.Topics(1) {
		names = append(names, t.Name)
	}
	return names
}
