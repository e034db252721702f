// Package status is the Status of a user as Presence serves it, and its
// JSON: the query API's answers and the WebSocket gateway's messages are
// written by the same code (AppendJSON, AppendMessageJSON), and a Go
// client reads them back with JSONReader (reader.go).
package status

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Status is what Presence knows of one user, in the shape the query API
// serves and the WebSocket gateway sends.
type Status struct {
	User     string    `json:"user"`
	State    string    `json:"state"`
	Sessions []Session `json:"sessions"`
	Custom   *Custom   `json:"custom"`
	// LastSeen is when the user's last session ended (the disconnect that
	// left no session live); nil while online.
	LastSeen *Time `json:"last_seen"`
	// Version is the offset of the latest record applied to the user; a
	// client can drop a status older than one it already has.
	Version int64 `json:"version"`
	// Activity is the most present activity of the sessions (Aggregate),
	// "" (null) while offline.
	Activity Activity `json:"activity"`
	// Privacy is the user's privacy setting, nil when the default; not
	// served: a reader masks the status with it for its viewer
	// (Privacy.Mask).
	Privacy *Privacy `json:"-"`
}

// States of a user.
const (
	Online  = "online"
	Offline = "offline"
)

// Session is one live connection of a user.
type Session struct {
	Session     string `json:"session"`
	Device      string `json:"device"`
	DeviceID    string `json:"device_id"`
	Gateway     string `json:"gateway"`
	ConnectedAt Time   `json:"connected_at"`
	// Activity is what the session's client last reported; Active when
	// it never did.
	Activity Activity `json:"activity"`
	// Epoch is the boot epoch of the gateway; not served.
	Epoch string `json:"-"`
}

// Custom is a status the user set.
type Custom struct {
	Status int    `json:"status"`
	Text   string `json:"text"`
}

// Time is a time that reads in JSON as RFC 3339 in UTC with exactly three
// fractional digits ("2026-11-22T17:45:20.850Z"), the precision Presence
// keeps, for parsers that want a fixed width.
type Time struct{ time.Time }

const millisLayout = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON writes t as a quoted RFC 3339 string with milliseconds.
func (t Time) MarshalJSON() ([]byte, error) {
	return t.AppendJSON(make([]byte, 0, len(millisLayout)+2)), nil
}

// AppendJSON appends t to b as MarshalJSON writes it.
func (t Time) AppendJSON(b []byte) []byte {
	b = append(b, '"')
	b = t.appendText(b)
	return append(b, '"')
}

// appendText appends t in millisLayout, in UTC. It writes the digits
// itself, which is several times faster than time.Time.AppendFormat, and
// leaves the years that layout does not write in four digits to it.
func (t Time) appendText(b []byte) []byte {
	u := t.UTC()
	year, month, day := u.Date()
	if year < 0 || year > 9999 {
		return u.AppendFormat(b, millisLayout)
	}
	hour, minute, second := u.Clock()
	ms := u.Nanosecond() / 1e6
	b = append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+second/10), byte('0'+second%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return b
}

// AppendJSON appends st as JSON to b and returns the extended buffer: the
// bytes encoding/json's Marshal writes for st (strings HTML-escaped, as it
// does by default), null for a nil st. It is written by hand because the
// batch answers of the query API spend most of their time encoding
// statuses, and encoding/json goes through reflection and re-validates
// what Time.MarshalJSON writes.
func (st *Status) AppendJSON(b []byte) []byte {
	if st == nil {
		return append(b, "null"...)
	}
	return st.appendMembers(append(b, '{'))
}

// AppendMessageJSON appends st as the WebSocket gateway's message of type
// typ ("presence", "sync") to b: {"type":typ, then the members AppendJSON
// writes}.
func (st *Status) AppendMessageJSON(b []byte, typ string) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, typ)
	return st.appendMembers(append(b, ','))
}

// appendMembers appends st's members and the closing brace to b.
func (st *Status) appendMembers(b []byte) []byte {
	b = append(b, `"user":`...)
	b = appendString(b, st.User)
	b = append(b, `,"state":`...)
	b = appendString(b, st.State)
	b = append(b, `,"sessions":`...)
	if st.Sessions == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range st.Sessions {
			if i > 0 {
				b = append(b, ',')
			}
			b = st.Sessions[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"custom":`...)
	if st.Custom == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"status":`...)
		b = strconv.AppendInt(b, int64(st.Custom.Status), 10)
		b = append(b, `,"text":`...)
		b = appendString(b, st.Custom.Text)
		b = append(b, '}')
	}
	b = append(b, `,"last_seen":`...)
	if st.LastSeen == nil {
		b = append(b, "null"...)
	} else {
		b = st.LastSeen.AppendJSON(b)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, st.Version, 10)
	b = append(b, `,"activity":`...)
	b = st.Activity.appendJSON(b)
	return append(b, '}')
}

func (s *Session) appendJSON(b []byte) []byte {
	b = append(b, `{"session":`...)
	b = appendString(b, s.Session)
	b = append(b, `,"device":`...)
	b = appendString(b, s.Device)
	b = append(b, `,"device_id":`...)
	b = appendString(b, s.DeviceID)
	b = append(b, `,"gateway":`...)
	b = appendString(b, s.Gateway)
	b = append(b, `,"connected_at":`...)
	b = s.ConnectedAt.AppendJSON(b)
	b = append(b, `,"activity":`...)
	b = s.Activity.appendJSON(b)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// The ASCII bytes appendString writes as they are, a bit each: 0x20 to
// 0x7f but '"', '&', '<', '>' and '\\'.
const (
	plainBelow64 uint64 = 0xffff_ffff_0000_0000 &^ (1<<'"' | 1<<'&' | 1<<'<' | 1<<'>')
	plainAbove64 uint64 = ^uint64(0) &^ (1 << ('\\' - 64))
)

// plain says whether appendString writes the ASCII byte c as it is.
func plain(c byte) bool {
	if c < 64 {
		return plainBelow64>>c&1 == 1
	}
	return plainAbove64>>(c-64)&1 == 1
}

// appendString appends s as a JSON string the way encoding/json writes it
// by default: '"' and '\\' escaped, control characters as \b, \f, \n, \r,
// \t or \u00XX, '<', '>' and '&' as \u003c, \u003e and \u0026, U+2028 and
// U+2029 as \u2028 and \u2029, and each byte of invalid UTF-8 as \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
