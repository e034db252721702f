package schemas

import (
	"strconv"
	"time"
)

// Topic names.
const (
	// SessionsTopic holds connect and disconnect records (SessionEvent),
	// keyed by SessionKey.
	SessionsTopic = "presence.sessions"
	// GatewaysTopic holds gateway heartbeats (GatewayHeartbeat), keyed by
	// the gateway id.
	GatewaysTopic = "presence.gateways"
	// FriendsTopic holds friendships (FriendEdge), keyed by FriendKey.
	FriendsTopic = "presence.friends"
	// SubscriptionsTopic holds temporary subscriptions (Subscription),
	// keyed by SubscriptionKey.
	SubscriptionsTopic = "presence.subscriptions"
	// NotifyTopic holds the notifications the processor emits
	// (Notification), keyed by NotifyKey. It is not compacted: a
	// notification matters for seconds, and a gateway reads it from the
	// end.
	NotifyTopic = "presence.notify"
	// ChangesTopic holds every visible change of a user (StatusChange),
	// keyed by UserKey, in the partition of the user's sessions: what the
	// query API's watch and webhooks follow.
	ChangesTopic = "presence.changes"
	// DeadLetterTopic holds the records of the consumed topics the
	// processor could not apply (too large, in the wrong partition, with a
	// key not in canonical form, they do not decode, or are invalid), as
	// they were up to a bound, with headers saying where they came from
	// and why (DeadLetter* headers). It is kept for DeadLetterRetention.
	DeadLetterTopic = "presence.deadletter"
)

// Headers of a record on DeadLetterTopic.
const (
	// DeadLetterReason says why the record was not applied.
	DeadLetterReason = "presence-reason"
	// DeadLetterSource is "<topic>/<partition>/<offset>" of the record.
	DeadLetterSource = "presence-source"
	// DeadLetterTruncated is on a copy cut short (its key, value or
	// headers): the size in bytes of the original record's key, value and
	// headers, in decimal. The whole record is at DeadLetterSource.
	DeadLetterTruncated = "presence-truncated"
)

// ChangesRetention is how long ChangesTopic keeps a change: a webhook
// endpoint or a query API down for less than this resumes where it was.
const ChangesRetention = 24 * time.Hour

// DeadLetterRetention is how long DeadLetterTopic keeps a record: long
// enough for an operator to look at it after a weekend.
const DeadLetterRetention = 7 * 24 * time.Hour

// StateTopics are the compacted topics the processor materializes into
// Redis; replaying them rebuilds all state.
var StateTopics = []string{SessionsTopic, FriendsTopic, SubscriptionsTopic}

// DefaultPartitions is the partition count of topics created by Presence.
// It bounds how many processors can share the work; pick it for the
// largest deployment you expect. Growing it moves users between
// partitions: the processor sends a record in a partition its key no
// longer belongs to the dead letters, so grow by copying the state topics
// into topics of the new count.
const DefaultPartitions = 12

// Topic is what Presence creates when a topic is missing.
type Topic struct {
	Name       string
	Partitions int32
	Configs    map[string]string
}

// Topics returns the topics Presence uses, with partitions partitions each
// (DefaultPartitions when partitions is not positive).
func Topics(partitions int32) []Topic {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	return []Topic{
		{Name: SessionsTopic, Partitions: partitions, Configs: compacted()},
		{Name: GatewaysTopic, Partitions: partitions, Configs: compacted()},
		{Name: FriendsTopic, Partitions: partitions, Configs: compacted()},
		{Name: SubscriptionsTopic, Partitions: partitions, Configs: compacted()},
		{Name: NotifyTopic, Partitions: partitions, Configs: map[string]string{
			"cleanup.policy": "delete",
			"retention.ms":   strconv.Itoa(60 * 60 * 1000),
			"segment.ms":     strconv.Itoa(10 * 60 * 1000),
		}},
		{Name: ChangesTopic, Partitions: partitions, Configs: map[string]string{
			"cleanup.policy": "delete",
			"retention.ms":   strconv.FormatInt(ChangesRetention.Milliseconds(), 10),
			"segment.ms":     strconv.Itoa(60 * 60 * 1000),
		}},
		{Name: DeadLetterTopic, Partitions: partitions, Configs: map[string]string{
			"cleanup.policy": "delete",
			"retention.ms":   strconv.FormatInt(DeadLetterRetention.Milliseconds(), 10),
		}},
	}
}

// compacted are the settings of a compacted topic: keep the latest record
// per key forever, roll segments hourly so the cleaner can work on them,
// and keep tombstones a day so that consumers that lag see deletions.
func compacted() map[string]string {
	return map[string]string{
		"cleanup.policy":            "compact",
		"segment.ms":                strconv.Itoa(60 * 60 * 1000),
		"delete.retention.ms":       strconv.Itoa(24 * 60 * 60 * 1000),
		"min.cleanable.dirty.ratio": "0.5",
	}
}
