package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presence-im/presence/schemas/status"
)

// Op is what a Change does.
type Op uint8

// Ops of a Change.
const (
	Connect Op = iota + 1
	Disconnect
	SetCustom
	ClearCustom
	// SetPrivacy sets the user's privacy (Change.Privacy); ClearPrivacy,
	// a privacy key's tombstone, restores the default. Only the
	// processor's state applies them (processor/state): apply.lua, the
	// reference it is tested against, knows no privacy.
	SetPrivacy
	ClearPrivacy
)

var opArg = map[Op]string{Connect: "c", Disconnect: "d", SetCustom: "s", ClearCustom: "x"}

// Change is one record of presence.sessions to apply to a user's state.
type Change struct {
	Op                 Op
	App, User, Session string
	// Device, DeviceID and Gateway describe a connected session; Epoch
	// is the boot epoch of its gateway.
	Device, DeviceID, Gateway, Epoch string
	// Custom is the status a SetCustom sets.
	Custom Custom
	// Privacy is the setting a SetPrivacy sets (its HiddenSince unset:
	// the state sets it).
	Privacy Privacy
	// At is when the record was written (a gateway saw the event, the
	// query API took the custom status).
	At time.Time
	// Version is the record's offset in its partition. A change whose
	// version is not above the user's changes nothing.
	Version int64
	// Partition is the record's partition.
	Partition int32
	// Activity is what a Connect says of its session's activity: Active
	// (or "") for a connect, what the client reported for an activity
	// record, which is a Connect with Report set.
	Activity status.Activity
	// Report says the Connect is an activity record: it re-asserts a
	// session (the whole session, so that a compacted topic that keeps it
	// alone still holds it) to say its Activity. Applied to a session
	// live with the same gateway and epoch, it keeps its connected_at.
	// apply.lua, the reference, knows no activity: it applies it as any
	// connect (processor/state is the one that announces the aggregate).
	Report bool
	// OnlyHere makes a Disconnect apply only to a session held by its
	// Gateway and Epoch (a gateway_lost disconnect): a session that has
	// reconnected elsewhere meanwhile is kept (Outcome.Kept).
	OnlyHere bool
}

// Announce says what a user's audience must be told after a change.
type Announce uint8

const (
	// Nothing: the visible state is what the audience was last told.
	Nothing Announce = iota
	// Now: the visible state changed; tell the audience.
	Now
	// AfterGrace: the user went offline; tell the audience once the
	// offline grace period has passed, if the user is still offline.
	AfterGrace
)

// Outcome is the result of applying one Change.
type Outcome struct {
	// Applied is false when the change was not newer than the state (a
	// duplicate or a replay) and changed nothing.
	Applied  bool
	Announce Announce
	// Visible is the user's visible state after the change, opaque; pass
	// it to MarkAnnounced once the audience is told.
	Visible string
	// SelfOnly, with Announce, says only the user's own sessions have
	// news: its friends and subscribers see what they were told (an
	// invisible user's change; processor/state/privacy.go).
	SelfOnly bool
	// Kept is the session an OnlyHere disconnect left, because another
	// gateway or epoch holds it now; nil otherwise.
	Kept *Session
	// Late says the change was an activity report (Report) of a session
	// that is not live, newer than the state: it applied nothing (a report
	// never brings an ended session back), and the session's disconnect
	// must be written again, so that compaction, which keeps only the
	// key's latest record, keeps the session ended. In a rebuild only a
	// report after the session's disconnect is late: one of a session
	// never seen may be all compaction left of it, and stands for its
	// connect.
	Late bool
}

// Apply applies changes in one pipelined round trip, in order. During a
// rebuild (quiet), the visible state counts as announced and no outcome
// asks for an announcement: history is not news. (Which record keys the
// changes make dead is the processor's to know: processor/state.)
func (s *Store) Apply(ctx context.Context, changes []Change, quiet bool) ([]Outcome, error) {
	recs := make([]record, len(changes))
	for i, c := range changes {
		r := record{key: s.userKey(c.App, c.User), version: c.Version, op: opArg[c.Op], at: c.At.UnixMilli()}
		switch c.Op {
		case Connect:
			r.field, r.value = sessionField(c.Session), encodeSession(c)
		case Disconnect:
			r.field = sessionField(c.Session)
			if c.OnlyHere {
				r.value = c.Gateway + sep + c.Epoch
			}
		case SetCustom:
			r.value = encodeCustom(c.Custom)
		}
		recs[i] = r
	}
	return s.applyRecords(ctx, recs, quiet)
}

