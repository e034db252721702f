package processor

import (
	"bytes"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/status"
)

// A batch is the changes one partition's records make, by topic.
type batch struct {
	// clamp bounds the time of a record (Processor.clampTime).
	clamp         func(time.Time) time.Time
	decoder       sessionDecoder
	sessions      []redisstore.Change
	friends       []redisstore.FriendChange
	subscriptions []redisstore.SubscriptionChange
}

func (b *batch) len() int { return len(b.sessions) + len(b.friends) + len(b.subscriptions) }

// add decodes r and adds the change it makes to b; a tombstone of a
// session, or a transaction marker, makes none. A record's key must be the
// one its value's ids make (built by the schemas, so canonical); a
// tombstone's key must be canonical (see tombstone).
func (b *batch) add(r *kgo.Record) error {
	if r.Attrs.IsControl() {
		return nil // a transaction's marker: no change
	}
	var err error
	switch r.Topic {
	case schemas.SessionsTopic:
		err = b.addSession(r)
	case schemas.FriendsTopic:
		err = b.addFriend(r)
	case schemas.SubscriptionsTopic:
		err = b.addSubscription(r)
	default:
		err = fmt.Errorf("unexpected topic %s", r.Topic)
	}
	if err != nil {
		return fmt.Errorf("record %s/%d at offset %d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

func (b *batch) addSession(r *kgo.Record) error {
	c, ok, err := b.decoder.decode(r, b.clamp)
	if ok {
		b.sessions = append(b.sessions, c)
	}
	return err
}

// DecodeSession returns the change a record of presence.sessions makes,
// decoded and checked as the processor does (the value valid, its ids
// those of its key, a tombstone's key canonical), its time bounded by
// clamp (none when nil); ok is false for a record that makes none (a
// session's tombstone: its last record said all).
func DecodeSession(r *kgo.Record, clamp func(time.Time) time.Time) (c redisstore.Change, ok bool, err error) {
	var d sessionDecoder
	return d.decode(r, clamp)
}

// sessionDecoder is DecodeSession for many records: it reuses its message
// and its buffer for keys from one record to the next.
type sessionDecoder struct {
	ev  pb.SessionEvent
	key []byte
}

func (d *sessionDecoder) decode(r *kgo.Record, clamp func(time.Time) time.Time) (c redisstore.Change, ok bool, err error) {
	if clamp == nil {
		clamp = func(t time.Time) time.Time { return t }
	}
	if app, user, ok, err := schemas.ParsePrivacyKey(r.Key); ok && len(r.Value) == 0 {
		if err != nil {
			return c, false, fmt.Errorf("tombstone: %w", err)
		}
		return redisstore.Change{
			Op: redisstore.ClearPrivacy, App: app, User: user, At: clamp(r.Timestamp), Version: r.Offset, Partition: r.Partition,
		}, true, nil
	}
	if len(r.Value) == 0 {
		ids, err := tombstone(r, 2, 3)
		if err != nil || len(ids) == 3 {
			return c, false, err
		}
		return redisstore.Change{
			Op: redisstore.ClearCustom, App: ids[0], User: ids[1], At: clamp(r.Timestamp), Version: r.Offset, Partition: r.Partition,
		}, true, nil
	}
	ev := &d.ev
	if err := proto.Unmarshal(r.Value, ev); err != nil { // resets ev first
		return c, false, fmt.Errorf("decoding: %w", err)
	}
	if err := schemas.ValidateSessionEvent(ev); err != nil {
		return c, false, err
	}
	c = redisstore.Change{
		App: ev.App, User: ev.User, Session: ev.Session,
		Device:    ev.GetDevice().GetType(),
		DeviceID:  ev.GetDevice().GetId(),
		Gateway:   ev.Gateway,
		Epoch:     ev.GatewayEpoch,
		At:        clamp(time.UnixMilli(ev.TimestampMs)),
		Version:   r.Offset,
		Partition: r.Partition,
	}
	d.key = schemas.AppendSessionKey(d.key[:0], ev.App, ev.User, ev.Session)
	switch ev.Type {
	case pb.EventType_EVENT_TYPE_CONNECT:
		c.Op = redisstore.Connect
		c.Activity = status.ActivityFromProto(ev.Activity)
	case pb.EventType_EVENT_TYPE_ACTIVITY:
		// The whole session, under its own key: a connect that says its
		// activity (redisstore.Change.Report).
		c.Op, c.Report = redisstore.Connect, true
		c.Activity = status.ActivityFromProto(ev.Activity)
	case pb.EventType_EVENT_TYPE_DISCONNECT:
		c.Op = redisstore.Disconnect
		c.OnlyHere = ev.Reason == pb.DisconnectReason_DISCONNECT_REASON_GATEWAY_LOST
	case pb.EventType_EVENT_TYPE_CUSTOM_STATUS:
		c.Op = redisstore.SetCustom
		c.Custom = redisstore.Custom{Status: int(ev.Custom.Status), Text: ev.Custom.Text}
		d.key = schemas.AppendUserKey(d.key[:0], ev.App, ev.User) // CustomStatusKey
	case pb.EventType_EVENT_TYPE_PRIVACY:
		c.Op = redisstore.SetPrivacy
		c.Privacy = status.PrivacyFromProto(ev.Privacy)
		d.key = schemas.AppendPrivacyKey(d.key[:0], ev.App, ev.User)
	}
	if !bytes.Equal(d.key, r.Key) {
		return c, false, fmt.Errorf("key %q does not match its value's %q", r.Key, d.key)
	}
	return c, true, nil
}

func (b *batch) addFriend(r *kgo.Record) error {
	if len(r.Value) == 0 {
		ids, err := tombstone(r, 3, 3)
		if err != nil {
			return err
		}
		b.friends = append(b.friends, redisstore.FriendChange{App: ids[0], User: ids[1], Friend: ids[2], Remove: true})
		return nil
	}
	var e pb.FriendEdge
	if err := proto.Unmarshal(r.Value, &e); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	if err := schemas.ValidateFriendEdge(&e); err != nil {
		return err
	}
	if key := schemas.FriendKey(e.App, e.User, e.Friend); key != string(r.Key) {
		return fmt.Errorf("key %q does not match its value's %q", r.Key, key)
	}
	b.friends = append(b.friends, redisstore.FriendChange{App: e.App, User: e.User, Friend: e.Friend})
	return nil
}

func (b *batch) addSubscription(r *kgo.Record) error {
	if len(r.Value) == 0 {
		ids, err := tombstone(r, 3, 3)
		if err != nil {
			return err
		}
		b.subscriptions = append(b.subscriptions, redisstore.SubscriptionChange{
			App: ids[0], User: ids[1], Subscriber: ids[2], Remove: true, Partition: r.Partition,
		})
		return nil
	}
	var s pb.Subscription
	if err := proto.Unmarshal(r.Value, &s); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	if err := schemas.ValidateSubscription(&s); err != nil {
		return err
	}
	if key := schemas.SubscriptionKey(s.App, s.User, s.Subscriber); key != string(r.Key) {
		return fmt.Errorf("key %q does not match its value's %q", r.Key, key)
	}
	// No subscription outlives MaxSubscriptionTTL from its (clamped)
	// time, whatever expiry its record asks for.
	expires := time.UnixMilli(s.ExpiresAtMs)
	if limit := b.clamp(time.UnixMilli(s.TimestampMs)).Add(schemas.MaxSubscriptionTTL); expires.After(limit) {
		expires = limit
	}
	b.subscriptions = append(b.subscriptions, redisstore.SubscriptionChange{
		App: s.App, User: s.User, Subscriber: s.Subscriber, ExpiresAt: expires, Partition: r.Partition,
	})
	return nil
}

// refuse adds to b what compaction will make of r, a record refused
// though its key is the canonical key of a session, a custom status, a
// friendship, a subscription or a privacy setting in its own partition
// (undecodable, too large, its value naming other ids): compaction keeps
// r as the latest record of that key, and a replay refuses it, so the key
// holds nothing. The session is disconnected (at r's time), the custom
// status or the privacy cleared, the edge removed, so that live state is
// what a replay builds.
func (b *batch) refuse(r *kgo.Record) {
	if r.Attrs.IsControl() || len(r.Value) == 0 { // a tombstone is refused for its key alone
		return
	}
	switch r.Topic {
	case schemas.SessionsTopic:
		if app, user, ok, err := schemas.ParsePrivacyKey(r.Key); ok {
			if err == nil {
				b.sessions = append(b.sessions, redisstore.Change{Op: redisstore.ClearPrivacy, App: app, User: user,
					At: b.clamp(r.Timestamp), Version: r.Offset, Partition: r.Partition})
			}
			return
		}
		ids, err := schemas.ParseKey(r.Key, 2, 3)
		if err != nil {
			return
		}
		c := redisstore.Change{Op: redisstore.ClearCustom, App: ids[0], User: ids[1],
			At: b.clamp(r.Timestamp), Version: r.Offset, Partition: r.Partition}
		if len(ids) == 3 {
			c.Op, c.Session = redisstore.Disconnect, ids[2]
		}
		b.sessions = append(b.sessions, c)
	case schemas.FriendsTopic:
		if ids, err := schemas.ParseKey(r.Key, 3, 3); err == nil {
			b.friends = append(b.friends, redisstore.FriendChange{App: ids[0], User: ids[1], Friend: ids[2], Remove: true})
		}
	case schemas.SubscriptionsTopic:
		if ids, err := schemas.ParseKey(r.Key, 3, 3); err == nil {
			b.subscriptions = append(b.subscriptions, redisstore.SubscriptionChange{
				App: ids[0], User: ids[1], Subscriber: ids[2], Remove: true, Partition: r.Partition,
			})
		}
	}
}

// tombstone returns the ids of a tombstone's key, checked
// (schemas.ParseKey): an app, then user ids, minParts to maxParts of them
// in all, in canonical form. A tombstone under another spelling of a key
// ("chat/p%q/r" for "chat/p%25q/r") would remove what the key names while
// compaction keeps the record it was meant to delete, so a replay would
// bring it back.
func tombstone(r *kgo.Record, minParts, maxParts int) ([]string, error) {
	ids, err := schemas.ParseKey(r.Key, minParts, maxParts)
	if err != nil {
		return nil, fmt.Errorf("tombstone: %w", err)
	}
	return ids, nil
}
