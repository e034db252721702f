package queryapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/queryapi/watch"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/httpapi"
)

// GET /v1/ops is the operators' view the console's Operations panel
// shows: per partition of the state topics, the processors' checkpoint in
// Redis, the topic's end in Kafka, the lag between them and the rebuild
// under way; each gateway's latest heartbeat on presence.gateways with
// its lease; and the users coming online and going offline per second
// over the last minute, counted from presence.changes as the watch feed
// reads it. It is of the whole deployment, not of one app: it needs a key
// of scope read or backend (of any app); a user's token is refused. It
// holds no user's data.
//
// The heartbeats are read on each call, from the start of every
// partition of presence.gateways (compacted: one record per gateway) to
// its end, by a short-lived consumer bounded by OpsReadTimeout and
// OpsMaxRecords; one such read runs at a time.
const (
	// OpsReadTimeout bounds one read of Kafka and Redis for GET /v1/ops.
	OpsReadTimeout = 3 * time.Second
	// OpsMaxRecords bounds the records of presence.gateways one call
	// reads; beyond, the answer says gateways_truncated.
	OpsMaxRecords = 10_000
)

type opsPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Checkpoint is the offset of the first record the state does not
	// hold; nil when the partition is not built.
	Checkpoint *int64 `json:"checkpoint"`
	// End is the partition's end offset in Kafka; nil when unknown.
	End *int64 `json:"end"`
	// Lag is End minus Checkpoint, when both are known.
	Lag *int64 `json:"lag"`
	// RebuildTarget is, while the partition is rebuilt, the offset the
	// rebuild must reach; nil otherwise.
	Rebuilding    bool   `json:"rebuilding"`
	RebuildTarget *int64 `json:"rebuild_target"`
	// Processor is the member of the processors' consumer group the
	// partition is assigned to (its instance id, else its client id, and
	// its host), "" while none holds it.
	Processor string `json:"processor"`
}

type opsGateway struct {
	Gateway   string    `json:"gateway"`
	Epoch     string    `json:"epoch"`
	Heartbeat time.Time `json:"heartbeat"`
	LeaseMS   int64     `json:"lease_ms"`
	Expires   time.Time `json:"expires"`
	Expired   bool      `json:"expired"`
}

type opsResponse struct {
	Partitions        []opsPartition `json:"partitions"`
	Gateways          []opsGateway   `json:"gateways"`
	GatewaysTruncated bool           `json:"gateways_truncated"`
	// Transitions are users coming online / going offline per second.
	Transitions []watch.Second `json:"transitions"`
}

// opsAllowed refuses a caller that is not a key of scope read or backend,
// when the server checks credentials.
func (s *Server) opsAllowed(r *http.Request) error {
	if s.auth == nil {
		return nil
	}
	id, err := s.auth.Authenticate(r)
	if err != nil {
		return err
	}
	if id.KeyID == "" {
		return httpapi.Errorf(httpapi.CodeForbidden, "a user token may not read the operations view: it needs a key of scope \"read\" or \"backend\"")
	}
	if !id.Has(auth.ScopeRead) && !id.Has(auth.ScopeBackend) {
		return httpapi.Errorf(httpapi.CodeForbidden, fmt.Sprintf("%s lacks scope \"read\" or \"backend\"", id))
	}
	return nil
}