// User names one user of one app.
type User struct{ App, User string }

// Check compares the visible state of users with what their audience was
// last told, changing nothing: Announce is Now where they differ.
func (s *Store) Check(ctx context.Context, users []User) ([]Outcome, error) {
	recs := make([]record, len(users))
	for i, u := range users {
		recs[i] = record{key: s.userKey(u.App, u.User), op: "k"}
	}
	return s.applyRecords(ctx, recs, false)
}

// MarkAnnounced records that the audience of each user was told the
// visible state in visible (from an Outcome).
func (s *Store) MarkAnnounced(ctx context.Context, users []User, visible []string) error {
	if len(users) == 0 {
		return nil
	}
	keys := make([]string, len(users))
	for i, u := range users {
		keys[i] = s.userKey(u.App, u.User)
	}
	err := s.scripted(ctx, s.announced, func(p redis.Pipeliner) {
		s.evalCalls(ctx, p, s.announced, keys, s.calls(keys), nil, func(args []any, i int) []any {
			return append(args, visible[i])
		})
	})
	if err != nil {
		return fmt.Errorf("marking %d users announced: %w", len(users), err)
	}
	return nil
}

// record is one record for apply.lua.
type record struct {
	key, op, field, value string
	version, at           int64
}

// maxPerCall bounds the records (or users) of one call of a script, and
// so the time Redis spends in it without serving others (a few
// microseconds each).
const maxPerCall = 200

// applyRecords runs apply.lua over recs and returns the outcome of each
// record.
func (s *Store) applyRecords(ctx context.Context, recs []record, quiet bool) ([]Outcome, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	q := "0"
	if quiet {
		q = "1"
	}
	keys := make([]string, len(recs))
	for i, r := range recs {
		keys[i] = r.key
	}
	calls := s.calls(keys)
	var cmds []*redis.Cmd
	err := s.scripted(ctx, s.apply, func(p redis.Pipeliner) {
		cmds = s.evalCalls(ctx, p, s.apply, keys, calls, []any{s.offlineTTL.Milliseconds(), q}, func(args []any, i int) []any {
			return append(args, recs[i].version, recs[i].op, recs[i].field, recs[i].value, recs[i].at)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("applying %d records: %w", len(recs), err)
	}
	// A rebuild's outcome is only whether each record applied.
	width := 4
	if quiet {
		width = 1
	}
	out := make([]Outcome, len(recs))
	for i, call := range calls {
		res, err := cmds[i].Slice()
		if err != nil || len(res) != width*len(call) {
			return nil, fmt.Errorf("applying %d records: unexpected reply %v: %w", len(call), res, err)
		}
		for j, r := range call {
			o, err := decodeOutcome(res[width*j : width*(j+1)])
			if err != nil {
				return nil, err
			}
			out[r] = o
		}
	}
	return out, nil
}

// evalCalls queues in p the calls of script over keys (as calls split
// them), one command each: its KEYS are those of the call, its ARGV head
// followed by what arg appends for each key's index. It returns the
// commands in the order of calls.
func (s *Store) evalCalls(ctx context.Context, p redis.Pipeliner, script *redis.Script, keys []string, calls [][]int, head []any, arg func(args []any, i int) []any) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	for c, call := range calls {
		ks, args := make([]string, len(call)), append(make([]any, 0, len(head)+5*len(call)), head...)
		for j, i := range call {
			ks[j] = keys[i]
			args = arg(args, i)
		}
		cmds[c] = script.EvalSha(ctx, p, ks, args...)
	}
	return cmds
}

// calls splits the records or users of keys (by index) into the calls of
// a script. On a single Redis a call takes consecutive ones; on Redis
// Cluster, where the keys of a call must share a slot, those of one user,
// in order.
func (s *Store) calls(keys []string) [][]int {
	var calls [][]int
	if _, single := s.rdb.(*redis.Client); single {
		for i := 0; i < len(keys); i += maxPerCall {
			call := make([]int, 0, min(maxPerCall, len(keys)-i))
			for j := i; j < min(i+maxPerCall, len(keys)); j++ {
				call = append(call, j)
			}
			calls = append(calls, call)
		}
		return calls
	}
	open := map[string]int{}
	for i, key := range keys {
		c, ok := open[key]
		if !ok || len(calls[c]) == maxPerCall {
			c = len(calls)
			open[key] = c
			calls = append(calls, nil)
		}
		calls[c] = append(calls[c], i)
	}
	return calls
}

func decodeOutcome(res []any) (Outcome, error) {
	applied, _ := res[0].(int64)
	if len(res) == 1 {
		return Outcome{Applied: applied == 1}, nil
	}
	announce, _ := res[1].(int64)
	visible, _ := res[2].(string)
	o := Outcome{Applied: applied == 1, Announce: Announce(announce), Visible: visible}
	if kept, _ := res[3].(string); kept != "" {
		sess, err := decodeSession("s", kept)
		if err != nil {
			return Outcome{}, err
		}
		o.Kept = &sess
	}
	return o, nil
}

// scripted runs what queue adds to a pipeline that starts by loading
// script. If Redis lost its script cache (a restart, a failover, SCRIPT
// FLUSH), a call that failed with NOSCRIPT while a later one succeeded
// (loaded meanwhile by another connection) would be re-run after it, and
// its records dropped as older. On Redis Cluster, where a keyless command
// goes to any node, the script is loaded on every node once, not with
// every batch (a load reaches every master), and again after a call that
// failed: a NOSCRIPT error is returned, to be retried whole, rather than
// re-run.
func (s *Store) scripted(ctx context.Context, script *redis.Script, queue func(redis.Pipeliner)) error {
	_, single := s.rdb.(*redis.Client)
	loaded := s.loaded[script]
	if !single && !loaded.Load() {
		if err := script.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("loading script: %w", err)
		}
		loaded.Store(true)
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if single {
			p.ScriptLoad(ctx, s.scripts[script])
		}
		queue(p)
		return nil
	})
	if err != nil {
		loaded.Store(false)
	}
	return err
}

