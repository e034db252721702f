package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Op is what a Change does.
type Op uint8

// Ops of a Change.
const (
	Connect Op = iota + 1
	Disconnect
	SetCustom
	ClearCustom
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
	// At is when the record was written (a gateway saw the event, the
	// query API took the custom status).
	At time.Time
	// Version is the record's offset in its partition. A change whose
	// version is not above the user's changes nothing.
	Version int64
	// Partition is the record's partition.
	Partition int32
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
	// Kept is the session an OnlyHere disconnect left, because another
	// gateway or epoch holds it now; nil otherwise.
	Kept *Session
}

// Apply applies changes in one pipelined round trip, in order. During a
// rebuild (quiet), the visible state counts as announced and no outcome
// asks for an announcement: history is not news. Beside each change it
// indexes the session by gateway (gateways.go) and schedules the record
// keys it will make dead (expire.go); both converge when a suffix is
// applied again.
func (s *Store) Apply(ctx context.Context, changes []Change, quiet bool) ([]Outcome, error) {
	ttl := strconv.FormatInt(s.offlineTTL.Milliseconds(), 10)
	q := "0"
	if quiet {
		q = "1"
	}
	return s.runScript(ctx, s.apply, len(changes), func(p redis.Pipeliner, i int) *redis.Cmd {
		c := changes[i]
		field, value := "", ""
		switch c.Op {
		case Connect:
			field, value = sessionField(c.Session), encodeSession(c)
		case Disconnect:
			field = sessionField(c.Session)
			if c.OnlyHere {
				value = c.Gateway + sep + c.Epoch
			}
		case SetCustom:
			value = encodeCustom(c.Custom)
		}
		s.indexSession(ctx, p, c)
		s.scheduleSession(ctx, p, c)
		return s.apply.EvalSha(ctx, p, []string{s.userKey(c.App, c.User)},
			c.Version, opArg[c.Op], field, value, c.At.UnixMilli(), ttl, q)
	})
}

// User names one user of one app.
type User struct{ App, User string }

// Check compares the visible state of users with what their audience was
// last told, changing nothing: Announce is Now where they differ.
func (s *Store) Check(ctx context.Context, users []User) ([]Outcome, error) {
	return s.runScript(ctx, s.apply, len(users), func(p redis.Pipeliner, i int) *redis.Cmd {
		return s.apply.EvalSha(ctx, p, []string{s.userKey(users[i].App, users[i].User)}, 0, "k", "", "", 0, 0, "0")
	})
}

// MarkAnnounced records that the audience of each user was told the
// visible state in visible (from an Outcome).
func (s *Store) MarkAnnounced(ctx context.Context, users []User, visible []string) error {
	_, err := s.runScript(ctx, s.announced, len(users), func(p redis.Pipeliner, i int) *redis.Cmd {
		return s.announced.EvalSha(ctx, p, []string{s.userKey(users[i].App, users[i].User)}, visible[i])
	})
	return err
}

// runScript runs n calls of script in one pipeline. The pipeline starts
// by loading the script: if Redis lost its script cache (a restart, a
// failover, SCRIPT FLUSH), a call that failed with NOSCRIPT while a later
// one succeeded (loaded meanwhile by another connection) would be re-run
// after it, and dropped as older. On Redis Cluster, where a keyless
// command goes to any node, the script is loaded on every node first, and
// a NOSCRIPT error is returned, to be retried whole, rather than re-run.
func (s *Store) runScript(ctx context.Context, script *redis.Script, n int, call func(redis.Pipeliner, int) *redis.Cmd) ([]Outcome, error) {
	if n == 0 {
		return nil, nil
	}
	src, single := s.scripts[script], false
	if _, single = s.rdb.(*redis.Client); !single {
		if err := script.Load(ctx, s.rdb).Err(); err != nil {
			return nil, fmt.Errorf("loading script: %w", err)
		}
	}
	cmds := make([]*redis.Cmd, n)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if single {
			p.ScriptLoad(ctx, src)
		}
		for i := range n {
			cmds[i] = call(p, i)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("running %d scripts: %w", n, err)
	}
	out := make([]Outcome, n)
	for i, c := range cmds {
		res, _ := c.Slice()
		if len(res) < 3 {
			continue
		}
		applied, _ := res[0].(int64)
		announce, _ := res[1].(int64)
		visible, _ := res[2].(string)
		out[i] = Outcome{Applied: applied == 1, Announce: Announce(announce), Visible: visible}
		if len(res) == 4 {
			if kept, _ := res[3].(string); kept != "" {
				sess, err := decodeSession("s", kept)
				if err != nil {
					return nil, err
				}
				out[i].Kept = &sess
			}
		}
	}
	return out, nil
}

// A session's value is its device, device id, gateway, connect time and
// gateway epoch, separated by the unit separator, which no valid id
// contains (values written before the epoch was kept have four parts). A custom
// status is its code and text, separated the same way.
const sep = "\x1f"

func sessionField(session string) string { return "s" + session }

func encodeSession(c Change) string {
	return c.Device + sep + c.DeviceID + sep + c.Gateway + sep + strconv.FormatInt(c.At.UnixMilli(), 10) + sep + c.Epoch
}

func decodeSession(field, value string) (Session, error) {
	parts := strings.Split(value, sep)
	if len(parts) == 4 {
		parts = append(parts, "")
	}
	if len(parts) != 5 {
		return Session{}, fmt.Errorf("decoding session %q: %d parts, want 5", field, len(parts))
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
