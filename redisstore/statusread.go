package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas/status"

	"github.com/presence-im/presence/schemas"
)

// A lookup reads each user's hash as the raw bytes of its HGETALL reply
// (redis.RawCmd) and walks them into the user's Status, the statuses of
// the lookup sharing a few allocations (statusBatch): go-redis's own
// reading of the reply, a map with a string per field and value, cost a
// lookup more CPU than anything else the query API did. A reply that is
// not a hash (an error such as a cluster's MOVED while a slot migrates)
// is read again the ordinary way, which follows redirections and reports
// errors as go-redis does.

// statuses reads the statuses of users, and with check what the state
// was (see StatusesIntact); without, it reports it whole.
func (s *Store) statuses(ctx context.Context, app string, users []string, check bool, buf *StatusBuffer) ([]*Status, Observed, error) {
	if len(users) == 0 {
		return []*Status{}, Observed{Whole: true}, nil
	}
	distinct, at := distinctUsers(users)
	reads := make([]*redis.RawCmd, len(distinct))
	keys := s.userKeys(app, distinct)
	// The arguments of every HGETALL in one allocation rather than two
	// per user: go-redis takes a *string for a string.
	args := make([]any, 2*len(distinct))
	var built *redis.IntCmd
	var markers []*redis.IntCmd
	var generation *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j := range distinct {
			args[2*j], args[2*j+1] = "hgetall", &keys[j]
			reads[j] = redis.NewRawCmd(ctx, args[2*j:2*j+2:2*j+2]...)
			_ = p.Process(ctx, reads[j])
		}
		if !check {
			return nil
		}
		built = p.Exists(ctx, s.checkpointKey(schemas.SessionsTopic))
		if tags := s.present.Load(); tags != nil {
			for _, tag := range *tags {
				markers = append(markers, p.Exists(ctx, s.markerKey(tag)))
			}
		}
		generation = p.Get(ctx, s.generationKey())
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, Observed{}, fmt.Errorf("reading %d statuses: %w", len(distinct), err)
	}
	seen := Observed{Whole: !check || built.Val() == 1}
	for _, m := range markers {
		seen.Whole = seen.Whole && m.Val() == 1
	}
	if check {
		seen.Generation = generation.Val()
	}
	if buf == nil {
		buf = new(StatusBuffer)
	}
	decoded, err := s.decodeReplies(ctx, app, distinct, reads, buf)
	if err != nil {
		return nil, Observed{}, err
	}
	if at == nil {
		return decoded, seen, nil
	}
	out := make([]*Status, len(users))
	for i, j := range at {
		out[i] = decoded[j]
	}
	return out, seen, nil
}

// userKeys returns the keys of users' hashes (userKey), all parts of one
// string (a strings.Builder's, which String does not copy).
func (s *Store) userKeys(app string, users []string) []string {
	var all strings.Builder
	all.Grow(len(users) * (len(s.prefix) + len(app) + 24))
	ends := make([]int, len(users))
	var key [160]byte
	for j, u := range users {
		all.Write(s.appendUserKey(key[:0], app, u))
		ends[j] = all.Len()
	}
	keys := make([]string, len(users))
	start := 0
	for j, end := range ends {
		keys[j], start = all.String()[start:end], end
	}
	return keys
}

// distinctUsers returns users without repeats, in order, and at, where
// at[i] is the index of users[i] in distinct; at is nil when no user
// repeats (distinct is users then).
func distinctUsers(users []string) (distinct []string, at []int) {
	if len(users) <= maxProbed && !repeats(users) { // the usual lookup, without a map
		return users, nil
	}
	index := make(map[string]int, len(users))
	for i, u := range users {
		if _, ok := index[u]; ok {
			at = make([]int, len(users))
			distinct = slices.Clip(users[:i])
			for k := range i {
				at[k] = k
			}
			for k := i; k < len(users); k++ {
				j, ok := index[users[k]]
				if !ok {
					j = len(distinct)
					index[users[k]] = j
					distinct = append(distinct, users[k])
				}
				at[k] = j
			}
			return distinct, at
		}
		index[u] = i
	}
	return users, nil
}

// maxProbed is the most users repeats takes: its table stays at most
// half full.
const maxProbed = 1024

