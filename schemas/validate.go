package schemas

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/presence-im/presence/schemas/presencepb"
)

// ErrInvalid is wrapped by every validation error of this package.
var ErrInvalid = errors.New("invalid")

// MaxIDBytes is the longest user, session, device or gateway id.
const MaxIDBytes = 128

// MaxAppBytes is the longest app id.
const MaxAppBytes = 64

// ValidateApp checks an app id: 1 to 64 ASCII letters, digits, '.', '_' or '-'.
func ValidateApp(app string) error {
	if app == "" || len(app) > MaxAppBytes {
		return fmt.Errorf("%w app id %q: must be 1 to %d bytes", ErrInvalid, app, MaxAppBytes)
	}
	for _, c := range []byte(app) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w app id %q: only letters, digits, '.', '_' and '-' are allowed", ErrInvalid, app)
		}
	}
	return nil
}

// ValidateID checks a user, session, device or gateway id: 1 to 128 bytes
// of valid UTF-8 without control characters. what names the id in errors.
func ValidateID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w %s id: empty", ErrInvalid, what)
	case len(id) > MaxIDBytes:
		return fmt.Errorf("%w %s id: %d bytes, at most %d are allowed", ErrInvalid, what, len(id), MaxIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w %s id: not valid UTF-8", ErrInvalid, what)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w %s id %q: control characters are not allowed", ErrInvalid, what, id)
		}
	}
	return nil
}

// ValidateSessionEvent checks everything a processor relies on in a
// SessionEvent.
func ValidateSessionEvent(ev *presencepb.SessionEvent) error {
	if ev.GetType() != presencepb.EventType_EVENT_TYPE_CONNECT && ev.GetType() != presencepb.EventType_EVENT_TYPE_DISCONNECT {
		return fmt.Errorf("%w event type %v", ErrInvalid, ev.GetType())
	}
	if err := ValidateApp(ev.GetApp()); err != nil {
		return err
	}
	ids := []struct{ what, id string }{
		{"user", ev.GetUser()},
		{"session", ev.GetSession()},
		{"gateway", ev.GetGateway()},
		{"gateway epoch", ev.GetGatewayEpoch()},
	}
	if ev.GetType() == presencepb.EventType_EVENT_TYPE_CONNECT {
		ids = append(ids, struct{ what, id string }{"device", ev.GetDevice().GetType()})
	}
	for _, x := range ids {
		if err := ValidateID(x.what, x.id); err != nil {
			return err
		}
	}
	if id := ev.GetDevice().GetId(); id != "" {
		if err := ValidateID("device", id); err != nil {
			return err
		}
	}
	if ev.GetTimestampMs() <= 0 {
		return fmt.Errorf("%w event timestamp %d", ErrInvalid, ev.GetTimestampMs())
	}
	return nil
}
