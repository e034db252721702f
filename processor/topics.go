package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/presence-im/presence/schemas"
)

// EnsureTopics creates the Presence topics that are missing, compacted as
// schemas.Topics says, with partitions partitions each (the schemas
// default when not positive). Existing topics are left as they are.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32) error {
	adm := kadm.NewClient(cl)
	for _, t := range schemas.Topics(partitions) {
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
	return nil
}