// repeats says whether a user appears twice in users (at most maxProbed
// of them). Its table, of open addressing and on the stack, takes 500
// users in a fifth of the time of the map it spares (4 µs against 20,
// and 27 KB not allocated).
func repeats(users []string) bool {
	var table [2 * maxProbed]uint16 // an index of users plus one; 0 is free
	seed := maphash.MakeSeed()
	for i, u := range users {
		for j := maphash.String(seed, u); ; j++ {
			slot := &table[j%uint64(len(table))]
			if *slot == 0 {
				*slot = uint16(i + 1)
				break
			}
			if users[*slot-1] == u {
				return true
			}
		}
	}
	return false
}

// decodeReplies decodes the raw HGETALL replies of users' hashes into
// buf, reading again the ordinary way those that are not hashes.
func (s *Store) decodeReplies(ctx context.Context, app string, users []string, reads []*redis.RawCmd, buf *StatusBuffer) ([]*Status, error) {
	// Every string of the statuses is a part of one string: one
	// allocation rather than one per user.
	rest, known := joinReplies(reads)
	b := &buf.batch
	b.statuses, b.sessions, b.lastSeen = reuse(b.statuses, known), reuse(b.sessions, known), reuse(b.lastSeen, known)
	buf.out = reuse(buf.out, len(users))[:len(users)]
	out := buf.out
	var again []int
	for j, cmd := range reads {
		reply := "%0\r\n"
		if raw := cmd.Val(); !emptyHash(raw) {
			reply, rest = rest[:len(raw)], rest[len(raw):]
		}
		st, ok, err := b.decodeReply(users[j], reply)
		if err != nil {
			return nil, err
		}
		if !ok {
			again = append(again, j)
			continue
		}
		out[j] = st
	}
	if len(again) == 0 {
		return out, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(again))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, j := range again {
			cmds[k] = p.HGetAll(ctx, s.userKey(app, users[j]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %d statuses again: %w", len(again), err)
	}
	for k, j := range again {
		if out[j], err = decodeStatus(users[j], cmds[k].Val()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reuse returns s emptied when it has room for n, else a new slice that
// has.
func reuse[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:0]
	}
	return make([]T, 0, n)
}

// statusBatch decodes statuses into shared memory: one slice of Status,
// one of Session and one of Time for a whole lookup rather than a few
// allocations per user. Each status's sessions are a slice of sessions
// whose capacity ends with them, so that appending to one status's
// sessions never writes into another's. A slice that has to grow leaves
// the statuses decoded before pointing into the one it had, which stays
// theirs.
type statusBatch struct {
	statuses []Status
	sessions []Session
	lastSeen []Time
}

// decodeReply decodes the raw HGETALL reply of user's hash, whose
// strings become the status's: nil for an empty hash (a user Presence
// does not know), ok false for a reply that is not a hash, an error for a
// field that does not decode.
func (b *statusBatch) decodeReply(user, reply string) (st *Status, ok bool, err error) {
	if emptyHash(reply) {
		return nil, true, nil
	}
	h, ok := openHash(reply)
	if !ok {
		return nil, false, nil
	}
	if h.left == 0 {
		return nil, h.rest == "", nil
	}
	b.statuses = append(b.statuses, Status{User: user})
	st = &b.statuses[len(b.statuses)-1]
	start := b.begin()
	for h.left > 0 {
		field, value, ok := h.next()
		if !ok {
			break
		}
		if err := b.field(st, field, value); err != nil {
			return nil, false, err
		}
	}
	if h.left > 0 || h.rest != "" {
		b.statuses, b.sessions = b.statuses[:len(b.statuses)-1], b.sessions[:start]
		return nil, false, nil
	}
	b.end(st, start)
	return st, true, nil
}

// emptyHash says whether raw is the reply of an HGETALL of an empty hash
// (a key that does not exist).
func emptyHash[T string | []byte](raw T) bool {
	return string(raw) == "%0\r\n" || string(raw) == "*0\r\n"
}

// begin starts decoding a status, whose sessions start at the index it
// returns.
func (b *statusBatch) begin() int {
	if b.sessions == nil {
		b.sessions = make([]Session, 0, 1)
	}
	return len(b.sessions)
}

// field decodes one field of the hash of st's user into st.
func (b *statusBatch) field(st *Status, field, value string) error {
	switch {
	case field == "v":
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("decoding version of %q: %w", st.User, err)
		}
		st.Version = v
	case field == "c":
		custom, err := decodeCustom(value)
		if err != nil {
			return fmt.Errorf("user %q: %w", st.User, err)
		}
		st.Custom = custom
	case field == "l":
		ms, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("decoding last seen of %q: %w", st.User, err)
		}
		b.lastSeen = append(b.lastSeen, millis(ms))
		st.LastSeen = &b.lastSeen[len(b.lastSeen)-1]
	case field == "p":
		privacy, err := status.DecodePrivacy(value)
		if err != nil {
			return fmt.Errorf("user %q: %w", st.User, err)
		}
		st.Privacy = &privacy
	case strings.HasPrefix(field, "s"):
		sess, err := decodeSession(field, value)
		if err != nil {
			return fmt.Errorf("user %q: %w", st.User, err)
		}
		b.sessions = append(b.sessions, sess)
	}
	return nil
}

// end finishes st, whose sessions are those decoded since start: its
// state, and its sessions in the order they connected.
func (b *statusBatch) end(st *Status, start int) {
	st.Sessions = b.sessions[start:len(b.sessions):len(b.sessions)]
	st.State = Offline
	if len(st.Sessions) > 0 {
		st.State = Online
	}
	st.Activity = status.Aggregate(st.Sessions)
	slices.SortFunc(st.Sessions, func(x, y Session) int {
		return cmp.Or(x.ConnectedAt.Compare(y.ConnectedAt.Time), cmp.Compare(x.Session, y.Session))
	})
}

// hashReply walks the raw reply of an HGETALL: a RESP3 map (%<n>) or a
// RESP2 array (*<2n>) of strings, each a bulk string ($<len>) or a simple
// one (+).
type hashReply struct {
	rest string // what is left to read
	left int    // fields left to read
}

// openHash reads the header of reply; ok is false when it is not a map
// or an array of an even length.
func openHash(reply string) (h hashReply, ok bool) {
	line, rest, ok := respLine(reply)
	if !ok || len(line) < 2 {
		return hashReply{}, false
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return hashReply{}, false
	}
	switch line[0] {
	case '%':
	case '*':
		if n%2 != 0 {
			return hashReply{}, false
		}
		n /= 2
	default:
		return hashReply{}, false
	}
	return hashReply{rest: rest, left: n}, true
}

// next reads the next field and its value; ok is false when the reply
// does not hold them.
func (h *hashReply) next() (field, value string, ok bool) {
	if field, ok = h.str(); !ok {
		return "", "", false
	}
	if value, ok = h.str(); !ok {
		return "", "", false
	}
	h.left--
	return field, value, true
}

// str reads a string.
func (h *hashReply) str() (string, bool) {
	s := h.rest
	if s == "" {
		return "", false
	}
	switch s[0] {
	case '+':
		line, rest, ok := respLine(s)
		if !ok {
			return "", false
		}
		h.rest = rest
		return line[1:], true
	case '$':
		// $<length>\r\n<data>\r\n, read without looking for the CRLF.
		n, i := 0, 1
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if n = n*10 + int(s[i]-'0'); n > len(s) {
				return "", false
			}
		}
		data := i + 2
		if i == 1 || data > len(s) || s[i:data] != "\r\n" || n > len(s)-data-2 || s[data+n:data+n+2] != "\r\n" {
			return "", false
		}
		h.rest = s[data+n+2:]
		return s[data : data+n], true
	}
	return "", false
}

// respLine splits s after its first line, which it returns without the
// CRLF that ends it; ok is false when s holds no CRLF.
func respLine(s string) (line, rest string, ok bool) {
	i := strings.Index(s, "\r\n")
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+2:], true
}

// joinReplies returns the raw replies of the users Redis knows (those
// that are not an empty hash) in one string, and how many they are.
func joinReplies(reads []*redis.RawCmd) (all string, known int) {
	size := 0
	for _, cmd := range reads {
		if raw := cmd.Val(); !emptyHash(raw) {
			known++
			size += len(raw)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for _, cmd := range reads {
		if raw := cmd.Val(); !emptyHash(raw) {
			b.Write(raw)
		}
	}
	return b.String(), known
}
