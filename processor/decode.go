package processor

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// decode turns a sessions record into the change it makes. A tombstone
// (empty value) makes none: ok is false and err nil.
func decode(r *kgo.Record) (c redisstore.Change, ok bool, err error) {
	if len(r.Value) == 0 {
		return c, false, nil
	}
	var ev pb.SessionEvent
	if err := proto.Unmarshal(r.Value, &ev); err != nil {
		return c, false, fmt.Errorf("decoding record at offset %d: %w", r.Offset, err)
	}
	if err := schemas.ValidateSessionEvent(&ev); err != nil {
		return c, false, fmt.Errorf("record at offset %d: %w", r.Offset, err)
	}
	if key := schemas.SessionKey(ev.App, ev.User, ev.Session); key != string(r.Key) {
		return c, false, fmt.Errorf("record at offset %d: key %q does not match its value's %q", r.Offset, r.Key, key)
	}
	return redisstore.Change{
		App: ev.App, User: ev.User, Session: ev.Session,
		Connect:  ev.Type == pb.EventType_EVENT_TYPE_CONNECT,
		Device:   ev.GetDevice().GetType(),
		DeviceID: ev.GetDevice().GetId(),
		Gateway:  ev.Gateway,
		At:       time.UnixMilli(ev.TimestampMs),
		Version:  r.Offset,
	}, true, nil
}
