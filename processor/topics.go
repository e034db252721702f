package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
)

// ErrNotCompacted is returned when a Presence topic exists without
// cleanup.policy=compact: retention would delete sessions that are still
// live, and a replay would lose them.
var ErrNotCompacted = errors.New("topic is not compacted")

// EnsureTopics creates the Presence topics that are missing, configured as
// schemas.Topics says, with partitions partitions each (the schemas
// default when not positive). Existing topics are left as they are, but
// those meant to be compacted must be.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32) error {
	adm := kadm.NewClient(cl)
	topics := schemas.Topics(partitions)
	for _, t := range topics {
		configs := make(map[string]*string, len(t.Configs))
		for k, v := range t.Configs {
			configs[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(ctx, t.Partitions, -1, configs, t.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", t.Name, err)
		}
	}
	var names []string
	for _, t := range topics {
		if t.Configs["cleanup.policy"] == "compact" {
			names = append(names, t.Name)
		}
	}
	described, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return fmt.Errorf("describing topics: %w", err)
	}
	for _, rc := range described {
		if rc.Err != nil {
			return fmt.Errorf("describing topic %s: %w", rc.Name, rc.Err)
		}
		policy := "delete" // Kafka's default when the topic does not say
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" {
				policy = c.MaybeValue()
			}
		}
		if !slices.Contains(strings.Split(policy, ","), "compact") {
			return fmt.Errorf("%w: %s has cleanup.policy=%s; set it to compact", ErrNotCompacted, rc.Name, policy)
		}
	}
	return nil
}
