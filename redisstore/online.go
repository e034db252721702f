package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/schemas/status"
)

// The online users of an app, for the console. Redis has no index of an
// app's users, so Online scans the keys of the app's users (SCAN MATCH
// P:{<app>/<prefix>*} on every master) and reads the hashes found: a cost
// that grows with the whole store, bounded by OnlineScanBudget keys read
// per master and limit users kept. An invisible user is left out: it
// shows offline to everyone but itself.

// OnlineScanBudget is how many keys one Online call walks on each master
// at most; past it the answer says Truncated.
const OnlineScanBudget = 100_000

// OnlineUser is a user with at least one live session.
type OnlineUser struct {
	User     string `json:"user"`
	Sessions int    `json:"sessions"`
}

// OnlinePage is what Online found, sorted by user id.
type OnlinePage struct {
	Users []OnlineUser
	// Truncated says that more users may be online: limit users were
	// found, or the scan budget ran out.
	Truncated bool
}

// Online returns at most limit users of app whose id starts with prefix
// and who have a live session, with their session counts.
func (s *Store) Online(ctx context.Context, app, prefix string, limit int) (OnlinePage, error) {
	head := s.appendUserKey(nil, app, "")
	head = head[:len(head)-1] // without the closing brace
	escaped := string(schemas.AppendUserKey(nil, "", prefix))[1:]
	pattern := globEscaper.Replace(string(head)+escaped) + "*"
	var mu sync.Mutex
	var page OnlinePage
	err := ForEachNode(ctx, s.rdb, func(ctx context.Context, c *redis.Client) error {
		users, truncated, err := s.onlineOn(ctx, c, string(head), pattern, limit)
		mu.Lock()
		defer mu.Unlock()
		page.Users = append(page.Users, users...)
		page.Truncated = page.Truncated || truncated
		return err
	})
	if err != nil {
		return OnlinePage{}, fmt.Errorf("redisstore: listing online users: %w", err)
	}
	slices.SortFunc(page.Users, func(a, b OnlineUser) int { return cmp.Compare(a.User, b.User) })
	if len(page.Users) > limit {
		page.Users, page.Truncated = page.Users[:limit], true
	}
	return page, nil
}

// onlineOn scans one master.
func (s *Store) onlineOn(ctx context.Context, c *redis.Client, head, pattern string, limit int) ([]OnlineUser, bool, error) {
	var users []OnlineUser
	var cursor uint64
	walked := 0
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, scanBatch).Result()
		if err != nil {
			return nil, false, err
		}
		walked += len(keys)
		var hashes []string
		for _, k := range keys {
			if strings.HasSuffix(k, "}") { // the user's hash, not its :f, :w...
				hashes = append(hashes, k)
			}
		}
		if len(hashes) > 0 {
			p := c.Pipeline()
			cmds := make([]*redis.MapStringStringCmd, len(hashes))
			for i, k := range hashes {
				cmds[i] = p.HGetAll(ctx, k)
			}
			_, _ = p.Exec(ctx) // each command's error is looked at below
			for i, cmd := range cmds {
				if err := cmd.Err(); err != nil {
					if strings.HasPrefix(err.Error(), "WRONGTYPE") {
						continue // a user id that ends like a key suffix
					}
					return nil, false, err
				}
				fields := cmd.Val()
				if p, ok := fields["p"]; ok {
					if privacy, err := status.DecodePrivacy(p); err != nil || privacy.Invisible {
						continue // offline to everyone but itself
					}
				}
				n := 0
				for f := range fields {
					if strings.HasPrefix(f, "s") {
						n++
					}
				}
				if n == 0 {
					continue
				}
				user, err := url.PathUnescape(hashes[i][len(head) : len(hashes[i])-1])
				if err != nil {
					continue // not a key this store wrote
				}
				users = append(users, OnlineUser{User: user, Sessions: n})
			}
		}
		cursor = next
		switch {
		case len(users) > limit:
			return users, true, nil
		case cursor == 0:
			return users, false, nil
		case walked >= OnlineScanBudget:
			return users, true, nil
		}
	}
}
