package schemas

import (
	"errors"
	"fmt"
	"math"
	"time"
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
		// Not quoted: it may be megabytes long.
		return fmt.Errorf("%w app id: %d bytes, must be 1 to %d", ErrInvalid, len(app), MaxAppBytes)
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

// MaxCustomText is the longest custom status text, in characters.
const MaxCustomText = 100

// ValidateCustomText checks the text of a custom status: valid UTF-8, at
// most MaxCustomText characters, no control characters.
func ValidateCustomText(text string) error {
	if !utf8.ValidString(text) {
		return fmt.Errorf("%w custom status text: not valid UTF-8", ErrInvalid)
	}
	if n := utf8.RuneCountInString(text); n > MaxCustomText {
		return fmt.Errorf("%w custom status text: %d characters, at most %d are allowed", ErrInvalid, n, MaxCustomText)
	}
	for _, r := range text {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w custom status text: control characters are not allowed", ErrInvalid)
		}
	}
	return nil
}

// ValidateSessionEvent checks everything a processor relies on in a
// SessionEvent.
func ValidateSessionEvent(ev *presencepb.SessionEvent) error {
	if err := ValidateApp(ev.GetApp()); err != nil {
		return err
	}
	switch ev.GetType() {
	case presencepb.EventType_EVENT_TYPE_CONNECT, presencepb.EventType_EVENT_TYPE_DISCONNECT:
	case presencepb.EventType_EVENT_TYPE_ACTIVITY:
		// An activity record re-asserts the session's connect: it needs
		// all a connect needs, and a known activity.
		if a := ev.GetActivity(); a < presencepb.Activity_ACTIVITY_ACTIVE || a > presencepb.Activity_ACTIVITY_BACKGROUND {
			return fmt.Errorf("%w activity %v", ErrInvalid, a)
		}
	case presencepb.EventType_EVENT_TYPE_CUSTOM_STATUS:
		return validateCustomStatus(ev)
	case presencepb.EventType_EVENT_TYPE_PRIVACY:
		return validatePrivacy(ev)
	default:
		return fmt.Errorf("%w event type %v", ErrInvalid, ev.GetType())
	}
	ids := [...]struct{ what, id string }{
		{"user", ev.GetUser()},
		{"session", ev.GetSession()},
		{"gateway", ev.GetGateway()},
		{"gateway epoch", ev.GetGatewayEpoch()},
	}
	if a := ev.GetActivity(); a < 0 || a > presencepb.Activity_ACTIVITY_BACKGROUND {
		return fmt.Errorf("%w activity %v", ErrInvalid, a)
	}
	for _, x := range ids {
		if err := ValidateID(x.what, x.id); err != nil {
			return err
		}
	}
	if ev.GetType() != presencepb.EventType_EVENT_TYPE_DISCONNECT { // a disconnect needs no device
		if err := validateDevice(ev.GetDevice().GetType()); err != nil {
			return err
		}
	}
	if id := ev.GetDevice().GetId(); id != "" {
		if err := ValidateID("device", id); err != nil {
			return err
		}
	}
	return validateTimestamp(ev.GetTimestampMs())
}

// validateDevice checks the kind of client of a connect or an activity
// report (the field device of the gateway APIs, device.type of the record):
// required, since lookups and notifications show each session's device,
// and an id's rules otherwise.
func validateDevice(device string) error {
	if ValidateID("device", device) != nil {
		return fmt.Errorf("%w device: a session needs the field device, the kind of client (e.g. ios, android, web), "+
			"1 to %d bytes of UTF-8 without control characters; device_id, the physical device, is optional", ErrInvalid, MaxIDBytes)
	}
	return nil
}

func validateCustomStatus(ev *presencepb.SessionEvent) error {
	if err := ValidateID("user", ev.GetUser()); err != nil {
		return err
	}
	if ev.GetSession() != "" || ev.GetGateway() != "" {
		return fmt.Errorf("%w custom status: has a session or gateway", ErrInvalid)
	}
	if ev.GetCustom() == nil {
		return fmt.Errorf("%w custom status: no status", ErrInvalid)
	}
	if err := ValidateCustomText(ev.GetCustom().GetText()); err != nil {
		return err
	}
	return validateTimestamp(ev.GetTimestampMs())
}

func validatePrivacy(ev *presencepb.SessionEvent) error {
	if err := ValidateID("user", ev.GetUser()); err != nil {
		return err
	}
	if ev.GetSession() != "" || ev.GetGateway() != "" {
		return fmt.Errorf("%w privacy: has a session or gateway", ErrInvalid)
	}
	if ev.GetPrivacy() == nil {
		return fmt.Errorf("%w privacy: no setting", ErrInvalid)
	}
	if r := ev.GetPrivacy().GetLastSeen(); r < 0 || r > presencepb.LastSeenRule_LAST_SEEN_RULE_NOBODY {
		return fmt.Errorf("%w privacy: last seen rule %d", ErrInvalid, r)
	}
	return validateTimestamp(ev.GetTimestampMs())
}

func validateTimestamp(ms int64) error {
	if ms <= 0 {
		return fmt.Errorf("%w timestamp %d", ErrInvalid, ms)
	}
	return nil
}

// ValidateFriendEdge checks a FriendEdge: valid ids, not a friend of
// oneself.
func ValidateFriendEdge(e *presencepb.FriendEdge) error {
	if err := errors.Join(ValidateApp(e.GetApp()), ValidateID("user", e.GetUser()), ValidateID("friend", e.GetFriend())); err != nil {
		return err
	}
	if e.GetUser() == e.GetFriend() {
		return fmt.Errorf("%w friendship: user %q cannot be their own friend", ErrInvalid, e.GetUser())
	}
	return validateTimestamp(e.GetTimestampMs())
}

// MaxSubscriptionTTL is the longest a subscription lasts before it must be
// renewed: the query API refuses a longer one, and the processor cuts the
// expiry of a record that asks for more (MaxSubscriptionTTL after the
// record's time).
const MaxSubscriptionTTL = 7 * 24 * time.Hour

// ValidateSubscription checks a Subscription: valid ids, not a
// subscription to oneself, an expiry.
func ValidateSubscription(s *presencepb.Subscription) error {
	if err := errors.Join(ValidateApp(s.GetApp()), ValidateID("user", s.GetUser()), ValidateID("subscriber", s.GetSubscriber())); err != nil {
		return err
	}
	if s.GetUser() == s.GetSubscriber() {
		return fmt.Errorf("%w subscription: user %q cannot watch themselves", ErrInvalid, s.GetUser())
	}
	if s.GetExpiresAtMs() <= 0 {
		return fmt.Errorf("%w subscription: expiry %d", ErrInvalid, s.GetExpiresAtMs())
	}
	return validateTimestamp(s.GetTimestampMs())
}

// ValidateHeartbeat checks a GatewayHeartbeat: valid ids, a positive
// lease that a time.Duration holds, and a time.
func ValidateHeartbeat(hb *presencepb.GatewayHeartbeat) error {
	if err := errors.Join(ValidateID("gateway", hb.GetGateway()), ValidateID("epoch", hb.GetEpoch())); err != nil {
		return err
	}
	// A longer lease than a time.Duration holds would wrap around, to a
	// lease that has already ended or one unrelated to the one asked for.
	if ms := hb.GetLeaseMs(); ms <= 0 || ms > int64(math.MaxInt64/time.Millisecond) {
		return fmt.Errorf("%w heartbeat lease %d ms", ErrInvalid, ms)
	}
	return validateTimestamp(hb.GetTimestampMs())
}