// ops answers GET /v1/ops.
func (s *Server) ops(w http.ResponseWriter, r *http.Request) error {
	if err := s.opsAllowed(r); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), OpsReadTimeout)
	defer cancel()
	select {
	case s.opsRead <- struct{}{}:
		defer func() { <-s.opsRead }()
	case <-ctx.Done():
		return httpapi.Errorf(httpapi.CodeUnavailable, "another read of the operations view is under way; retry later")
	}
	adm := kadm.NewClient(s.kafka)
	// A group Kafka does not know (no processor has joined yet), or
	// cannot describe, leaves the partitions' processor empty.
	holders, err := s.processors(ctx, adm)
	if err != nil {
		s.log.Debug("describing the processors' group failed", "group", s.processorGroup, "err", err)
	}
	ends, err := adm.ListEndOffsets(ctx, schemas.StateTopics...)
	if err != nil {
		return fmt.Errorf("%w (%w)", httpapi.Errorf(httpapi.CodeUnavailable, "kafka did not list the topics' ends; retry later"), err)
	}
	out := opsResponse{Partitions: []opsPartition{}, Transitions: s.feed.Transitions()}
	for _, topic := range schemas.StateTopics {
		cp, err := s.store.Checkpoint(ctx, topic)
		if err != nil {
			return unavailable(err)
		}
		n := int32(cp.Partitions)
		for p := range ends[topic] {
			n = max(n, p+1)
		}
		for p := range n {
			op := opsPartition{Topic: topic, Partition: p}
			if next, ok := cp.Next[p]; ok {
				op.Checkpoint = &next
			}
			if end, ok := ends.Lookup(topic, p); ok && end.Err == nil {
				op.End = &end.Offset
			}
			if op.Checkpoint != nil && op.End != nil {
				lag := max(*op.End-*op.Checkpoint, 0)
				op.Lag = &lag
			}
			if target, ok := cp.Rebuild[p]; ok {
				op.Rebuilding, op.RebuildTarget = true, &target
			}
			op.Processor = holders[topic][p]
			out.Partitions = append(out.Partitions, op)
		}
	}
	// Gateways write heartbeats in transactions: read up to the last
	// stable offset, committed records only.
	stable, err := adm.ListCommittedOffsets(ctx, schemas.GatewaysTopic)
	if err != nil {
		return fmt.Errorf("%w (%w)", httpapi.Errorf(httpapi.CodeUnavailable, "kafka did not list the ends of presence.gateways; retry later"), err)
	}
	out.Gateways, out.GatewaysTruncated, err = s.gateways(ctx, stable)
	if err != nil {
		return fmt.Errorf("%w (%w)", httpapi.Errorf(httpapi.CodeUnavailable, "kafka did not answer the read of presence.gateways; retry later"), err)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// processors returns, by topic and partition, the member of the
// processors' consumer group (Config.ProcessorGroup) that holds it.
func (s *Server) processors(ctx context.Context, adm *kadm.Client) (map[string]map[int32]string, error) {
	described, err := adm.DescribeGroups(ctx, s.processorGroup)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]string{}
	for _, g := range described {
		if g.Err != nil {
			return nil, g.Err
		}
		for _, m := range g.Members {
			c, ok := m.Assigned.AsConsumer()
			if !ok {
				continue
			}
			name := m.ClientID
			if m.InstanceID != nil {
				name = *m.InstanceID
			}
			name += " (" + m.ClientHost + ")"
			for _, t := range c.Topics {
				if out[t.Topic] == nil {
					out[t.Topic] = map[int32]string{}
				}
				for _, p := range t.Partitions {
					out[t.Topic][p] = name
				}
			}
		}
	}
	return out, nil
}

// gateways reads the latest heartbeat of each gateway from the start of
// presence.gateways to ends (its last stable offsets), at most
// OpsMaxRecords records; truncated
// says it stopped before the ends. A record that does not decode, or a
// tombstone, leaves its gateway out.
func (s *Server) gateways(ctx context.Context, ends kadm.ListedOffsets) ([]opsGateway, bool, error) {
	want := map[int32]kgo.Offset{}
	left := map[int32]int64{} // the end of each partition not read yet
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == schemas.GatewaysTopic && o.Err == nil && o.Offset > 0 {
			want[o.Partition] = kgo.NewOffset().AtStart()
			left[o.Partition] = o.Offset
		}
	})
	latest := map[string]*pb.GatewayHeartbeat{}
	truncated := false
	if len(want) > 0 {
		// Control records are kept so that the read sees the ends, which
		// a transaction's marker may be.
		cl, err := kgo.NewClient(append(slices.Clone(s.kafkaOpts), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.GatewaysTopic: want}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
		if err != nil {
			return nil, false, err
		}
		defer cl.Close()
		read := 0
		for len(left) > 0 {
			if read >= OpsMaxRecords {
				truncated = true
				break
			}
			fetches := cl.PollRecords(ctx, OpsMaxRecords-read)
			if ctx.Err() != nil {
				truncated = true
				break
			}
			if err := fetches.Err0(); err != nil {
				return nil, false, err
			}
			fetches.EachRecord(func(rec *kgo.Record) {
				read++
				if end, ok := left[rec.Partition]; ok && rec.Offset+1 >= end {
					delete(left, rec.Partition)
				}
				if rec.Attrs.IsControl() {
					return
				}
				var hb pb.GatewayHeartbeat
				if rec.Value == nil || proto.Unmarshal(rec.Value, &hb) != nil || schemas.ValidateHeartbeat(&hb) != nil || hb.GetGateway() != string(rec.Key) {
					delete(latest, string(rec.Key))
					return
				}
				latest[string(rec.Key)] = &hb
			})
		}
	}
	now := s.now()
	out := make([]opsGateway, 0, len(latest))
	for _, hb := range latest {
		at := time.UnixMilli(hb.GetTimestampMs()).UTC()
		expires := at.Add(time.Duration(hb.GetLeaseMs()) * time.Millisecond)
		out = append(out, opsGateway{Gateway: hb.GetGateway(), Epoch: hb.GetEpoch(), Heartbeat: at,
			LeaseMS: hb.GetLeaseMs(), Expires: expires, Expired: !now.Before(expires)})
	}
	slices.SortFunc(out, func(a, b opsGateway) int { return strings.Compare(a.Gateway, b.Gateway) })
	return out, truncated, nil
}
