package redisstore

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
)

// The sessions of each gateway, so that those of a lost gateway can be
// ended (see the processor's leases):
//
//	P:gw:{<gateway>}:<bucket>  hash: session key -> "<epoch>\x1f<connected at ms>"
//	P:gateways:<n>             sets: the gateways with sessions in a P:gw
//	                           hash, each in set n = hash(gateway) mod 64
//
// The gateways are spread over gatewaySets sets, written with every batch
// that connects a session, so that on a Redis Cluster they spread over the
// masters rather than make one slot hot; P:gateways, the one set releases
// before wrote, is still read and cleaned up.
//
// A gateway's sessions are spread over gatewayBuckets hashes, so that
// each stays small enough for Redis's compact encoding (listpack, up to
// hash-max-listpack-entries fields, 128 by default): about 70 bytes per
// session instead of about 114 in one big hash. A session's bucket follows
// its partition (one of 16 groups of 256 buckets), so that a batch of
// records, all of one partition, writes at most 256 hashes per gateway
// rather than one per record. With 12 partitions or more that holds about
// 300,000 sessions per gateway compactly; raise hash-max-listpack-entries
// for bigger gateways.
//
// The index is written beside each session change, not atomically with
// it (a gateway's sessions span every slot), so it is a hint: it may name
// a session that has ended. Read the session's state before acting on it.

// gatewayBuckets is how many hashes hold the sessions of one gateway:
// 16 groups of 256.
const gatewayBuckets = 16 * 256

// legacyBucket stands for P:gw:{<gateway>}, the one hash of a gateway's
// sessions that releases before the buckets wrote: it is read and cleaned
// up with the buckets, so that the sessions indexed before an upgrade are
// ended too when their gateway is lost. Nothing writes it any more.
const legacyBucket = gatewayBuckets

func (s *Store) gatewayKey(gateway string, bucket uint32) string {
	if bucket == legacyBucket {
		return s.prefix + ":gw:{" + gateway + "}"
	}
	return s.prefix + ":gw:{" + gateway + "}:" + strconv.FormatUint(uint64(bucket), 10)
}

// gatewaySets is how many sets hold the gateways.
const gatewaySets = 64

// gatewaysKey is the set that holds gateway.
func (s *Store) gatewaysKey(gateway string) string {
	h := fnv.New32a()
	h.Write([]byte(gateway))
	return s.prefix + ":gateways:" + strconv.FormatUint(uint64(h.Sum32()%gatewaySets), 10)
}

// allGatewaysKeys are every set of gateways, the legacy one last.
func (s *Store) allGatewaysKeys() []string {
	keys := make([]string, gatewaySets+1)
	for n := range gatewaySets {
		keys[n] = s.prefix + ":gateways:" + strconv.Itoa(n)
	}
	keys[gatewaySets] = s.prefix + ":gateways"
	return keys
}

// gatewayBucket is the bucket of a session key in partition.
func gatewayBucket(partition int32, sessionKey string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(sessionKey))
	return uint32(partition)%16*256 + h.Sum32()%256
}

// gatewayKeys returns the keys of every bucket of gateway, the legacy one
// last.
func (s *Store) gatewayKeys(gateway string) []string {
	keys := make([]string, gatewayBuckets+1)
	for b := range keys {
		keys[b] = s.gatewayKey(gateway, uint32(b))
	}
	return keys
}

// indexSessions queues in p the index changes that changes make: per
// bucket of a gateway, one write of the sessions they leave connected and
// one delete of those they leave disconnected.
func (s *Store) indexSessions(ctx context.Context, p redis.Pipeliner, changes []Change) {
	type entry struct {
		bucket uint32
		value  string // "" to delete
	}
	index := map[string]map[string]entry{} // gateway -> session key -> entry
	for _, c := range changes {
		if c.Gateway == "" || (c.Op != Connect && c.Op != Disconnect) {
			continue
		}
		if index[c.Gateway] == nil {
			index[c.Gateway] = map[string]entry{}
		}
		key := schemas.SessionKey(c.App, c.User, c.Session)
		e := entry{bucket: gatewayBucket(c.Partition, key)}
		if c.Op == Connect {
			e.value = c.Epoch + sep + strconv.FormatInt(c.At.UnixMilli(), 10)
		}
		index[c.Gateway][key] = e
	}
	for gw, sessions := range index {
		set, del := map[uint32][]any{}, map[uint32][]string{}
		for key, e := range sessions {
			if e.value == "" {
				del[e.bucket] = append(del[e.bucket], key)
			} else {
				set[e.bucket] = append(set[e.bucket], key, e.value)
			}
		}
		for b, fields := range set {
			p.HSet(ctx, s.gatewayKey(gw, b), fields...)
		}
		for b, fields := range del {
			p.HDel(ctx, s.gatewayKey(gw, b), fields...)
		}
		if len(set) > 0 {
			p.SAdd(ctx, s.gatewaysKey(gw), gw)
		}
	}
}