// A session's value is its device, device id, gateway, connect time and
// gateway epoch, separated by the unit separator, which no valid id
// contains (values written before the epoch was kept have four parts). A custom
// status is its code and text, separated the same way.
const sep = "\x1f"

func sessionField(session string) string { return "s" + session }

// encodeSession returns a session's value in the hash: device, device id,
// gateway, connected at (Unix ms), epoch, joined by sep, then, when not
// active, sep and its activity's code (status.Activity.Code): an active
// session, most of them, costs no byte more.
func encodeSession(c Change) string {
	v := c.Device + sep + c.DeviceID + sep + c.Gateway + sep + strconv.FormatInt(c.At.UnixMilli(), 10) + sep + c.Epoch
	if code := c.Activity.Code(); code != "" {
		v += sep + code
	}
	return v
}

func decodeSession(field, value string) (Session, error) {
	var parts [6]string
	n := 0
	for rest, more := value, true; more; n++ {
		if n == len(parts) {
			return Session{}, fmt.Errorf("decoding session %q: more than 6 parts", field)
		}
		parts[n], rest, more = strings.Cut(rest, sep)
	}
	if n < 4 {
		return Session{}, fmt.Errorf("decoding session %q: %d parts, want 5", field, n)
	}
	ms, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return Session{}, fmt.Errorf("decoding session %q: %w", field, err)
	}
	return Session{
		Session:     field[1:],
		Device:      parts[0],
		DeviceID:    parts[1],
		Gateway:     parts[2],
		ConnectedAt: millis(ms),
		Epoch:       parts[4],
		Activity:    status.ActivityOfCode(parts[5]),
	}, nil
}

func encodeCustom(c Custom) string { return strconv.Itoa(c.Status) + sep + c.Text }

func decodeCustom(value string) (*Custom, error) {
	code, text, ok := strings.Cut(value, sep)
	if !ok {
		return nil, fmt.Errorf("decoding custom status %q: no separator", value)
	}
	status, err := strconv.Atoi(code)
	if err != nil {
		return nil, fmt.Errorf("decoding custom status %q: %w", value, err)
	}
	return &Custom{Status: status, Text: text}, nil
}
