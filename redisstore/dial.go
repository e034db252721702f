package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Dial returns a client of the Redis at raw: one server
// (redis://[user:password@]host:port/db, rediss:// for TLS; see ParseURL)
// or a Redis Cluster, given in go-redis's cluster URL form
// (redis://h1:p1?addr=h2:p2&addr=h3:p3) or recognised from a single seed
// that says cluster_enabled:1 (INFO cluster). A cluster client finds the
// other nodes itself. A cluster has database 0 only: its nodes refuse a
// seed URL that names another (SELECT is not allowed in cluster mode). Its errors never hold the password. Close the client
// when done.
func Dial(ctx context.Context, raw string) (redis.UniversalClient, error) {
	if isClusterURL(raw) {
		return dialCluster(raw)
	}
	opts, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(opts)
	info, err := rdb.Info(ctx, "cluster").Result()
	if _, reply := errors.AsType[redis.Error](err); reply {
		// A server that answers but will not tell (a user not allowed
		// INFO, a server without the section) is one server; one that
		// refuses the client (a wrong password, still loading) says so
		// again to the Ping that follows.
		return rdb, nil
	}
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis at %s: asking whether it is a cluster: %w", RedactURL(raw), err)
	}
	if !strings.Contains(info, "cluster_enabled:1") {
		return rdb, nil
	}
	rdb.Close()
	return dialCluster(raw)
}

// isClusterURL says whether raw names several nodes (addr=...).
func isClusterURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Query().Has("addr")
}

func dialCluster(raw string) (redis.UniversalClient, error) {
	opts, err := parseClusterURL(raw)
	if err != nil {
		return nil, err
	}
	return redis.NewClusterClient(opts), nil
}

// CheckURL checks, without connecting, that raw is a Redis URL Dial
// takes; its error never holds the password.
func CheckURL(raw string) error {
	var err error
	if isClusterURL(raw) {
		_, err = parseClusterURL(raw)
	} else {
		_, err = ParseURL(raw)
	}
	return err
}

func parseClusterURL(raw string) (*redis.ClusterOptions, error) {
	opts, err := redis.ParseClusterURL(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing redis cluster url %s: %s", RedactURL(raw), redactError(raw, err))
	}
	return opts, nil
}

// redactError is the text of err with the password of raw, if any,
// replaced, and the user information of any addr parameter (a password
// misplaced there) too.
func redactError(raw string, err error) string {
	msg := err.Error()
	u, perr := url.Parse(raw)
	if perr != nil {
		return msg
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	for _, addr := range u.Query()["addr"] {
		if at := strings.LastIndex(addr, "@"); at >= 0 {
			msg = strings.ReplaceAll(msg, addr, "xxxxx@"+addr[at+1:])
		}
	}
	return msg
}

// ForEachNode calls fn with a client of each node holding part of the
// keys of rdb, concurrently: each master of a cluster, each shard of a
// ring, or the one server. Scans, resets and readiness checks run on
// every one.
func ForEachNode(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, c *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.Client:
		return fn(ctx, c)
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Ring:
		return c.ForEachShard(ctx, fn)
	default:
		return fmt.Errorf("unsupported redis client %T", rdb)
	}
}
