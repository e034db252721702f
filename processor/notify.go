package processor

// Announcing: telling a user's audience that the user's visible state
// changed. The audience is the user's own other sessions (sync), the
// user's friends and the user's live subscribers (presence), of whom only
// the sessions online now are told. Notifications are routed by gateway:
// one record on presence.notify per gateway holding recipients, keyed by
// the gateway's id, so that each gateway reads only its own partition.
// Each change is also one record on presence.changes, in the user's
// partition, whoever is told: the feed of every visible change in order
// per user that the query API's watches and webhooks follow.

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/processor/state"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/records"
	"github.com/presence-im/presence/schemas/status"
)

// maxRecipients is the most recipients one notification record lists, and
// the most recipients whose sessions are read in one round trip.
const maxRecipients = 1000

// subject is a user whose visible state must be announced.
type subject struct {
	redisstore.User
	// partition is the user's partition of presence.sessions, whose state
	// holds what was told.
	partition int32
	// visible is the state announced, to be marked as told.
	visible string
	// except are the user's sessions that made the change: they know it.
	except []string
	// selfOnly: only the user's own sessions are told; its friends and
	// subscribers see what they were told (an invisible user's change,
	// see processor/state/privacy.go).
	selfOnly bool
}

// announceChanges announces the users whose visible state the changes
// changed, and schedules the check of those who went offline for when the
// grace period has passed. Only a user's latest outcome counts: a user
// who went offline and came back within the changes is no news.
func (p *Processor) announceChanges(ctx context.Context, cl *kgo.Client, partition int32, changes []redisstore.Change, outcomes []redisstore.Outcome) error {
	latest := make(map[redisstore.User]int, len(changes))
	except := make(map[redisstore.User][]string, len(changes))
	order := make([]redisstore.User, 0, len(changes))
	for i, c := range changes {
		u := redisstore.User{App: c.App, User: c.User}
		if _, seen := latest[u]; !seen {
			order = append(order, u)
		}
		latest[u] = i
		if c.Session != "" {
			except[u] = append(except[u], c.Session)
		}
	}
	now := make([]subject, 0, len(order))
	var later []int    // indexes of the changes, in order
	var back []subject // users back online within the grace
	owned := p.ownedPartition(partition)
	for _, u := range order {
		switch o := outcomes[latest[u]]; {
		case o.Announce == redisstore.Now:
			now = append(now, subject{User: u, partition: partition, visible: o.Visible, except: except[u], selfOnly: o.SelfOnly})
		case o.Announce == redisstore.AfterGrace:
			later = append(later, latest[u])
		case o.Applied && owned != nil && owned.users.Waiting(u):
			back = append(back, subject{User: u, partition: partition})
		case o.Applied && privacyChange(changes, latest[u]):
			// A new last-seen rule tells the audience nothing, but
			// watches mask the user's latest change with the setting it
			// carries: they need one with the new setting.
			back = append(back, subject{User: u, partition: partition})
		}
	}
	if err := p.reshow(ctx, cl, back); err != nil {
		return err
	}
	slices.Sort(later)
	offline, versions := make([]redisstore.User, len(later)), make([]int64, len(later))
	for i, c := range later {
		offline[i], versions[i] = redisstore.User{App: changes[c].App, User: changes[c].User}, changes[c].Version
	}
	p.delay(partition, offline, versions)
	return p.retry(ctx, "announcing", func(ctx context.Context) error {
		return p.announcer.announce(ctx, now, func(ctx context.Context, subjects []subject) error {
			return p.announce(ctx, cl, subjects)
		})
	})
}

// privacyChange says whether changes[i] sets or clears a privacy setting.
func privacyChange(changes []redisstore.Change, i int) bool {
	return changes[i].Op == redisstore.SetPrivacy || changes[i].Op == redisstore.ClearPrivacy
}

// reshow writes to presence.changes the status of users whose audience is
// told nothing but whose watches must learn of a change: users back online
// within the grace period (the offline was never announced, but Redis
// showed them offline meanwhile, and a watch may have read it then), and
// users whose privacy setting changed without a visible change.
func (p *Processor) reshow(ctx context.Context, cl *kgo.Client, subjects []subject) error {
	if len(subjects) == 0 {
		return nil
	}
	statuses := p.statusesOf(subjects)
	if statuses == nil {
		return nil // the partition moved: its new owner writes what it changes
	}
	recs := make([]*kgo.Record, len(subjects))
	for i, s := range subjects {
		var privacy *status.Privacy
		if statuses[i] != nil {
			privacy = statuses[i].Privacy
		}
		r, err := p.changeRecord(s.App, statusProto(s.User.User, statuses[i]), privacy)
		if err != nil {
			return err
		}
		recs[i] = r
	}
	return p.retry(ctx, "writing the changes of users back online", func(ctx context.Context) error {
		return cl.ProduceSync(ctx, recs...).FirstErr()
	})
}

