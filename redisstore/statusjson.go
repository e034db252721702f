package redisstore

import (
	"strconv"
	"strings"
	"time"
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

// JSONReader reads statuses in the form AppendJSON writes them, for a Go
// client of the query API: encoding/json took a client longer to decode
// an answer of 500 statuses than the query API took to make it. The
// statuses it reads share their memory, a few chunks that grow as they
// fill (never moved, so no status read is copied), and their strings
// are parts of the string read; each status's sessions end with its
// slice's capacity, so appending to them never writes into another's.
// Anything not in that exact form (other spacing or order of fields, an
// unknown field, an escape in a string, a number or time written
// otherwise) it leaves to encoding/json, which decodes it or says what
// is wrong with it; what it reads, it reads as encoding/json does. The
// zero value is ready.
type JSONReader struct {
	statuses []Status
	sessions []Session
	lastSeen []Time
}

// Read reads a status, or null (a nil status), at the start of s and
// returns what follows it; ok is false when s does not start with one in
// the form AppendJSON writes.
func (r *JSONReader) Read(s string) (st *Status, rest string, ok bool) {
	if rest, ok := strings.CutPrefix(s, "null"); ok {
		return nil, rest, true
	}
	p := jsonScan{s: s, ok: true}
	var v Status
	p.lit(`{"user":`)
	v.User = p.str()
	p.lit(`,"state":`)
	v.State = p.str()
	p.lit(`,"sessions":`)
	r.sessions = room(r.sessions, 0)
	start := len(r.sessions)
	switch {
	case p.skip("null"):
	case p.skip("[]"):
		v.Sessions = r.sessions[start:start:start]
	default:
		p.lit("[")
		for p.ok {
			var sess Session
			p.lit(`{"session":`)
			sess.Session = p.str()
			p.lit(`,"device":`)
			sess.Device = p.str()
			p.lit(`,"device_id":`)
			sess.DeviceID = p.str()
			p.lit(`,"gateway":`)
			sess.Gateway = p.str()
			p.lit(`,"connected_at":`)
			sess.ConnectedAt = p.time()
			p.lit("}")
			if len(r.sessions) == cap(r.sessions) { // the status's sessions so far move to the next chunk
				r.sessions = append(room(r.sessions, len(r.sessions)-start), r.sessions[start:]...)
				start = 0
			}
			r.sessions = append(r.sessions, sess)
			if !p.skip(",") {
				break
			}
		}
		p.lit("]")
		v.Sessions = r.sessions[start:len(r.sessions):len(r.sessions)]
	}
	p.lit(`,"custom":`)
	if !p.skip("null") {
		var c Custom
		p.lit(`{"status":`)
		c.Status = int(p.int(strconv.IntSize))
		p.lit(`,"text":`)
		c.Text = p.str()
		p.lit("}")
		v.Custom = &c
	}
	p.lit(`,"last_seen":`)
	if !p.skip("null") {
		r.lastSeen = room(r.lastSeen, 0)
		r.lastSeen = append(r.lastSeen, p.time())
		v.LastSeen = &r.lastSeen[len(r.lastSeen)-1]
	}
	p.lit(`,"version":`)
	v.Version = p.int(64)
	p.lit("}")
	if !p.ok {
		r.sessions = r.sessions[:start]
		return nil, s, false
	}
	r.statuses = room(r.statuses, 0)
	r.statuses = append(r.statuses, v)
	return &r.statuses[len(r.statuses)-1], p.s, true
}

// room returns chunk when it has room for one more element, else a new,
// empty chunk twice as large with room for more besides.
func room[T any](chunk []T, more int) []T {
	if len(chunk) < cap(chunk) {
		return chunk
	}
	return make([]T, 0, max(16, 2*cap(chunk), 2*more))
}

// jsonScan reads JSON in one exact form from the start of s; ok turns
// false, for good, at the first byte not in that form.
type jsonScan struct {
	s  string
	ok bool
}

// lit reads the literal l.
func (p *jsonScan) lit(l string) {
	if !p.skip(l) {
		p.ok = false
	}
}

// skip reads the literal l if s starts with it, and says whether it did.
func (p *jsonScan) skip(l string) bool {
	if !p.ok || !strings.HasPrefix(p.s, l) {
		return false
	}
	p.s = p.s[len(l):]
	return true
}

// str reads a string of valid UTF-8 without escapes or control
// characters: what encoding/json decodes it to is its bytes.
func (p *jsonScan) str() string {
	if !p.ok || p.s == "" || p.s[0] != '"' {
		p.ok = false
		return ""
	}
	ascii := true
	for i := 1; i < len(p.s); i++ {
		c := p.s[i]
		if c == '"' {
			v := p.s[1:i]
			if !ascii && !utf8.ValidString(v) {
				break
			}
			p.s = p.s[i+1:]
			return v
		}
		if c == '\\' || c < 0x20 {
			break
		}
		ascii = ascii && c < utf8.RuneSelf
	}
	p.ok = false
	return ""
}

// int reads an integer that fits in bits, written as JSON writes one.
func (p *jsonScan) int(bits int) int64 {
	i := 0
	if i < len(p.s) && p.s[i] == '-' {
		i++
	}
	digits := i
	for i < len(p.s) && p.s[i] >= '0' && p.s[i] <= '9' {
		i++
	}
	if !p.ok || i == digits || (p.s[digits] == '0' && i > digits+1) {
		p.ok = false
		return 0
	}
	n, err := strconv.ParseInt(p.s[:i], 10, bits)
	if err != nil {
		p.ok = false
		return 0
	}
	p.s = p.s[i:]
	return n
}

// time reads a Time as AppendJSON writes it, "2026-11-22T17:45:20.850Z":
// the time encoding/json decodes it to (time.Time's parsing of RFC 3339,
// which for a time in UTC is time.Date in time.UTC).
func (p *jsonScan) time() Time {
	const n = len(`"2006-01-02T15:04:05.000Z"`)
	if !p.ok || len(p.s) < n || p.s[0] != '"' || p.s[n-1] != '"' {
		p.ok = false
		return Time{}
	}
	s := p.s[1 : n-1]
	digits := true
	num := func(from, to int) int {
		v := 0
		for i := from; i < to; i++ {
			c := s[i]
			digits = digits && c >= '0' && c <= '9'
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), time.Month(num(5, 7)), num(8, 10)
	hour, minute, second, ms := num(11, 13), num(14, 16), num(17, 19), num(20, 23)
	if !digits || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' ||
		month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59 {
		p.ok = false
		return Time{}
	}
	t := time.Date(year, month, day, hour, minute, second, ms*int(time.Millisecond), time.UTC)
	if t.Day() != day { // the 31st of a month of 30 days, say
		p.ok = false
		return Time{}
	}
	p.s = p.s[n:]
	return Time{t}
}
