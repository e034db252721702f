package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
)

// DefaultLease is how long a heartbeat keeps a gateway's sessions alive.
const DefaultLease = 30 * time.Second

// DefaultMaxBuffered is how many records a Publisher holds for Kafka at
// most, by default.
const DefaultMaxBuffered = 10_000

// Opt configures a Publisher.
type Opt func(*config)

type config struct {
	brokers     []string
	id, epoch   string
	lease       time.Duration
	maxBuffered int
	now         func() time.Time
	kafkaOpts   []kgo.Opt
	atomic      bool
}

// Brokers sets the Kafka seed brokers. Required.
func Brokers(addrs ...string) Opt { return func(c *config) { c.brokers = addrs } }

// ID sets the gateway's id, stable across restarts of one gateway process.
// Required.
func ID(id string) Opt { return func(c *config) { c.id = id } }

// Epoch sets the gateway's boot epoch. It must change every time the
// gateway process starts; by default a random one is chosen.
func Epoch(epoch string) Opt { return func(c *config) { c.epoch = epoch } }

// Lease sets how long each heartbeat keeps the gateway's sessions alive
// (DefaultLease).
func Lease(d time.Duration) Opt { return func(c *config) { c.lease = d } }

// MaxBuffered bounds the records the publisher holds that Kafka has not
// acknowledged yet (DefaultMaxBuffered): while Kafka is unreachable, a
// Publish that would hold more waits for room until its context ends, and
// fails. It is franz-go's kgo.MaxBufferedRecords. With Atomic, it also
// bounds the records of the publishes one transaction takes together.
func MaxBuffered(n int) Opt { return func(c *config) { c.maxBuffered = n } }

// Clock sets the source of event times (time.Now).
func Clock(now func() time.Time) Opt { return func(c *config) { c.now = now } }

// KafkaOpts adds franz-go options to the producer: TLS, SASL, hooks for
// metrics (such as franz-go's kprom plugin) or logging.
func KafkaOpts(opts ...kgo.Opt) Opt {
	return func(c *config) { c.kafkaOpts = append(c.kafkaOpts, opts...) }
}

func (c *config) validate() error {
	if len(c.brokers) == 0 {
		return errors.New("no brokers: use gateway.Brokers")
	}
	if err := schemas.ValidateID("gateway", c.id); err != nil {
		return fmt.Errorf("gateway.ID: %w", err)
	}
	if c.epoch == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("choosing an epoch: %w", err)
		}
		c.epoch = hex.EncodeToString(b)
	}
	if err := schemas.ValidateID("epoch", c.epoch); err != nil {
		return fmt.Errorf("gateway.Epoch: %w", err)
	}
	if c.lease < 0 {
		return fmt.Errorf("gateway.Lease: negative lease %s", c.lease)
	}
	if c.lease == 0 {
		c.lease = DefaultLease
	}
	if c.maxBuffered < 0 {
		return fmt.Errorf("gateway.MaxBuffered: negative bound %d", c.maxBuffered)
	}
	if c.maxBuffered == 0 {
		c.maxBuffered = DefaultMaxBuffered
	}
	if c.now == nil {
		c.now = time.Now
	}
	return nil
}
