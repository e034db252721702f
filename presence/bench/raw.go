package bench

// The raw side: the same data written with go-redis alone, in pipelines,
// in redisstore's layout (keys and value shapes), without its scripts,
// versions, indexes or checkpoints. On a Redis Cluster go-redis splits
// each pipeline by master: every command names one key and none runs in a
// MULTI, so each goes to the master of its slot as it would alone.

import (
	"context"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
)

// rawPipeline is how many commands one raw pipeline carries.
const rawPipeline = 1000

// rawOp is one raw write to a user's hash: HSET key field value, or HDEL
// key field when del; with expire, a PEXPIRE of the key follows.
type rawOp struct {
	key, field, value string
	del               bool
	expire            time.Duration
}

// userKey is the key of a user's hash in redisstore's layout: P:{app/user}.
func userKey(user string) string {
	return redisstore.DefaultPrefix + ":{" + schemas.UserKey(app, user) + "}"
}

// friendsKey is the key of a user's friends in redisstore's layout
// (redisstore/graph.go): P:{app/user}:f.
func friendsKey(user string) string { return userKey(user) + ":f" }

// sessionField is the field of a session in a user's hash.
func sessionField(session string) string { return "s" + session }

// sep separates the parts of a session's value.
const sep = "\x1f"

// rawSession is a session's value as redisstore keeps it (device, device
// id, gateway, connect time in Unix ms, gateway epoch, separated by
// \x1f; see encodeSession in redisstore/apply.go), so that raw writes move
// as many bytes as the project's.
func rawSession(device, deviceID, gateway, epoch string, at time.Time) string {
	return device + sep + deviceID + sep + gateway + sep + strconv.FormatInt(at.UnixMilli(), 10) + sep + epoch
}

// sessionGateway is the gateway of a session's value.
func sessionGateway(value string) string {
	parts := strings.SplitN(value, sep, 4)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// writeRaw runs lanes goroutines, each writing the ops of its lane in
// pipelines of rawPipeline, in order, counting them in done.
func (r *runner) writeRaw(ctx context.Context, lanes int, ops func(lane int) iter.Seq[rawOp], done *atomic.Int64) error {
	g, ctx := errgroup.WithContext(ctx)
	for lane := range lanes {
		g.Go(func() error {
			p := r.env.rdb.Pipeline()
			n := 0
			exec := func() error {
				if n == 0 {
					return nil
				}
				if _, err := p.Exec(ctx); err != nil {
					return fmt.Errorf("raw pipeline of %d commands: %w", n, err)
				}
				done.Add(int64(n))
				n = 0
				return nil
			}
			for op := range ops(lane) {
				addRaw(ctx, p, op)
				if n++; n == rawPipeline {
					if err := exec(); err != nil {
						return err
					}
				}
			}
			return exec()
		})
	}
	return g.Wait()
}

// addRaw queues op in p.
func addRaw(ctx context.Context, p redis.Pipeliner, op rawOp) {
	if op.del {
		p.HDel(ctx, op.key, op.field)
	} else {
		p.HSet(ctx, op.key, op.field, op.value)
	}
	if op.expire > 0 {
		p.PExpire(ctx, op.key, op.expire)
	}
}
