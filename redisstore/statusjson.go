package redisstore

import (
	"strconv"
	"unicode/utf8"
)

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
	b = append(b, `{"user":`...)
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
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

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
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
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
