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

// indexSessions queues in p the index changes that changes make: per
// gateway, one write of the sessions they leave connected and one delete
// of those they leave disconnected.
func (s *Store) indexSessions(ctx context.Context, p redis.Pipeliner, changes []Change) {
	index := map[string]map[string]string{} // gateway -> session key -> value, "" to delete
	for _, c := range changes {
		if c.Gateway == "" || (c.Op != Connect && c.Op != Disconnect) {
			continue
		}
		if index[c.Gateway] == nil {
			index[c.Gateway] = map[string]string{}
		}
		value := ""
		if c.Op == Connect {
			value = c.Epoch + sep + strconv.FormatInt(c.At.UnixMilli(), 10)
		}
		index[c.Gateway][schemas.SessionKey(c.App, c.User, c.Session)] = value
	}
	for gw, sessions := range index {
		var set []any
		var del []string
		for key, value := range sessions {
			if value == "" {
				del = append(del, key)
			} else {
				set = append(set, key, value)
			}
		}
		if len(set) > 0 {
			p.HSet(ctx, s.gatewayKey(gw), set...)
			p.SAdd(ctx, s.gatewaysKey(), gw)
		}
		if len(del) > 0 {
			p.HDel(ctx, s.gatewayKey(gw), del...)
		}
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
