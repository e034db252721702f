package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Route is where one session of a user can be told something: the
// gateway that holds it.
type Route struct{ Session, Gateway string }

// Routes reads the users of app, each at most once, all in one pipelined
// round trip, and returns the routes of the sessions of each user holding
// any. It reads what Statuses reads but decodes only the sessions'
// gateways: an announcement reads every member of its audience, for whom
// that is all it needs. Like a lookup (see statusread.go) it walks the raw
// bytes of each HGETALL reply rather than have go-redis build a map of
// them, and reads again the ordinary way a reply that is not a hash; the
// strings of the routes are parts of one string holding the replies.
func (s *Store) Routes(ctx context.Context, app string, users []string) (map[string][]Route, error) {
	reads := make([]*redis.RawCmd, len(users))
	keys := s.userKeys(app, users)
	args := make([]any, 2*len(users))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j := range users {
			args[2*j], args[2*j+1] = "hgetall", &keys[j]
			reads[j] = redis.NewRawCmd(ctx, args[2*j:2*j+2:2*j+2]...)
			_ = p.Process(ctx, reads[j])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the sessions of %d users: %w", len(users), err)
	}
	rest, _ := joinReplies(reads)
	// Every user's routes are a part of one slice, cut once it is whole.
	var routes []Route
	ends := make([]int, len(users))
	var again []int
	for j, cmd := range reads {
		raw := cmd.Val()
		if emptyHash(raw) {
			ends[j] = len(routes)
			continue
		}
		var reply string
		reply, rest = rest[:len(raw)], rest[len(raw):]
		var ok bool
		if routes, ok, err = appendRoutes(routes, users[j], reply); err != nil {
			return nil, err
		}
		if !ok {
			again = append(again, j)
		}
		ends[j] = len(routes)
	}
	out := make(map[string][]Route)
	start := 0
	for j, end := range ends {
		if end > start {
			out[users[j]] = routes[start:end:end]
		}
		start = end
	}
	if len(again) == 0 {
		return out, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(again))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, j := range again {
			cmds[k] = p.HGetAll(ctx, keys[j])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the sessions of %d users again: %w", len(again), err)
	}
	for k, j := range again {
		var routes []Route
		for field, value := range cmds[k].Val() {
			if routes, err = appendRoute(routes, users[j], field, value); err != nil {
				return nil, err
			}
		}
		if len(routes) > 0 {
			out[users[j]] = routes
		}
	}
	return out, nil
}

// appendRoutes appends the routes of the sessions in the raw HGETALL
// reply of user's hash to routes; ok is false, and routes as it was, when
// the reply is not a hash.
func appendRoutes(routes []Route, user, reply string) (_ []Route, ok bool, err error) {
	h, ok := openHash(reply)
	if !ok {
		return routes, false, nil
	}
	start := len(routes)
	for h.left > 0 {
		field, value, ok := h.next()
		if !ok {
			break
		}
		if routes, err = appendRoute(routes, user, field, value); err != nil {
			return nil, false, err
		}
	}
	if h.left > 0 || h.rest != "" {
		return routes[:start], false, nil
	}
	return routes, true, nil
}

// appendRoute appends the route of field of user's hash to routes when
// the field is a session's.
func appendRoute(routes []Route, user, field, value string) ([]Route, error) {
	if field == "" || field[0] != 's' {
		return routes, nil
	}
	gateway, ok := sessionGateway(value)
	if !ok {
		return nil, fmt.Errorf("user %q: decoding session %q: no gateway", user, field)
	}
	return append(routes, Route{Session: field[1:], Gateway: gateway}), nil
}