// Gateways returns the gateways that hold, or held, indexed sessions.
func (s *Store) Gateways(ctx context.Context) ([]string, error) {
	keys := s.allGatewaysKeys()
	reads := make([]*redis.StringSliceCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, key := range keys {
			reads[i] = p.SMembers(ctx, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading gateways: %w", err)
	}
	var gws []string
	for _, read := range reads {
		gws = append(gws, read.Val()...)
	}
	slices.Sort(gws)
	return slices.Compact(gws), nil
}

// GatewaySession is a session a gateway's index names.
type GatewaySession struct {
	App, User, Session string
	Epoch              string
	ConnectedAt        time.Time
	// bucket is the hash of the index that names it.
	bucket uint32
}

// GatewaySessions returns the sessions the index of gateway names.
func (s *Store) GatewaySessions(ctx context.Context, gateway string) ([]GatewaySession, error) {
	reads := make([]*redis.MapStringStringCmd, gatewayBuckets+1)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for b, key := range s.gatewayKeys(gateway) {
			reads[b] = p.HGetAll(ctx, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the sessions of gateway %q: %w", gateway, err)
	}
	var out []GatewaySession
	for b, read := range reads {
		for key, value := range read.Val() {
			ids := schemas.SplitKey([]byte(key))
			epoch, at, ok := strings.Cut(value, sep)
			ms, err := strconv.ParseInt(at, 10, 64)
			if len(ids) != 3 || !ok || err != nil {
				continue // not written by indexSessions
			}
			out = append(out, GatewaySession{App: ids[0], User: ids[1], Session: ids[2], Epoch: epoch, ConnectedAt: time.UnixMilli(ms), bucket: uint32(b)})
		}
	}
	return out, nil
}

// Unindex removes sessions, as GatewaySessions returned them, from the
// index of gateway (they ended, or were never on it), and the gateway
// from the set of gateways when its index is empty (gone is true: the gateway is no longer expected to connect
// anyone; a gateway that does is added back by its next connect).
func (s *Store) Unindex(ctx context.Context, gateway string, sessions []GatewaySession, gone bool) error {
	if len(sessions) > 0 {
		fields := map[uint32][]string{}
		for _, gs := range sessions {
			fields[gs.bucket] = append(fields[gs.bucket], schemas.SessionKey(gs.App, gs.User, gs.Session))
		}
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for b, keys := range fields {
				p.HDel(ctx, s.gatewayKey(gateway, b), keys...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("unindexing %d sessions of gateway %q: %w", len(sessions), gateway, err)
		}
	}
	if !gone {
		return nil
	}
	// Remove first, then look: a session indexed meanwhile (its SADD
	// before the SREM) is seen, and the gateway added back. The buckets
	// share a slot, so one EXISTS counts them all.
	keys := s.allGatewaysKeys()
	err := s.rdb.SRem(ctx, s.gatewaysKey(gateway), gateway).Err()
	if err == nil {
		err = s.rdb.SRem(ctx, keys[len(keys)-1], gateway).Err()
	}
	var n int64
	if err == nil {
		n, err = s.rdb.Exists(ctx, s.gatewayKeys(gateway)...).Result()
	}
	if err == nil && n > 0 {
		err = s.rdb.SAdd(ctx, s.gatewaysKey(gateway), gateway).Err()
	}
	if err != nil {
		return fmt.Errorf("forgetting gateway %q: %w", gateway, err)
	}
	return nil
}
