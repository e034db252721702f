package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
)

// The sessions of each gateway, so that those of a lost gateway can be
// ended (see the processor's leases):
//
//	P:gw:{<gateway>}  hash: session key -> "<epoch>\x1f<connected at ms>"
//	P:gateways        set: the gateways with sessions in a P:gw hash
//
// The index is written beside each session change, not atomically with
// it (a gateway's sessions span every slot), so it is a hint: it may name
// a session that has ended. Read the session's state before acting on it.

func (s *Store) gatewayKey(gateway string) string { return s.prefix + ":gw:{" + gateway + "}" }
func (s *Store) gatewaysKey() string              { return s.prefix + ":gateways" }

// indexSession queues in p the index change a change of a session makes.
func (s *Store) indexSession(ctx context.Context, p redis.Pipeliner, c Change) {
	if c.Gateway == "" {
		return
	}
	key := schemas.SessionKey(c.App, c.User, c.Session)
	switch c.Op {
	case Connect:
		p.HSet(ctx, s.gatewayKey(c.Gateway), key, c.Epoch+sep+strconv.FormatInt(c.At.UnixMilli(), 10))
		p.SAdd(ctx, s.gatewaysKey(), c.Gateway)
	case Disconnect:
		p.HDel(ctx, s.gatewayKey(c.Gateway), key)
	}
}

// Gateways returns the gateways that hold, or held, indexed sessions.
func (s *Store) Gateways(ctx context.Context) ([]string, error) {
	gws, err := s.rdb.SMembers(ctx, s.gatewaysKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("reading gateways: %w", err)
	}
	return gws, nil
}

// GatewaySession is a session a gateway's index names.
type GatewaySession struct {
	App, User, Session string
	Epoch              string
	ConnectedAt        time.Time
}

// GatewaySessions returns the sessions the index of gateway names.
func (s *Store) GatewaySessions(ctx context.Context, gateway string) ([]GatewaySession, error) {
	h, err := s.rdb.HGetAll(ctx, s.gatewayKey(gateway)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the sessions of gateway %q: %w", gateway, err)
	}
	out := make([]GatewaySession, 0, len(h))
	for key, value := range h {
		ids := schemas.SplitKey([]byte(key))
		epoch, at, ok := strings.Cut(value, sep)
		ms, err := strconv.ParseInt(at, 10, 64)
		if len(ids) != 3 || !ok || err != nil {
			continue // not written by indexSession
		}
		out = append(out, GatewaySession{App: ids[0], User: ids[1], Session: ids[2], Epoch: epoch, ConnectedAt: time.UnixMilli(ms)})
	}
	return out, nil
}

// Unindex removes sessions from the index of gateway (they ended, or were
// never on it), and the gateway from the set of gateways when its index is
// empty (gone is true: the gateway is no longer expected to connect
// anyone; a gateway that does is added back by its next connect).
func (s *Store) Unindex(ctx context.Context, gateway string, sessions []GatewaySession, gone bool) error {
	if len(sessions) > 0 {
		fields := make([]string, len(sessions))
		for i, gs := range sessions {
			fields[i] = schemas.SessionKey(gs.App, gs.User, gs.Session)
		}
		if err := s.rdb.HDel(ctx, s.gatewayKey(gateway), fields...).Err(); err != nil {
			return fmt.Errorf("unindexing %d sessions of gateway %q: %w", len(sessions), gateway, err)
		}
	}
	if !gone {
		return nil
	}
	// Remove first, then look: a session indexed meanwhile (its SADD
	// before the SREM) is seen, and the gateway added back.
	err := s.rdb.SRem(ctx, s.gatewaysKey(), gateway).Err()
	var n int64
	if err == nil {
		n, err = s.rdb.HLen(ctx, s.gatewayKey(gateway)).Result()
	}
	if err == nil && n > 0 {
		err = s.rdb.SAdd(ctx, s.gatewaysKey(), gateway).Err()
	}
	if err != nil {
		return fmt.Errorf("forgetting gateway %q: %w", gateway, err)
	}
	return nil
}