// changeRecord is the record of presence.changes that says a user of app
// has the status truth now, with their privacy (nil: none).
func (p *Processor) changeRecord(app string, truth *pb.UserStatus, privacy *status.Privacy) (*kgo.Record, error) {
	sc := &pb.StatusChange{App: app, Status: truth, TimestampMs: p.cfg.Now().UnixMilli()}
	if privacy != nil {
		sc.Privacy = privacy.Proto()
	}
	return records.Encode(schemas.ChangesTopic, schemas.UserKey(app, truth.User), sc, time.Time{})
}

// announce tells the audience of each subject its visible state now, then
// marks it as told. Telling twice is possible (a crash between the two);
// each notification carries the subject's version, so a client drops what
// it already has.
func (p *Processor) announce(ctx context.Context, cl *kgo.Client, subjects []subject) error {
	if len(subjects) == 0 {
		return nil
	}
	start := time.Now()
	store := p.cfg.Store
	users := make([]redisstore.User, len(subjects))
	for i, s := range subjects {
		users[i] = s.User
	}
	audiences, err := store.AudiencesOf(ctx, users, p.statusesOf(subjects), p.cfg.Now())
	if err != nil {
		return err
	}
	members := make([][]string, len(subjects))
	for i, s := range subjects {
		if !s.selfOnly {
			members[i] = audienceOf(s.User.User, audiences[i])
		}
	}
	routes, err := p.routes(ctx, subjects, members)
	if err != nil {
		return err
	}
	var recs []*kgo.Record
	var enc encoder
	counts := map[pb.NotificationType]int{}
	for i, s := range subjects {
		a := audiences[i]
		// Recipients by type and gateway, made only for a subject that
		// has some (most changes of users without an audience online
		// have none).
		// Each view (what a kind of recipient sees of the subject, see
		// viewOf) its recipients by gateway, made only for a subject
		// that has some (most changes of users without an audience
		// online have none).
		var byGateway map[view]map[string][]recipient
		tell := func(v view, gw string, r recipient) {
			if byGateway == nil {
				byGateway = map[view]map[string][]recipient{}
			}
			if byGateway[v] == nil {
				byGateway[v] = map[string][]recipient{}
			}
			byGateway[v][gw] = append(byGateway[v][gw], r)
		}
		if a.Status != nil {
			for _, sess := range a.Status.Sessions {
				if !slices.Contains(s.except, sess.Session) {
					tell(view{pb.NotificationType_NOTIFICATION_TYPE_SYNC, status.Self}, sess.Gateway, recipient{s.User.User, sess.Session})
				}
			}
		}
		private := a.Status != nil && a.Status.Privacy != nil
		friendship := private && a.Status.Privacy.NeedsFriendship(a.Status)
		for _, r := range members[i] {
			v := view{pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, status.Anyone}
			if friendship && slices.Contains(a.Friends, r) {
				v.viewer = status.Friend
			}
			for _, route := range routes[s.App][r] {
				tell(v, route.Gateway, recipient{r, route.Session})
			}
		}
		// Every change goes to presence.changes, told or not, as the
		// truth with the user's privacy: the query API's watches mask
		// it per viewer, webhooks (for backends) send the truth.
		truth := statusProto(s.User.User, a.Status)
		var privacy *status.Privacy
		if private {
			privacy = a.Status.Privacy
		}
		change, err := p.changeRecord(s.App, truth, privacy)
		if err != nil {
			return err
		}
		recs = append(recs, change)
		n := 0
		for v, gateways := range byGateway {
			told := truth
			if v.viewer != status.Self && private {
				told = statusProto(s.User.User, a.Status.Masked(v.viewer))
			}
			for gw, recipients := range gateways {
				counts[v.typ] += len(recipients)
				n += len(recipients)
				for chunk := range slices.Chunk(recipients, maxRecipients) {
					value, err := enc.marshal(&pb.Notification{
						Type: v.typ, App: s.App, Subject: told, Gateway: gw,
						TimestampMs: p.cfg.Now().UnixMilli(),
					}, chunk)
					if err != nil {
						return err
					}
					recs = append(recs, &kgo.Record{Topic: schemas.NotifyTopic, Key: []byte(schemas.NotifyKey(gw)), Value: value})
				}
			}
		}
		p.metrics.fanout.Observe(float64(n))
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return err
	}
	for typ, n := range counts {
		p.metrics.notifications.WithLabelValues(typeLabel[typ]).Add(float64(n))
	}
	p.metrics.announced.Add(float64(len(subjects)))
	p.metrics.announceTime.Observe(time.Since(start).Seconds())
	for _, s := range subjects {
		p.markAnnounced(s.partition, s.User, s.visible)
	}
	return nil
}

var typeLabel = map[pb.NotificationType]string{
	pb.NotificationType_NOTIFICATION_TYPE_SYNC:     "sync",
	pb.NotificationType_NOTIFICATION_TYPE_PRESENCE: "presence",
}

// view is what one kind of recipient is told of a subject: its own
// sessions the truth (sync), its friends and subscribers the subject as
// its privacy lets them see it (presence; status.Privacy.Mask).
type view struct {
	typ    pb.NotificationType
	viewer status.Viewer
}

