package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
	"github.com/presence-im/presence/schemas"
)

// What the fence costs Redis: a user written whole (DEL, HSET of a
// session, its version and state) through Write, against the same
// commands in a plain pipeline. Each reports Redis's CPU per user
// (redis-µs/user), read from INFO before and after.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	url := redistest.URL(b)
	s, err := redisstore.Open(ctx, url, redisstore.Options{Prefix: redistest.Prefix(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(url, "redis://")})
	defer rdb.Close()
	const users = 1000
	images := make([]redisstore.Image, users)
	for i := range images {
		images[i] = redisstore.Image{App: "chat", User: fmt.Sprintf("user-%d", i), Whole: true,
			Fields: []string{"sweb", "web\x1fd1\x1fgw\x1f1700000000000\x1fe1", "v", "7", "o", "1"}}
	}
	if err := s.Reset(ctx, schemas.SessionsTopic, "id", 1, map[int32]int64{0: 0}); err != nil {
		b.Fatal(err)
	}
	owner, err := s.Own(ctx, schemas.SessionsTopic, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fenced", func(b *testing.B) {
		measureRedis(b, rdb, users, func() error { return s.Write(ctx, owner, images) })
	})
	b.Run("plain", func(b *testing.B) {
		measureRedis(b, rdb, users, func() error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, im := range images {
					key := redistest.Prefix(b) + ":plain:" + im.User
					p.Del(ctx, key)
					p.HSet(ctx, key, im.Fields)
				}
				return nil
			})
			return err
		})
	})
}

// measureRedis runs write b.N times and reports Redis's CPU per user.
func measureRedis(b *testing.B, rdb *redis.Client, users int, write func() error) {
	before := redisCPU(b, rdb)
	for b.Loop() {
		if err := write(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((redisCPU(b, rdb)-before)*1e6/float64(b.N*users), "redis-µs/user")
}

// redisCPU returns the CPU seconds Redis has used, user and system.
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(info) {
		name, value, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name == "used_cpu_user" || name == "used_cpu_sys" {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += v
		}
	}
	return total
}
