package schemas

import "strconv"

// Topic names.
const (
	// SessionsTopic holds connect and disconnect records (SessionEvent),
	// keyed by SessionKey.
	SessionsTopic = "presence.sessions"
	// GatewaysTopic holds gateway heartbeats (GatewayHeartbeat), keyed by
	// the gateway id.
	GatewaysTopic = "presence.gateways"
)

// DefaultPartitions is the partition count of topics created by Presence.
// It bounds how many processors can share the work; it can grow later, but
// growing it moves users between partitions, so pick it for the largest
// deployment you expect.
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