// recipient is a session to tell, as announce groups them by gateway.
type recipient struct{ user, session string }

// encoder marshals notifications, reusing its recipients from one record
// to the next rather than allocating one per recipient.
type encoder struct {
	recipients []pb.Recipient
	list       []*pb.Recipient
}

// marshal encodes n with recipients rs.
func (e *encoder) marshal(n *pb.Notification, rs []recipient) ([]byte, error) {
	if len(rs) > len(e.recipients) {
		e.recipients = make([]pb.Recipient, len(rs))
		e.list = make([]*pb.Recipient, len(rs))
	}
	for i, r := range rs {
		e.recipients[i].User, e.recipients[i].Session = r.user, r.session
		e.list[i] = &e.recipients[i]
	}
	n.Recipients = e.list[:len(rs)]
	return proto.Marshal(n)
}

// audienceOf returns the friends and watchers of a user, each once,
// without the user. It may reuse a.Friends.
func audienceOf(user string, a redisstore.Audience) []string {
	all := a.Friends // a set's members: distinct
	if len(a.Watchers) > 0 {
		friends := make(map[string]bool, len(a.Friends))
		for _, f := range a.Friends {
			friends[f] = true
		}
		all = slices.Clone(a.Friends)
		for _, w := range a.Watchers { // a sorted set's members: distinct
			if !friends[w] {
				all = append(all, w)
			}
		}
	}
	return slices.DeleteFunc(all, func(r string) bool { return r == user })
}

// routes reads where the sessions of every member of the subjects'
// audiences are, by app and user, each member once. A member of a
// partition of one of the subjects is read from memory (see
// heldPartitions), any other from Redis, maxRecipients users per round
// trip.
func (p *Processor) routes(ctx context.Context, subjects []subject, members [][]string) (map[string]map[string][]redisstore.Route, error) {
	held, n := p.heldPartitions(), p.partitionCount(schemas.SessionsTopic)
	out := map[string]map[string][]redisstore.Route{}
	seen := map[string]map[string]struct{}{} // by app
	byApp := map[string][]string{}           // to read from Redis
	var mem []redisstore.Route               // the routes read from memory, cut per user
	var buf []byte
	for i, s := range subjects {
		if seen[s.App] == nil {
			seen[s.App] = make(map[string]struct{}, len(subjects)*len(members[i]))
			out[s.App] = map[string][]redisstore.Route{}
		}
		inApp := seen[s.App]
		for _, m := range members[i] {
			if _, ok := inApp[m]; ok {
				continue
			}
			inApp[m] = struct{}{}
			var part *state.Partition
			if n > 0 && len(held) > 0 {
				buf = schemas.AppendUserKey(buf[:0], s.App, m)
				part = held[int32(schemas.Partition(buf, n))]
			}
			if part == nil {
				byApp[s.App] = append(byApp[s.App], m)
				continue
			}
			start := len(mem)
			if mem = part.AppendRoutes(mem, s.App, m); len(mem) > start {
				out[s.App][m] = mem[start:len(mem):len(mem)]
			}
		}
	}
	for app, users := range byApp {
		for chunk := range slices.Chunk(users, maxRecipients) {
			routes, err := p.cfg.Store.Routes(ctx, app, chunk)
			if err != nil {
				return nil, err
			}
			maps.Copy(out[app], routes)
		}
	}
	return out, nil
}

// heldPartitions returns the state of the partitions this processor owns
// and has restored. An announcement runs while the goroutines applying
// them wait for it or have ended (see applyFetches), and sweepGrace while
// none applies: their users in memory are what Redis holds of them,
// written, and read safely.
func (p *Processor) heldPartitions() map[int32]*state.Partition {
	p.mu.Lock()
	owned := maps.Clone(p.owned)
	p.mu.Unlock()
	held := map[int32]*state.Partition{}
	for partition, o := range owned {
		if !p.restoring(partition) {
			held[partition] = o.users
		}
	}
	return held
}

// statusProto is a status as notifications carry it; a user Presence no
// longer knows is offline.
func statusProto(user string, st *redisstore.Status) *pb.UserStatus {
	out := &pb.UserStatus{User: user}
	if st == nil {
		return out
	}
	out.Online = st.State == redisstore.Online
	out.Version = st.Version
	out.Activity = st.Activity.Proto()
	if st.LastSeen != nil {
		out.LastSeenMs = st.LastSeen.UnixMilli()
	}
	if st.Custom != nil {
		out.Custom = &pb.CustomStatus{Status: int32(st.Custom.Status), Text: st.Custom.Text}
	}
	for _, s := range st.Sessions {
		out.Sessions = append(out.Sessions, &pb.Session{
			Session: s.Session, Device: &pb.Device{Type: s.Device, Id: s.DeviceID},
			Gateway: s.Gateway, ConnectedAtMs: s.ConnectedAt.UnixMilli(), Activity: s.Activity.Proto(),
		})
	}
	return out
}
